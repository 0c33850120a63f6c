"""One trainer for the supervised studies: number prediction, tagging, classification.

:func:`fit` trains any model given as functions, so the studies keep only
what is theirs (data, model, loss, figures)::

  def loss_fn(params, batch, rng, train):           # -> (objective, metric sums)
    logits = model.apply({"params": params}, batch.tokens, batch.lengths,
                         deterministic=not train, rngs={"dropout": rng})
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels)
    count = batch.weights.sum()                     # real items in the batch
    loss = (losses * batch.weights).sum() / jnp.maximum(count, 1.0)
    errors = ((logits.argmax(-1) != batch.labels) * batch.weights).sum()
    return loss, {"loss": loss * count, "error": errors, "count": count}

  def train_batches(epoch):                         # the same list for the same epoch
    rng = np.random.default_rng([config.seed, epoch])
    return [make_batch(idx) for idx in batch_indices(lengths, batch_size, rng)]

  def evaluate(params, split):                      # 'valid', then each final split
    return {"error": ..., "loss": ...}

  result = supervised.fit(
      workdir, params=params, tx=optim.make_optimizer(...), loss_fn=loss_fn,
      train_batches=train_batches, evaluate=evaluate,
      options=supervised.Options.from_config(config, monitor=("error", "loss")),
      rng=dropout_key, checkpoint_dir=workdir / "checkpoints" / "lstm",
      log_fields={"cell": "lstm"})
  result.params        # the best parameters by dev, restored from checkpoints/best
  result.figures       # {"test": evaluate(result.params, "test")}

What the loop depends on is a function of the step or lives in the
checkpoint, so a run killed at any point (SIGKILL included) and started again
with the same arguments ends with the same parameters and figures, bitwise on
the CPU:

* data position: epoch, batch = divmod(step, batches per epoch), and
  ``train_batches(epoch)`` is the caller's pure function of (seed, epoch);
* dropout randomness: ``fold_in(rng, step)``;
* parameters, optimizer state, skipped-update counters: the ``TrainState`` in
  ``checkpoint_dir/latest`` (orbax);
* dev history, best so far, evaluations without improvement, whether
  training is over, the per-step metrics not yet logged and the training
  time so far: the checkpoint's meta.

Dev figures are measured every ``eval_every_steps`` (0: at each epoch's end)
and at the last step. The best one (lowest ``monitor`` tuple; a key written
``-name`` counts higher as better) is saved to ``checkpoint_dir/best``;
training stops after ``patience`` evaluations without a better one, after
``num_epochs`` or at ``max_steps``. The final figures (``final_splits``) are
those of the best checkpoint, read back from disk.

``metrics.jsonl`` in ``workdir`` (and TensorBoard events under
``workdir/tensorboard``) gets ``train`` records every ``log_every_steps``
(metric sums divided by the summed ``count``, or means over steps where the
loss function gives no ``count``; the global norms ``l2_grads``,
``l2_params``, ``l2_updates``), ``valid`` records at each evaluation and one
record per final split, all carrying ``log_fields``. On resume, the records
of this fit (those carrying ``log_fields``) logged after its checkpoint are
dropped first, so the file ends as an uninterrupted run's would.

SIGTERM or SIGINT saves a checkpoint at the next step boundary and returns
``Result(preempted=True)``. A non-finite loss or gradient never reaches the
parameters (the update is skipped on the device); with
``nonfinite='stop'`` the run then ends with ``NonFiniteError`` naming the
step and the last good checkpoint. A checkpoint whose shapes or ``identity``
do not fit raises ``CheckpointError`` before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any, Callable, Mapping, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from rnn_research import checkpoint as ckpt_lib
from rnn_research import metrics as metrics_lib
from rnn_research.studies import lm

# (params, batch, rng, train) -> (objective, {name: scalar}); see the module docstring.
LossFn = Callable[[Any, Any, jax.Array, bool], tuple[jax.Array, Mapping[str, jax.Array]]]
NONFINITE_MODES = lm.NONFINITE_MODES


@dataclasses.dataclass(frozen=True)
class Options:
  """How long to train, when to evaluate, log and save (see the module docstring)."""

  num_epochs: int
  max_steps: int = 0  # 0 = no cap
  eval_every_steps: int = 0  # 0 = at the end of each epoch
  patience: int = 0  # evaluations without a better dev figure before stopping; 0 = never
  log_every_steps: int = 100
  checkpoint_every_steps: int = 0  # 0 = at evaluations only
  nonfinite: str = "stop"  # 'stop' or 'skip' (drop the update, count it, go on)
  monitor: tuple[str, ...] = ("error", "loss")  # lexicographic, lower is better
  tensorboard: bool = True

  @classmethod
  def from_config(cls, config, **overrides) -> "Options":
    """The fields of this class found at the top of ``config``, then ``overrides``."""
    values = {f.name: config.get(f.name) for f in dataclasses.fields(cls)
              if config.get(f.name) is not None}
    return cls(**{**values, **overrides})

  def total_steps(self, steps_per_epoch: int) -> int:
    """Updates a run of ``steps_per_epoch`` batches an epoch does at most."""
    total = steps_per_epoch * self.num_epochs
    return min(total, self.max_steps) if self.max_steps else total

  def check(self) -> None:
    for name, low in (("num_epochs", 1), ("max_steps", 0), ("eval_every_steps", 0),
                      ("patience", 0), ("log_every_steps", 1),
                      ("checkpoint_every_steps", 0)):
      value = getattr(self, name)
      if not isinstance(value, int) or value < low:
        raise ValueError(f"config.{name} = {value!r} is not valid; valid: an integer "
                         f">= {low}")
    if self.nonfinite not in NONFINITE_MODES:
      raise ValueError(f"config.nonfinite = {self.nonfinite!r} is not valid; valid: "
                       f"{', '.join(NONFINITE_MODES)}")
    if not self.monitor:
      raise ValueError("monitor names no dev figure to select the best checkpoint by")


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: updates done (skipped ones included)
  params: Any
  opt_state: Any
  skipped: jax.Array  # int32: non-finite updates skipped
  first_nonfinite: jax.Array  # int32: step of the first non-finite update, -1 if none


def init_state(params, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                    skipped=jnp.int32(0), first_nonfinite=jnp.int32(-1))


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation):
  """The update (state, batch, rng) -> (state, metrics), not jitted.

  ``metrics`` holds the loss function's metrics and the global norms of the
  gradients, the parameters after the update and the update; an update with
  a non-finite loss or gradient is not applied.
  """

  def train_step(state: TrainState, batch, rng):
    step_rng = jax.random.fold_in(rng, state.step)
    (loss, metrics), grads = jax.value_and_grad(
        lambda p: loss_fn(p, batch, step_rng, True), has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    l2_grads = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(l2_grads)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    new_state = TrainState(
        step=state.step + 1, params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        skipped=state.skipped + (~finite).astype(jnp.int32),
        first_nonfinite=jnp.where(~finite & (state.first_nonfinite < 0), state.step,
                                  state.first_nonfinite))
    norms = {"objective": loss, "l2_grads": l2_grads,
             "l2_params": optax.global_norm(new_state.params),
             "l2_updates": optax.global_norm(updates)}
    return new_state, {"sums": dict(metrics), "norms": norms}

  return train_step


@dataclasses.dataclass
class Result:
  """What :func:`fit` returns; with ``preempted`` only ``steps`` is set."""

  params: Any = None  # the best parameters by dev, restored from checkpoint_dir/best
  best: dict = dataclasses.field(default_factory=dict)  # dev figures there, step, epoch
  figures: dict = dataclasses.field(default_factory=dict)  # {split: evaluate(params, split)}
  history: list = dataclasses.field(default_factory=list)  # every dev evaluation
  steps: int = 0  # updates done
  stopped_early: bool = False
  train_seconds: float = 0.0  # wall time of the loop, summed over resumed runs
  num_params: int = 0
  skipped: int = 0  # non-finite updates not applied
  preempted: bool = False


def scalars(figures: Mapping[str, Any]) -> dict:
  """The entries of ``figures`` that are numbers (what metrics.jsonl gets)."""
  out = {}
  for k, v in figures.items():
    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
      out[k] = v.item() if hasattr(v, "item") else v
    elif isinstance(v, (np.ndarray, jax.Array)) and v.ndim == 0:
      out[k] = v.item()
  return out


def _better(new: Mapping, old: Mapping | None, monitor: Sequence[str]) -> bool:
  if old is None:
    return True
  key = lambda f: tuple(-f[k[1:]] if k.startswith("-") else f[k] for k in monitor)
  return key(new) < key(old)


def _check_identity(stored, identity, directory) -> None:
  normal = lambda x: json.loads(json.dumps(metrics_lib.jsonable(x)))
  old, new = normal(stored or {}), normal(identity or {})
  if old != new:
    k = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))[0]
    raise ckpt_lib.CheckpointError(
        f"checkpoint {directory} holds another run ({k}: {old.get(k)!r} there, "
        f"{new.get(k)!r} now); use a new --workdir")


def _host(pending: list) -> list[dict]:
  """Per-step metrics as Python floats (JSON keeps them exactly)."""
  return [{group: {k: float(v) for k, v in m[group].items()} for group in m}
          for m in jax.device_get(pending)]


def _window_means(pending: list[dict]) -> dict:
  """The logged train figures of a window of per-step metrics."""
  out = {k: sum(m["norms"][k] for m in pending) / len(pending) for k in pending[0]["norms"]}
  out["loss"] = out.pop("objective")
  sums = {k: sum(m["sums"][k] for m in pending) for k in pending[0]["sums"]}
  count = sums.pop("count", None)
  out.update({k: v / max(count, 1.0) if count is not None else v / len(pending)
              for k, v in sums.items()})
  return out


def fit(workdir: str | pathlib.Path, *, params, tx: optax.GradientTransformation,
        loss_fn: LossFn, train_batches: Callable[[int], Sequence[Any]],
        evaluate: Callable[[Any, str], Mapping[str, Any]], options: Options,
        rng: jax.Array, checkpoint_dir: str | pathlib.Path | None = None,
        identity: Mapping[str, Any] | None = None,
        log_fields: Mapping[str, Any] | None = None, split_prefix: str = "",
        final_splits: Sequence[str] = ("test",)) -> Result:
  """Trains (or resumes) one model; see the module docstring.

  Args:
    workdir: where metrics.jsonl and tensorboard/ are written.
    params: initial parameters (a resumed run replaces them by its checkpoint's).
    tx: the optax chain (``optim.make_optimizer``).
    loss_fn: ``(params, batch, rng, train) -> (objective, metrics)``; metrics
      are sums over the batch's items with their number as ``count``, or
      per-batch values to average when there is no ``count``.
    train_batches: ``epoch -> batches`` (each a pytree of arrays), the same
      number every epoch, a pure function of the epoch (and the caller's seed).
    evaluate: ``(params, split) -> figures``; for ``'valid'`` the figures hold
      every ``options.monitor`` key; non-numeric entries are returned, not logged.
    options: see :class:`Options`.
    rng: the dropout key; step ``s`` uses ``fold_in(rng, s)``.
    checkpoint_dir: holds ``latest/`` and ``best/``; default workdir/checkpoints.
    identity: JSON-able facts a checkpoint must share to be resumed (e.g. the
      vocabulary size); another one is refused with a one-line error.
    log_fields: added to each metrics record; they tell this fit's records
      apart from other fits logging to the same workdir.
    split_prefix: prefix of the records' split names (e.g. 'lstm/').
    final_splits: evaluated on the best parameters at the end.
  """
  options.check()
  workdir = pathlib.Path(workdir)
  checkpoint_dir = pathlib.Path(checkpoint_dir or workdir / "checkpoints")
  log_fields = dict(log_fields or {})
  batches, batches_epoch = train_batches(0), 0
  steps_per_epoch = len(batches)
  if not steps_per_epoch:
    raise ValueError("no training batches: the training set is empty")
  total_steps = options.total_steps(steps_per_epoch)
  eval_every = options.eval_every_steps or steps_per_epoch
  state = init_state(params, tx)
  num_params = sum(x.size for x in jax.tree.leaves(params))

  latest = ckpt_lib.Checkpointer(checkpoint_dir / "latest", max_to_keep=2)
  best_ckpt = ckpt_lib.Checkpointer(checkpoint_dir / "best", max_to_keep=1)
  meta = {"best": None, "bad_evals": 0, "history": [], "done": False,
          "stopped_early": False, "pending": [], "train_seconds": 0.0}
  resumed = latest.steps()
  if resumed:
    state, stored, step = latest.restore(state)
    _check_identity(stored.get("identity"), identity, latest.directory)
    meta = {k: stored[k] for k in meta}
    logging.info("resumed from %s at step %d", latest.directory, step)
  step = int(state.step)
  # Only now, with the checkpoint known to fit, is anything written.
  mine = lambda r: all(r.get(k) == v for k, v in log_fields.items())
  finals = {split_prefix + s for s in final_splits}
  metrics_lib.keep_metrics(workdir, lambda r: not mine(r) or (
      resumed and r["step"] <= step and r["split"] not in finals))
  writer = metrics_lib.MetricWriter(workdir, tensorboard=options.tensorboard)
  history, best, bad_evals = meta["history"], meta["best"], meta["bad_evals"]
  done, stopped_early = meta["done"], meta["stopped_early"]
  pending = meta["pending"]  # per-step metrics since the last train record
  train_step = jax.jit(make_train_step(loss_fn, tx), donate_argnums=0)
  progress, window_start, window_steps = None, time.perf_counter(), 0
  loop_start, seconds_before = time.perf_counter(), meta["train_seconds"]
  seconds = lambda: seconds_before + time.perf_counter() - loop_start

  def save(step):
    nonlocal pending
    pending = _host(pending)
    lm.check_finite(int(state.first_nonfinite), options.nonfinite, latest,
                    "loss or gradient")
    latest.save(step, state, {
        "step": step, "best": best, "bad_evals": bad_evals, "history": history,
        "done": done, "stopped_early": stopped_early, "pending": pending,
        "train_seconds": seconds(), "identity": metrics_lib.jsonable(identity or {})})

  try:
    with ckpt_lib.Preemption() as preemption:
      while not done:
        if preemption.requested:
          save(step)
          latest.wait()
          logging.warning("preempted: checkpoint saved at step %d; rerun the same "
                          "command to continue", step)
          return Result(steps=step, preempted=True)
        epoch, position = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
          batches, batches_epoch = train_batches(epoch), epoch
          if len(batches) != steps_per_epoch:
            raise ValueError(f"train_batches({epoch}) gave {len(batches)} batches, "
                             f"epoch 0 {steps_per_epoch}: the count must not change")
        state, step_metrics = train_step(state, batches[position], rng)
        preemption.dispatched(step_metrics)
        pending.append(step_metrics)
        step += 1
        window_steps += 1
        if step % options.log_every_steps == 0 or step == total_steps:
          pending = _host(pending)
          lm.check_finite(int(state.first_nonfinite), options.nonfinite, latest,
                          "loss or gradient")
          figures = _window_means(pending)
          counted = "count" in pending[0]["sums"]
          items = sum(m["sums"]["count"] for m in pending[-window_steps:]) if counted \
              else window_steps
          rate = items / max(time.perf_counter() - window_start, 1e-9)
          writer.write(step, split_prefix + "train", **log_fields, epoch=epoch,
                       skipped=int(state.skipped), **figures)
          progress = progress or metrics_lib.Progress(
              total_steps, unit="items" if counted else "steps")
          progress.update(step, rate, f"{' '.join(map(str, log_fields.values()))} "
                          f"epoch {epoch + 1} loss {figures['loss']:.4f}")
          pending, window_start, window_steps = [], time.perf_counter(), 0
        if step % eval_every == 0 or step == total_steps:
          dev = dict(evaluate(state.params, "valid"))
          missing = [k.lstrip("-") for k in options.monitor if k.lstrip("-") not in dev]
          if missing:
            raise ValueError(f"the dev figures have no {missing[0]!r} to select the best "
                             f"checkpoint by (they have {', '.join(dev)})")
          record = {**scalars(dev), "step": step, "epoch": epoch}
          history.append(record)
          writer.write(step, split_prefix + "valid", **log_fields, epoch=epoch,
                       **scalars(dev))
          logging.info("%s step %d (epoch %d): dev %s", " ".join(map(str, log_fields.values())),
                       step, epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in
                                                  scalars(dev).items()))
          if _better(dev, best, options.monitor):
            best, bad_evals = record, 0
            lm.check_finite(int(state.first_nonfinite), options.nonfinite, latest,
                            "loss or gradient")
            best_ckpt.save(step, state.params, {"best": best})
            best_ckpt.wait()  # the best must be on disk before 'latest' points past it
          else:
            bad_evals += 1
            if options.patience and bad_evals >= options.patience:
              logging.info("early stop at step %d; best dev at step %d", step,
                           best["step"])
              stopped_early = True
          done = stopped_early or step >= total_steps
          save(step)
        elif options.checkpoint_every_steps and step % options.checkpoint_every_steps == 0:
          save(step)
    params, _, _ = best_ckpt.restore(state.params, step=best["step"])
    figures = {}
    for split in final_splits:
      figures[split] = dict(evaluate(params, split))
      writer.write(step, split_prefix + split, **log_fields, **scalars(figures[split]))
  finally:
    latest.wait()  # never leave a save half-done, also when an error ends the run
    best_ckpt.wait()
    latest.close()
    best_ckpt.close()
    writer.close()
  return Result(params=params, best=best, figures=figures, history=history, steps=step,
                stopped_early=stopped_early, train_seconds=seconds(),
                num_params=int(num_params), skipped=int(state.skipped))
