"""The shared shape of every experiment main: flags, logging, and one-line errors.

A study's main is a few lines::

    _CONFIG = config_flags.DEFINE_config_file("config", lock_config=True)
    _WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)

    def main(argv):
      cli.no_extra_args(argv)
      lm.train_and_evaluate(_CONFIG.value, _WORKDIR.value)

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
import os
import re
import sys
import traceback

import jax
from absl import app, flags, logging
from ml_collections.config_flags.config_flags import ConfigFileFlagParser

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
    filter_logs()
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


def filter_logs() -> None:
  """Drops the absl handler's routine lines from libraries: Orbax's INFO line
  about every save and restore (its warnings stay) and JAX's backend probes."""
  handler = logging.get_absl_handler().python_handler
  handler.addFilter(lambda r: r.levelno >= std_logging.WARNING or "/orbax/" not in r.pathname)
  handler.addFilter(_not_a_backend_probe)


def _not_a_backend_probe(record: std_logging.LogRecord) -> bool:
  """False for JAX's INFO line about each optional backend it probed and did
  not find (e.g. "Unable to initialize backend 'tpu': ... libtpu.so ..."),
  printed at the start of every run on a machine without one. A backend the
  user asked for (JAX_PLATFORMS) still fails loudly, and JAX's warnings (such
  as a GPU present but no CUDA jaxlib) are kept."""
  return not (record.levelno < std_logging.WARNING and record.name.startswith("jax")
              and str(record.msg).startswith("Unable to initialize backend"))


def _config_files(argv) -> dict[str, str]:
  """{flag name: file path} of the config-file flags given in ``argv``
  (``--config=PATH[:ARG]`` or ``--config PATH[:ARG]``)."""
  names = [n for n in flags.FLAGS
           if isinstance(flags.FLAGS[n].parser, ConfigFileFlagParser)]
  found = {}
  for i, arg in enumerate(argv[1:], start=1):
    for name in names:
      if arg.startswith(f"--{name}="):
        found[name] = arg.split("=", 1)[1]
      elif arg == f"--{name}" and i + 1 < len(argv):
        found[name] = argv[i + 1]
  return {name: value.split(":", 1)[0] for name, value in found.items()}


def _check_config_files(argv) -> str | None:
  """The error line for a config file that does not exist, else None."""
  for name, path in _config_files(argv).items():
    if not os.path.exists(path):
      return f"--{name}: config file {path} does not exist"
    if not os.path.isfile(path):
      return f"--{name}: config file {path} is not a file"
  return None


def _parse_flags(argv):
  """absl's flag parsing, with bad flags and configs reported in one line.

  ml_collections reports an error inside a config file (e.g. an unknown
  variant) as a flags error carrying the whole traceback, and an unknown
  ``--config.*`` key as an AttributeError; both become one ``error:`` line.
  A config file that does not exist, or has no ``get_config``, is named
  (ml_collections would defer the first to the config's first use and then
  name neither the flag nor the path).
  """
  message = _check_config_files(argv)
  if message is None:
    try:
      return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
      if "--verbose" in argv:
        raise
      message = _flag_error_message(e, argv)
  print(f"error: {message}", file=sys.stderr)
  sys.exit(EXIT_BAD_INPUT)


def _flag_error_message(e: Exception, argv) -> str:
  """One line for an exception raised while parsing ``argv``."""
  if isinstance(e, flags.Error):
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    # The config's own exception is the last "SomeError: ..." line, if any.
    raised = [l for l in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", l)]
    return raised[-1].split(": ", 1)[1] if raised else lines[0]
  text = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split()).strip("\"'")
  if isinstance(e, AttributeError) and "get_config" in text:
    return f"config file {', '.join(_config_files(argv).values())} has no get_config()"
  key = re.match(r"'?([\w]+)'?", text)
  named = [a.split("=")[0] for a in argv[1:] if key and re.match(
      rf"--\w+(\.\w+)*\.{key.group(1)}(=|$)", a)]
  if isinstance(e, AttributeError) and named:
    return f"unknown config field {named[0]}" + text[key.end():].rstrip("'")
  return f"bad config override: {text}"
