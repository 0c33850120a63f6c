"""Shared test fixtures."""

import atexit
import contextlib
import os
import pathlib
import shutil
import tempfile

import pytest

# One XLA compilation cache for the whole run, this process and every subprocess
# a test starts (they inherit the environment): the suite compiles the same tiny
# training steps many times over (every resume test runs, stops and reruns one),
# and a compile costs more than the steps it runs. The folder is new each run, so
# no run depends on another's programs; a cache the user set is left alone.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnn_research_xla_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

from tests import REPO
TESTS = REPO / "tests"

# `make test` runs the suite in two or more pytest-xdist workers, each test file
# whole in one of them, handed out in collection order. The files that take
# longest (`pytest --durations=0`: 58-184 s each on a 2-core CPU, of about 1,110 s
# in all) go first, so that no worker starts one of them when the others are
# nearly done; every other file keeps its place. Only the order changes.
LONGEST_FIRST = (
    "test_recurrent.py", "studies/test_lm.py", "test_models.py",
    "studies/test_gradients.py", "studies/test_encoders.py", "test_parallel.py",
    "test_gpu_suite.py",
)


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

  def key(item):
    path = item.path.resolve()
    name = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
    return rank.get(name, len(rank))

  items.sort(key=key)  # stable: within a file, and among the rest, nothing moves


SHARED_DATA = pathlib.Path(
    os.environ.get("RNN_RESEARCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
  """The real PTB / Linzen et al. files; skip where a fresh clone lacks them."""
  if not (SHARED_DATA / "ptb" / "ptb.train.txt").exists():
    pytest.skip(f"real data not found at {SHARED_DATA} "
                "(set RNN_RESEARCH_SHARED_DATA to the shared/data folder)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lm_run(tmp_path_factory):
  """(workdir, results) of one uninterrupted run of the trainer tests' tiny
  config, shared by every module that only reads a trained workdir."""
  from rnn_research.studies import lm
  from tests.studies.test_lm import tiny_config
  workdir = tmp_path_factory.mktemp("tiny_lm")
  return workdir, lm.train_and_evaluate(tiny_config(), str(workdir))


def _preempt_after(preemption, n):
  """A ``preemption`` (checkpoint.Preemption) that asks to stop once ``n``
  steps have run."""

  class PreemptAfter(preemption):
    checks = 0

    def __enter__(self):  # no signal handlers
      return self

    def __exit__(self, *exc):
      pass

    @property
    def requested(self):
      self.checks += 1
      return self.checks > n

  return PreemptAfter()


@pytest.fixture
def preempt_after():
  """``with preempt_after(n):`` every trainer run inside asks to stop (as on
  SIGTERM) once ``n`` steps have run."""
  from rnn_research import checkpoint as ckpt_lib

  @contextlib.contextmanager
  def patch(n):
    with pytest.MonkeyPatch.context() as mp:
      real = ckpt_lib.Preemption
      mp.setattr(ckpt_lib, "Preemption", lambda: _preempt_after(real, n))
      yield
  return patch


@pytest.fixture
def sigterm_after_device_steps(monkeypatch):
  """``sigterm_after_device_steps(n)`` watches the training steps on the device:
  once ``n`` have finished, it sends this process SIGTERM. It returns a list
  that then holds the number of steps finished right after the signal (at
  least as many as when it came).

  The trainers' jitted ``train_step`` is wrapped to keep each step's metrics
  (never donated), and a thread polls which of them are ready; nothing is
  added to the computation, which runs, and is dispatched, as in a real run.
  Outside the trainer's own handler, SIGTERM is ignored until the test ends,
  and the thread stops then: a signal that comes late fails the test's
  assertions instead of killing the test process."""
  import signal
  import threading
  import time

  import jax

  outputs, sent = [], []
  jit = jax.jit

  def spying_jit(fun, *args, **kwargs):
    compiled = jit(fun, *args, **kwargs)
    if getattr(fun, "__name__", None) != "train_step":
      return compiled

    def train_step(*step_args):
      state, metrics = compiled(*step_args)
      outputs.append(jax.tree.leaves(metrics))
      return state, metrics
    return train_step

  def finished(since=0):
    while since < len(outputs) and all(x.is_ready() for x in outputs[since]):
      since += 1
    return since

  def watch(n):
    while finished() < n:
      if done.wait(0.0005):
        return
    os.kill(os.getpid(), signal.SIGTERM)
    # Counted after the signal: at least as many as had finished when it came.
    sent.append(finished())

  def start(n):
    monkeypatch.setattr(jax, "jit", spying_jit)
    threading.Thread(target=watch, args=(n,), daemon=True).start()
    return sent

  done = threading.Event()
  previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
  yield start
  done.set()
  signal.signal(signal.SIGTERM, previous)
