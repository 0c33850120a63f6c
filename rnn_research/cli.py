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

``run`` also makes glibc keep freed memory in the process (``--malloc``): on
the CPU, XLA allocates each step's temporaries as one large buffer, and
glibc's default returns it to the system after every step and page-faults it
back in at the next (BENCHMARKS.md, A1).
"""

from __future__ import annotations

import logging as std_logging
import re
import sys
import traceback

import jax
from absl import app, flags, logging

_VERBOSE = flags.DEFINE_bool("verbose", False, "show tracebacks of errors")
_MALLOC = flags.DEFINE_enum(
    "malloc", "retain", ["retain", "default"],
    "retain: glibc keeps freed memory for reuse (faster XLA steps on the CPU; "
    "the process does not give memory back while it runs); default: glibc's "
    "own settings")

EXIT_BAD_INPUT = 2
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def no_extra_args(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def retain_freed_memory() -> bool:
  """Makes glibc keep freed memory for reuse instead of returning it to the OS.

  XLA:CPU allocates a step's temporaries as one buffer (60 MB for Zaremba
  small), above glibc's largest mmap threshold (32 MB), so by default every
  step maps fresh pages and faults all of them in (about 15,000 page faults a
  step). Much as starting the process with MALLOC_ARENA_MAX=1
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967295 (mallopt takes at most
  2**31 - 1 for the trim threshold). Call it before JAX
  starts its backend (the first ``jax.devices()`` or computation): settings
  made later only partly take. Returns False where libc is not glibc.
  """
  import ctypes
  try:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):  # not glibc
    return False
  return all(mallopt(k, v) == 1 for k, v in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1)))


def run(main) -> None:
  """``absl.app.run(main)`` with one-line errors for bad input."""

  def wrapped(argv):
    if _MALLOC.value == "retain" and not retain_freed_memory():
      logging.info("--malloc=retain has no effect: the C library is not glibc")
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

  app.run(wrapped, flags_parser=_parse_flags)


def _parse_flags(argv):
  """absl's flag parsing, with bad flags and configs reported in one line.

  ml_collections reports an error inside a config file (e.g. an unknown
  variant) as a flags error carrying the whole traceback, and an unknown
  ``--config.*`` key as an AttributeError; both become one ``error:`` line.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    # The config's own exception is the last "SomeError: ..." line, if any.
    raised = [l for l in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", l)]
    message = raised[-1].split(": ", 1)[1] if raised else lines[0]
  except (AttributeError, KeyError, ValueError, TypeError) as e:
    text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split()).strip("\"'")
    key = re.match(r"'?([\w]+)'?", text)
    named = [a.split("=")[0] for a in argv[1:] if key and re.match(
        rf"--\w+(\.\w+)*\.{key.group(1)}(=|$)", a)]
    message = (f"unknown config field {named[0]}" + text[key.end():].rstrip("'")
               if isinstance(e, AttributeError) and named else f"bad config override: {text}")
  if "--verbose" in argv:
    raise
  print(f"error: {message}", file=sys.stderr)
  sys.exit(EXIT_BAD_INPUT)
