"""Orbax checkpoints: resume a run exactly, keep the best, restore for evaluation.

A workdir holds two ``orbax.checkpoint.CheckpointManager`` folders:

* ``checkpoints/latest/<step>``: the newest few training states (for resuming);
* ``checkpoints/best/<step>``: the state with the best validation figure.

Each checkpoint has two items: ``state`` (a pytree of arrays: parameters,
optimizer state, carried hidden state, ...) and ``meta`` (JSON: counters,
best-so-far, a fingerprint of the config). Orbax writes each step into a
temporary folder and renames it when complete, so a crash mid-save leaves the
previous checkpoints intact; saves are asynchronous and only count after
``wait()``.

Resume order (big_vision's): the workdir's newest readable checkpoint, else
fresh initialisation. A damaged newest checkpoint falls back to the one
before it, with a warning.

:class:`Preemption` turns SIGTERM/SIGINT into a flag that a training loop
checks at each step boundary, to save a checkpoint there and return.
"""

from __future__ import annotations

import copy
import os
import pathlib
import signal
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(ValueError):
  """A checkpoint that cannot be used with this config (one-line message)."""


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def describe_mismatch(stored: dict, expected: dict) -> str | None:
  """First differing (path, stored, expected) between two shape trees, as text."""
  flat_s = dict(jax.tree_util.tree_flatten_with_path(stored)[0])
  flat_e = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
  for path in flat_e.keys() | flat_s.keys():
    s, e = flat_s.get(path), flat_e.get(path)
    if s != e:
      return f"{jax.tree_util.keystr(path)}: checkpoint has {s}, config needs {e}"
  return None


class Checkpointer:
  """Saves and restores ``(state, meta)`` pairs under ``directory``."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
    self.directory = pathlib.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_names=("state", "meta"))

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Saves asynchronously. A step already saved is left as it is: the loop's
    state is a function of the step, so it holds the same thing (this happens
    when a preemption arrives right after a periodic save)."""
    self._manager.wait_until_finished()
    if step in self._manager.all_steps():
      return
    # A copy: the JSON is written in the background, while the loop goes on
    # appending to the lists the caller's meta holds.
    meta = copy.deepcopy(meta)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def read_meta(self, step: int) -> dict:
    return self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

  def read_state(self, step: int) -> Any:
    """The stored state as saved, without a target structure (for inspection)."""
    return self._manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state

  def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict, int]:
    """Restores into the structure of ``target`` (arrays or shape structs).

    With ``step=None`` tries the newest checkpoint first and falls back to
    older ones if it cannot be read; the unreadable newer ones are removed so
    that the resumed run can save those steps again. Raises ``CheckpointError`` when the
    checkpoint's shapes do not fit ``target`` (another model or vocabulary).
    """
    steps = [step] if step is not None else self.steps()[::-1]
    if not steps:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    abstract = _abstract(target)
    last_error = None
    for s in steps:
      try:
        restored = self._manager.restore(s, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        for bad in steps[:steps.index(s)]:  # newer but unreadable: redo those steps
          logging.warning("removing unreadable checkpoint %s/%d", self.directory, bad)
          self._manager.delete(bad)
        return restored.state, restored.meta, s
      except ValueError as e:
        if "not compatible with the stored shape" in str(e) or "structure" in str(e):
          raise CheckpointError(
              f"checkpoint {self.directory / str(s)} does not fit this config: "
              f"{str(e).splitlines()[0]}") from None
        last_error = e
      except Exception as e:  # a damaged or half-written checkpoint
        last_error = e
      logging.warning("checkpoint %s/%d could not be read (%s); trying an older one",
                      self.directory, s, str(last_error).splitlines()[0][:200])
    raise CheckpointError(f"no readable checkpoint in {self.directory}: {last_error}")

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


class Preemption:
  """Turns SIGTERM/SIGINT into a flag the loop checks at each step boundary.

  A context manager; the previous handlers come back on exit. Outside the
  main thread (where Python cannot install handlers) it never asks to stop.

  JAX dispatches asynchronously: a loop that never waits runs ahead of the
  device to its next fetch of a result (the next log, often tens of steps
  away), and a signal would be acted on only there, once every step
  dispatched before it has run. The loop therefore hands each step's outputs
  to :meth:`dispatched`, which keeps at most two steps in flight: the device
  still never waits for the host, and a signal is acted on within a step.
  """

  def __init__(self):
    self._requested = False
    self._in_flight = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self._requested

  def dispatched(self, outputs) -> None:
    """Call right after dispatching a step, with its outputs: returns once the
    step before it has finished."""
    jax.block_until_ready(self._in_flight)
    self._in_flight = outputs

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning("received signal %d: saving a checkpoint at the next step", signum)
    self._requested = True

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
