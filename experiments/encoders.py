r"""The encoder study: taggers and sentence classifiers, uni- against bidirectional.

  python -m experiments.encoders --config=configs/encoders.py:ud_upos \
      --config.data.dir=data/ud_en_ewt --workdir=runs/encoders_ud

Variants, fields and expected results: configs/encoders.py and docs/encoders.md.
The work is in rnn_research.studies.encoders.train_and_evaluate.
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from rnn_research import cli
from rnn_research.studies import encoders

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "study config: configs/encoders.py[:variant]",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)


def main(argv):
  cli.no_extra_args(argv)
  results = encoders.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if not results.get("preempted"):
    print((pathlib.Path(_WORKDIR.value) / "results.md").read_text())


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
