r"""The agreement study: number prediction and language-model agreement,
error by number of attractors (Linzen, Dupoux & Goldberg 2016).

  python -m experiments.agreement --config=configs/agreement.py:linzen \
      --workdir=runs/agreement_linzen

Variants, fields and expected results: configs/agreement.py. The work is in
rnn_research.studies.agreement.train_and_evaluate.
"""

from absl import flags
from ml_collections import config_flags

from rnn_research import cli
from rnn_research.studies import agreement

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "study config: configs/agreement.py[:variant]",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)


def main(argv):
  cli.no_extra_args(argv)
  agreement.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main)
