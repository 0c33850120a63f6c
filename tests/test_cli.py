"""cli.retain_freed_memory: glibc then serves large blocks from the heap and keeps them."""

import subprocess
import sys

import pytest

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
