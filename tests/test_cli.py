"""cli: glibc keeps freed memory (retain_freed_memory); config files and start-up logs."""

import logging as std_logging
import os
import subprocess
import sys

import pytest

from rnn_research import cli

from tests import REPO

# Allocates and frees a 64 MiB block, then prints how far the program break
# (the top of glibc's main heap) moved: glibc's default serves a block that
# large with mmap (the break stays put); retained, it comes from the heap.
_PROBE = """
import ctypes, sys
libc = ctypes.CDLL("libc.so.6")
libc.sbrk.restype = ctypes.c_void_p
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "retain":
  from rnn_research import cli
  assert cli.retain_freed_memory()
before = libc.sbrk(0)
block = libc.malloc(64 << 20)
libc.free(block)
print(libc.sbrk(0) - before)
"""


def _break_growth(mode: str) -> int:
  proc = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  return int(proc.stdout.split()[-1])


def test_retained_memory_comes_from_the_heap_and_stays_there():
  try:
    import ctypes
    ctypes.CDLL("libc.so.6").mallopt  # noqa: B018
  except (OSError, AttributeError):
    pytest.skip("the C library is not glibc")
  assert _break_growth("default") < (64 << 20)
  # Freed, the block stays in the heap: the break does not come back down.
  assert _break_growth("retain") >= (64 << 20)


def _main(*args, env=None):
  return subprocess.run([sys.executable, "-m", "experiments.lm_perplexity", *args],
                        cwd=REPO, capture_output=True, text=True, timeout=300,
                        env=env or dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.parametrize("write, needle", [
    (None, "--config: config file {path} does not exist"),
    ("x = 1\n", "config file {path} has no get_config()"),
])
def test_a_config_file_missing_or_without_get_config_is_named_in_one_line(
    tmp_path, write, needle):
  path = tmp_path / "my_config.py"
  if write is not None:
    path.write_text(write)
  proc = _main(f"--config={path}:small", f"--workdir={tmp_path / 'run'}")
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert lines == [f"error: {needle.format(path=path)}"], proc.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_backend_probe_lines_are_dropped_and_jax_warnings_kept():
  def record(level, msg, name="jax._src.xla_bridge"):
    return std_logging.LogRecord(name, level, "xla_bridge.py", 1, msg, (), None)

  probe = "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so"
  assert not cli._not_a_backend_probe(record(std_logging.INFO, probe))
  assert cli._not_a_backend_probe(record(std_logging.WARNING, probe))
  assert cli._not_a_backend_probe(record(
      std_logging.WARNING, "An NVIDIA GPU may be present on this machine, but a "
      "CUDA-enabled jaxlib is not installed. Falling back to cpu."))
  assert cli._not_a_backend_probe(record(std_logging.INFO, probe, name="rnn_research"))
