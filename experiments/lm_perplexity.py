"""Language-model perplexity study (Zaremba et al. 2014 table, WikiText-2, any text).

    python -m experiments.lm_perplexity --config=configs/ptb.py:small --workdir=DIR

Rerunning with the same --workdir resumes; see rnn_research/studies/lm.py.
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from rnn_research import cli
from rnn_research.studies import lm

_CONFIG = config_flags.DEFINE_config_file("config", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (resumes if it has checkpoints)",
                               required=True)


def main(argv):
  cli.no_extra_args(argv)
  results = lm.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if not results.get("preempted"):
    print((pathlib.Path(_WORKDIR.value) / "results.md").read_text())


if __name__ == "__main__":
  cli.run(main)
