"""Several workdirs -> one markdown page with a summary table, tables and figures.

    python -m experiments.report --workdirs=runs/gradients_spectral,runs/demo \\
        --output=runs/report.md

``--redraw`` first redraws each gradient study's figures and results.md from
its results.json (after a change to a figure or table, without rerunning).
"""

from absl import flags

from rnn_research import cli, report

_WORKDIRS = flags.DEFINE_list("workdirs", None, "finished run directories", required=True)
_OUTPUT = flags.DEFINE_string("output", "report.md", "the page to write")
_REDRAW = flags.DEFINE_bool("redraw", False, "redraw figures and results.md first")


def main(argv):
  cli.no_extra_args(argv)
  if _REDRAW.value:
    for workdir in _WORKDIRS.value:
      report.redraw(workdir)
  report.collect(_WORKDIRS.value, _OUTPUT.value)
  print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
  cli.run(main)
