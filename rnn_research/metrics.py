"""What a run writes: config.json, metrics.jsonl, TensorBoard events, results, progress.

Every study writes the same files into its workdir (DESIGN.md, "Experiments"):
``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON object per
logged step with ``step`` and ``split``), ``results.json`` and ``results.md``.
Files are replaced atomically (write to a temporary file, then rename), so a
crash never leaves half a file behind.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from typing import Any

import numpy as np
from absl import logging


def jsonable(value: Any) -> Any:
  """``value`` with string keys, Python scalars, and NaN/inf as strings."""
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if hasattr(value, "item") and np.ndim(value) == 0:  # numpy / jax scalars
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep them readable
  return value


# The largest mean loss (nats per token) whose perplexity is a finite float;
# past it a model has diverged (uniform guessing over a 10,000-word vocabulary
# is 9.2 nats).
MAX_LOG_PERPLEXITY = math.log(sys.float_info.max)


def perplexity(mean_loss: float) -> float:
  """exp(mean loss in nats); inf where that overflows (a diverged model), NaN for NaN.

  Every perplexity a study reports or logs goes through here, so a diverging
  run is reported (inf, written to JSON as "inf") instead of raising
  OverflowError.
  """
  mean_loss = float(mean_loss)
  if math.isnan(mean_loss):
    return mean_loss
  try:
    return math.exp(mean_loss)
  except OverflowError:
    return math.inf


def atomic_write(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file and a rename."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  atomic_write(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")


def write_config(workdir: str | os.PathLike, config) -> None:
  """config.json: the full resolved config."""
  write_json(pathlib.Path(workdir) / "config.json", config.to_dict())


def write_results(workdir: str | os.PathLike, results: dict, markdown: str) -> None:
  """results.json (the run's final figures) and results.md (its table)."""
  write_json(pathlib.Path(workdir) / "results.json", results)
  atomic_write(pathlib.Path(workdir) / "results.md", markdown.rstrip() + "\n")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
  """A GitHub markdown table; floats are shown with 4 significant digits."""
  fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


class MetricWriter:
  """Appends to metrics.jsonl and, when tensorboardX is installed, to
  TensorBoard event files under ``workdir/tensorboard/<split>``."""

  def __init__(self, workdir: str | os.PathLike, tensorboard: bool = True,
               enabled: bool = True):
    self.enabled = enabled
    self.workdir = pathlib.Path(workdir)
    if not enabled:  # e.g. a non-primary host of a multi-host run
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    self._file = open(self.workdir / "metrics.jsonl", "a")
    self._tb = {}
    self._tensorboard = tensorboard
    if tensorboard:
      try:
        import tensorboardX  # noqa: F401  (optional)
      except ImportError:
        self._tensorboard = False

  def write(self, step: int, split: str, **metrics) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "split": split, **jsonable(metrics)}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    if self._tensorboard:
      if split not in self._tb:
        import tensorboardX
        self._tb[split] = tensorboardX.SummaryWriter(
            str(self.workdir / "tensorboard" / split))
      for key, value in metrics.items():
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
          self._tb[split].add_scalar(key, float(value), int(step))

  def close(self) -> None:
    if not self.enabled:
      return
    self._file.close()
    for writer in self._tb.values():
      writer.close()


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
  """All records of a workdir's metrics.jsonl (for reports and tests)."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_metrics(workdir: str | os.PathLike, keep) -> None:
  """Rewrites metrics.jsonl with only the records ``keep(record)`` accepts:
  what a resumed run will log again is dropped first. Call it before a
  ``MetricWriter`` opens the file."""
  rows = read_metrics(workdir)
  kept = [r for r in rows if keep(r)]
  if len(kept) < len(rows):
    atomic_write(pathlib.Path(workdir) / "metrics.jsonl",
                 "".join(json.dumps(r) + "\n" for r in kept))


class Progress:
  """Progress lines with throughput and ETA, at most every ``every_s`` seconds."""

  def __init__(self, total_steps: int, every_s: float = 10.0, unit: str = "tok"):
    self.total = total_steps
    self.every_s = every_s
    self.unit = unit
    self._last = time.time()
    self._start = self._last
    self._start_step = None

  def update(self, step: int, items_per_sec: float, extra: str = "") -> None:
    now = time.time()
    if self._start_step is None:
      self._start_step, self._start = step, now
    if now - self._last < self.every_s and step < self.total:
      return
    self._last = now
    done = step - self._start_step
    eta = (now - self._start) / done * (self.total - step) if done > 0 else float("nan")
    logging.info("step %d/%d (%.0f%%)  %.0f %s/s  eta %s  %s", step, self.total,
                 100.0 * step / max(self.total, 1), items_per_sec, self.unit,
                 _format_seconds(eta), extra)


def _format_seconds(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
