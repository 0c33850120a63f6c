"""Evaluate a trained language model: perplexity of its best checkpoint on a split.

    python -m experiments.evaluate --workdir=runs/ptb_small              # its own valid/test
    python -m experiments.evaluate --workdir=runs/ptb_small --data_dir=OTHER --split=test

The model and vocabulary come from the workdir; with --data_dir, another
corpus in the same formats is read with that vocabulary (unknown words
become <unk>). Nothing in the workdir is written.
"""

import json

from absl import flags

from rnn_research import cli, metrics
from rnn_research.studies import lm

_WORKDIR = flags.DEFINE_string("workdir", None, "a language-model run directory", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", "", "evaluate on this folder instead of the run's data")
_SPLITS = flags.DEFINE_list("split", ["valid", "test"], "splits to evaluate")
_BATCH = flags.DEFINE_integer("batch_size", 1, "evaluation streams (1 = exact full context)",
                              lower_bound=1)
_BPTT = flags.DEFINE_integer("bptt", 200, "window length (the state is carried across windows)",
                             lower_bound=1)


def main(argv):
  cli.no_extra_args(argv)
  results = lm.evaluate_workdir(_WORKDIR.value, _SPLITS.value, _DATA_DIR.value or None,
                                   _BATCH.value, _BPTT.value)
  print(json.dumps(metrics.jsonable(results), indent=2))  # inf as "inf": valid JSON


if __name__ == "__main__":
  cli.run(main)
