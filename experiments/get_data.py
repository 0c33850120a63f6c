"""Fetches a corpus the studies read into data/NAME, in the files our readers take.

    python -m experiments.get_data ptb              # -> data/ptb/ptb.{train,valid,test}.txt
    python -m experiments.get_data ud:UD_French-GSD --dir=data/fr_gsd
    python -m experiments.get_data sst --force      # replace a folder that holds files

NAME: ptb, wikitext2, ud_en_ewt (or ud:UD_<Language>-<Treebank>[@TAG]), sst,
tinyshakespeare, linzen2016. Counts are checked against the published ones
before anything is written; docs/data.md lists sources, files and the manual
alternative for machines without network access.
"""

from absl import flags

from rnn_research import cli
from rnn_research.data import fetch

_DIR = flags.DEFINE_string("dir", None, "target folder (default data/NAME)")
_FORCE = flags.DEFINE_bool("force", False,
                           "replace a target folder that already holds files")


def main(argv):
  if len(argv) != 2:
    raise ValueError("give one corpus name: python -m experiments.get_data NAME "
                     f"(valid: {', '.join(fetch.NAMES)}, ud:UD_<Language>-<Treebank>)")
  fetch.get_data(argv[1], _DIR.value, force=_FORCE.value)


if __name__ == "__main__":
  cli.run(main)
