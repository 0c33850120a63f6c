"""The shared shape of every experiment main: flags, logging, and one-line errors.

A study's main is a few lines::

    _CONFIG = config_flags.DEFINE_config_file("config", lock_config=True)
    _WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)

    def main(argv):
      cli.no_extra_args(argv)
      train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)

    if __name__ == "__main__":
      cli.run(main)

Bad input (a wrong config value, an unknown cell, missing or malformed data, a
checkpoint that does not fit) raises ``ValueError`` (or ``OSError``) inside the
library; ``run`` turns it into one line on stderr and exit status 2, with the
traceback only under ``--verbose``.
"""

from __future__ import annotations

import logging as std_logging
import sys
import traceback

import jax
from absl import app, flags, logging

_VERBOSE = flags.DEFINE_bool("verbose", False, "show tracebacks of errors")

EXIT_BAD_INPUT = 2


def no_extra_args(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def run(main) -> None:
  """``absl.app.run(main)`` with one-line errors for bad input."""

  def wrapped(argv):
    # Orbax logs every save and restore at INFO; keep its warnings only.
    logging.get_absl_handler().python_handler.addFilter(
        lambda r: r.levelno >= std_logging.WARNING or "/orbax/" not in r.pathname)
    logging.info("JAX %s, devices: %s", jax.__version__, jax.devices())
    try:
      return main(argv)
    except (ValueError, OSError, KeyError) as e:
      if _VERBOSE.value:
        traceback.print_exc()
      message = str(e).splitlines()[0] if str(e) else type(e).__name__
      print(f"error: {message}", file=sys.stderr)
      sys.exit(EXIT_BAD_INPUT)

  try:
    app.run(wrapped)
  except (AttributeError, KeyError, ValueError, TypeError) as e:
    # Raised while absl parses --config.* overrides, before main runs: an
    # unknown config key or a value of the wrong type.
    if _VERBOSE.present and _VERBOSE.value:
      raise
    message = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
    print(f"error: bad config override: {message}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
