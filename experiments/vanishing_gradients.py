"""Gradient-flow studies: by spectral radius, by cell, long dependencies, clipping, depth.

    python -m experiments.vanishing_gradients --config=configs/gradients.py:spectral \\
        --workdir=runs/gradients_spectral

Variants and what each should show: configs/gradients.py. Results and figures
land in --workdir; docs/gradients.md has measured numbers.
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from rnn_research import cli
from rnn_research.studies import gradients

_CONFIG = config_flags.DEFINE_config_file("config", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)


def main(argv):
  cli.no_extra_args(argv)
  gradients.run(_CONFIG.value, _WORKDIR.value)
  print((pathlib.Path(_WORKDIR.value) / "results.md").read_text())


if __name__ == "__main__":
  cli.run(main)
