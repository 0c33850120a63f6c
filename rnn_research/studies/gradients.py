"""The gradient-flow studies: vanishing and exploding gradients, gated cells, clipping, depth.

``run(config, workdir)`` runs ``config.variant`` (configs/gradients.py) and
writes ``config.json``, ``results.json``, ``results.md`` and the variant's
PNG figures into ``workdir``:

* ``spectral``: Pascanu et al. 2013's claim in its cleanest form. With the
  identity activation dJ(i)/dh(j) = g W_h^(i-j), so log ||dJ(i)/dh(i-l)|| falls
  with slope log(rho(W_h)) per step; tanh multiplies in diag(tanh') <= 1.
  The LRU (Orvieto et al. 2023) with every |lambda| = r: slope log r.
* ``cells``: the LSTM's and GRU's additive, gated state updates against the
  Elman cell's repeated multiplication by W_h, at initialisation and after a
  short language-model run (``lm_study.train_and_evaluate``).
* ``long_range``: what that means for learning, on the standard memory
  benchmarks (``data.memory_tasks``: the adding problem, copy memory, recall
  k steps back): error and solved-or-not against the sequence length T per
  cell x initialisation (chrono, IRNN, forget bias), with the share of the
  gradient that reaches the first step at initialisation and after training.
* ``clipping``: Pascanu et al.'s one-unit RNN with a cliff in its loss over
  (w, b); SGD with and without global-norm clipping.
* ``depth``: stacks of 1-8 layers with none / residual / dense / highway
  connections (Britz et al. 2017): perplexity and the gradient that reaches
  the bottom layer.

All gradients are JAX autodiff through ``recurrent.Recurrent`` (the only time
loop); all measurements of dJ/dh go through :mod:`rnn_research.probes`.
"""

from __future__ import annotations

import copy
import faulthandler
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags, logging
from flax import traverse_util

from rnn_research import cells as cells_lib
from rnn_research import cli
from rnn_research import config_schema
from rnn_research import metrics as metrics_lib
from rnn_research import optim, probes, report
from rnn_research.studies import lm as lm_study
from rnn_research.data import batching
from rnn_research.data import corpus as corpus_lib
from rnn_research.data import memory_tasks
from rnn_research.models import LanguageModel, SequenceModel
from rnn_research.recurrent import Recurrent

VARIANTS = ("spectral", "cells", "long_range", "clipping", "depth")
RECURRENT_INITS = ("orthogonal", "gaussian")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs ``config.variant``; returns what it writes to results.json."""
  config_schema.validate(config, config_schema.gradients_schema())
  runner = _RUNNERS[config.variant]
  workdir = pathlib.Path(workdir)
  # A rerun recomputes the measurements and resumes the trained models; a
  # workdir of another configuration is refused before anything is written.
  lm_study.check_workdir(workdir, config, lambda c: c.to_dict())
  if config.variant in _CHECKS:  # bad fields fail before config.json fixes the workdir
    _CHECKS[config.variant](config)
  workdir.mkdir(parents=True, exist_ok=True)
  metrics_lib.write_config(workdir, config)
  start = time.perf_counter()
  results = runner(config, workdir)
  results["variant"] = config.variant
  results["seconds"] = round(time.perf_counter() - start, 1)
  results["figures"] = report.draw_figures(results, workdir)
  metrics_lib.write_results(workdir, results, report.results_markdown(results))
  logging.info("%s done in %.0f s: %s", config.variant, results["seconds"], workdir)
  return results


# ---------------------------------------------------------------------------
# Shared pieces.


def parse_list(text: str, cast: Callable[[str], Any] = str, field: str = "") -> list:
  """'a,b,c' -> [cast(a), cast(b), cast(c)]; a bad item names the config field."""
  try:
    return [cast(item.strip()) for item in str(text).split(",") if item.strip()]
  except ValueError:
    raise ValueError(f"config field {field or text!r}: cannot read {text!r} as a "
                     f"comma-separated list of {cast.__name__}") from None


def probe_batch(ids: np.ndarray, batch_size: int, seq_len: int) -> tuple[jax.Array, jax.Array]:
  """The first (inputs, targets) window, (B, T) each, of a token stream."""
  inputs, targets = batching.LMBatches(ids, batch_size, seq_len)[0]
  return jnp.asarray(inputs), jnp.asarray(targets)


def init_params(model: LanguageModel, seed: int):
  """The parameters ``lm_study.train_and_evaluate`` starts from with this seed."""
  init_key, _ = jax.random.split(jax.random.key(seed))
  return jax.jit(model.init)(init_key, jnp.zeros((1, 1), jnp.int32),
                             model.initial_carries(1))["params"]


def set_spectral_radius(params, rho: float, recurrent_init: str = "orthogonal",
                        key: jax.Array | None = None):
  """Every Elman recurrent kernel W_h rescaled to spectral radius ``rho``.

  ``recurrent_init='gaussian'`` first replaces W_h by an i.i.d. normal matrix
  (non-normal: its singular values spread around rho's, so ||W_h^l|| approaches
  rho^l only slowly); 'orthogonal' keeps the initialised (orthogonal) W_h.
  Gated cells are refused: their fused kernels are not one map h -> h.
  """
  if recurrent_init not in RECURRENT_INITS:
    raise ValueError(f"unknown recurrent_init {recurrent_init!r}; valid: "
                     f"{', '.join(RECURRENT_INITS)}")
  flat = traverse_util.flatten_dict(dict(params))
  for path, kernel in flat.items():
    if path[-1] != "recurrent_kernel":
      continue
    rows, cols = kernel.shape
    if rows != cols:
      raise ValueError(f"{'/'.join(path)} is a gated cell's fused kernel {kernel.shape}; "
                       "only Elman cells have one W_h to rescale")
    if recurrent_init == "gaussian":
      key = jax.random.key(0) if key is None else key
      kernel = jax.random.normal(jax.random.fold_in(key, len(path)), kernel.shape)
    kernel = np.asarray(kernel, np.float64)
    radius = np.max(np.abs(np.linalg.eigvals(kernel)))
    flat[path] = jnp.asarray(kernel * (rho / radius), jnp.float32)
  return traverse_util.unflatten_dict(flat)


def distance_curve(pair_norms: Callable, params, inputs, targets) -> dict[str, np.ndarray]:
  """Averages by distance of ``probes.language_model_pair_norms(model)(params, ...)``."""
  averages = probes.average_by_distance(pair_norms(params, inputs, targets))
  return {"distance": np.arange(inputs.shape[1]), **averages}


def is_elman(cell: str) -> bool:
  return isinstance(cells_lib.get_cell(cell, hidden_size=1), cells_lib.ElmanCell)


def lm_config_for(config: ml_collections.ConfigDict, **model_fields) -> ml_collections.ConfigDict:
  """A copy of ``config.lm`` (unlocked) with some ``model`` fields replaced."""
  lm = ml_collections.ConfigDict(copy.deepcopy(config.lm.to_dict()))
  for name, value in model_fields.items():
    lm.model[name] = value
  return lm


def train_language_model(lm: ml_collections.ConfigDict, workdir: pathlib.Path):
  """Trains (or resumes, or just reloads) one run; returns (results, model, params)
  with the parameters of its best checkpoint."""
  results = lm_study.train_and_evaluate(lm, str(workdir))
  if results.get("preempted"):
    raise RuntimeError(f"training in {workdir} was interrupted; rerun to continue")
  model, params, _ = lm_study.restore_language_model(str(workdir))
  return results, model, params


def _finite(x: float) -> float | None:
  return float(x) if x is not None and math.isfinite(x) else None


def _at(curve: np.ndarray, distances: list[int]) -> dict[str, float | None]:
  return {str(d): _finite(curve[d]) if d < len(curve) else None for d in distances}


# ---------------------------------------------------------------------------
# spectral


def run_spectral(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  """Elman RNN, W_h at each spectral radius: measured vs theoretical log slope."""
  s = config.spectral
  activations = parse_list(s.activations, str, "spectral.activations")
  rhos = parse_list(s.rhos, float, "spectral.rhos")
  corpus = corpus_lib.load_corpus(config.lm.data)
  inputs, targets = probe_batch(corpus.valid, s.batch_size, s.seq_len)
  slopes, curves = [], []
  base = None
  for activation in activations:
    model = LanguageModel(len(corpus.vocab), cell="elman", hidden_size=s.hidden_size,
                          num_layers=1, cell_options={"activation": activation})
    if base is None:  # the activation has no parameters: one W_h for all
      base = init_params(model, config.seed)
    pair_norms = probes.language_model_pair_norms(model)
    for rho in rhos:
      params = set_spectral_radius(base, rho, s.recurrent_init,
                                   jax.random.key(config.seed + 1))
      curve = distance_curve(pair_norms, params, inputs, targets)
      (spectrum,) = probes.recurrent_spectra(params)
      measured = probes.fit_slope(curve["distance"], curve["mean_log_gain"], s.fit_from)
      slopes.append({
          "activation": activation, "rho": rho, "measured_slope": _finite(measured),
          "theory_slope": math.log(rho),
          "max_singular_value": spectrum["max_singular_value"],
      })
      curves.append({"activation": activation, "rho": rho,
                     "mean_norm": curve["mean_norm"].tolist(),
                     "mean_log_gain": curve["mean_log_gain"].tolist()})
      logging.info("spectral %s rho=%.2f: slope %.4f (theory %.4f)", activation, rho,
                   measured, math.log(rho))
  lru_slopes, lru_curves = run_spectral_lru(config, corpus, inputs, targets)
  return {"slopes": slopes, "curves": curves, "distance": list(range(s.seq_len)),
          "fit_from": s.fit_from, "recurrent_init": s.recurrent_init,
          "hidden_size": s.hidden_size, "data": corpus.source,
          "lru_slopes": lru_slopes, "lru_curves": lru_curves}


def run_spectral_lru(config: ml_collections.ConfigDict, corpus, inputs, targets):
  """The LRU with every eigenvalue modulus r (``spectral.lru_moduli``): slope vs log r.

  With r_min = r_max = r the ring is a circle, |lambda_k| = r for every unit
  and only the phases differ. The loss at i reads s_i, and ds_i/ds_{i-l} =
  diag(lambda^l), a rotation of each unit times r^l: the gradient's norm is
  exactly r^l times dJ(i)/ds_i's, so the mean log gain is l log r. With
  moduli spread over a ring the gain is a mixture, sum_k |g_k|^2 r_k^(2l),
  whose slope approaches log max|lambda| only as l grows: one modulus gives
  the clean comparison.
  """
  s = config.spectral
  moduli = parse_list(s.lru_moduli, float, "spectral.lru_moduli")
  slopes, curves = [], []
  for r in moduli:
    if not 0.0 < r < 1.0:
      raise ValueError(f"spectral.lru_moduli: {r} is not in (0, 1), the LRU's |lambda|")
    model = LanguageModel(len(corpus.vocab), cell="lru", hidden_size=s.hidden_size,
                          num_layers=1, cell_options={"r_min": r, "r_max": r})
    params = init_params(model, config.seed)
    curve = distance_curve(probes.language_model_pair_norms(model), params, inputs, targets)
    (spectrum,) = probes.recurrent_spectra(params)
    measured = probes.fit_slope(curve["distance"], curve["mean_log_gain"], s.fit_from)
    slopes.append({"modulus": r, "measured_slope": _finite(measured),
                   "theory_slope": math.log(r),
                   "max_modulus": spectrum["spectral_radius"]})
    curves.append({"modulus": r, "mean_norm": curve["mean_norm"].tolist(),
                   "mean_log_gain": curve["mean_log_gain"].tolist()})
    logging.info("spectral lru |lambda|=%.3f: slope %.4f (theory %.4f)", r, measured,
                 math.log(r))
  return slopes, curves


# ---------------------------------------------------------------------------
# cells


def run_cells(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  """Elman vs LSTM vs GRU: gradient norm against distance, at init and trained."""
  c = config.cells
  cell_names = parse_list(c.cells, str, "cells.cells")
  distances = parse_list(c.distances, int, "cells.distances")
  ref = c.reference_distance
  corpus = corpus_lib.load_corpus(config.lm.data)
  inputs, targets = probe_batch(corpus.valid, c.batch_size, c.seq_len)
  rows, curves = [], []

  def record(cell, stage, pair_norms, params, extra):
    curve = distance_curve(pair_norms, params, inputs, targets)
    spectra = probes.recurrent_spectra(params)
    rows.append({
        "cell": cell, "stage": stage,
        "norm_at": _at(curve["mean_norm"], distances + [ref]),
        "log_gain_at": _at(curve["mean_log_gain"], distances + [ref]),
        # None for minGRU and minLSTM: no recurrent matrix to measure
        "spectral_radius": max((r["spectral_radius"] for r in spectra), default=None),
        "max_singular_value": max((r["max_singular_value"] for r in spectra),
                                  default=None),
        **extra})
    curves.append({"cell": cell, "stage": stage, "mean_norm": curve["mean_norm"].tolist()})
    logging.info("cells %s (%s): norm at %d = %s", cell, stage, ref, rows[-1]["norm_at"][str(ref)])

  for cell in cell_names:
    lm = lm_config_for(config, cell=cell)
    model = lm_study.build_model(lm, len(corpus.vocab))
    pair_norms = probes.language_model_pair_norms(model)
    params = init_params(model, lm.seed)
    if is_elman(cell) and c.elman_rho > 0:
      params = set_spectral_radius(params, c.elman_rho)
    record(cell, "init", pair_norms, params, {})
    if c.train:
      # The restored model is built from the same config: same architecture.
      results, _, params = train_language_model(lm, workdir / "runs" / cell)
      record(cell, "trained", pair_norms, params, {"valid_ppl": results["valid_ppl"],
                                                   "steps": results["steps"]})

  ratios = {}  # gated cell / Elman, norm at the reference distance
  for stage in ("init", "trained"):
    by_cell = {r["cell"]: r["norm_at"][str(ref)] for r in rows if r["stage"] == stage}
    elman = next((v for k, v in by_cell.items() if is_elman(k)), None)
    if elman:
      ratios[stage] = {k: (v / elman if v is not None else None)
                       for k, v in by_cell.items() if not is_elman(k)}
  return {"rows": rows, "curves": curves, "distance": list(range(c.seq_len)),
          "distances": distances, "reference_distance": ref,
          "ratio_to_elman_at_reference": ratios, "elman_rho_at_init": c.elman_rho,
          "train_steps": config.lm.max_steps if c.train else 0, "data": corpus.source}


# ---------------------------------------------------------------------------
# long_range

INITS = ("default", "identity", "orthogonal", "chrono", "forget0", "ring")
"""Initialisations a ``long_range`` model can name after its cell ('lstm/chrono'):
``default`` (the cell's own: orthogonal W_h per gate, zero biases, LSTM
forget bias 1), ``identity`` (W_h = I; with rnn_relu the IRNN of Le et al.
2015), ``orthogonal`` (said explicitly), ``chrono`` (Tallec & Ollivier 2018,
T_max = the task's sequence length), ``forget0`` (LSTM forget bias 0),
``ring`` (the LRU's eigenvalue moduli on Orvieto et al. 2023's long-range
ring, r_min = 0.9, r_max = 0.999: ``LRU_RING``)."""

LRU_RING = {"r_min": 0.9, "r_max": 0.999}
"""Orvieto et al. 2023's ring for long-range tasks (their sCIFAR and
Pathfinder settings); the cell's own default is the whole disc, [0, 1]."""


def parse_model(spec: str, cell_options=None) -> tuple[str, str]:
  """'cell' or 'cell/init' -> (cell, init); unknown names list the valid ones.
  ``cell_options`` (``long_range.cell_options``) must suit the cell too."""
  cell, _, init = spec.partition("/")
  init = init or "default"
  if init not in INITS:
    raise ValueError(f"unknown initialisation {init!r} in long_range model {spec!r}; "
                     f"valid: {', '.join(INITS)}")
  init_options(cell, init, 3, cell_options)  # an unknown cell, or an option it lacks, fails here
  return cell, init


def init_options(cell: str, init: str, seq_len: int, cell_options=None) -> dict:
  """The ``model.cell_options`` of an initialisation, with ``cell_options``
  (``long_range.cell_options``, every model's) added; chrono's T_max is the
  sequence length (the longest dependency the task can have)."""
  options = {"default": {}, "identity": {"recurrent_kernel_init": "identity"},
             "orthogonal": {"recurrent_kernel_init": "orthogonal"},
             "chrono": {"chrono_t_max": float(max(seq_len, 3))},
             "forget0": {"forget_bias": 0.0}, "ring": dict(LRU_RING)}[init]
  extra = dict(cell_options or {})
  field = "config.long_range.cell_options"
  if set(extra) & set(options):
    raise ValueError(f"{field} sets {', '.join(sorted(set(extra) & set(options)))}, "
                     f"which model {model_name(cell, init)!r} sets itself")
  bad = config_schema.CellOptions(config_schema.cell_option_rules()).problem(
      extra, {"cell": cell})
  if bad is not None:
    raise ValueError(f"{field}{bad} (model {model_name(cell, init)!r})".replace(
        config_schema.FIELD, field))
  options.update(extra)
  cells_lib.get_cell(cell, hidden_size=1, **options)  # an unknown cell, an option it lacks
  return options


def _task_functions(model: SequenceModel, task: memory_tasks.Task,
                    tx: optax.GradientTransformation):
  """Jitted (init, train step, evaluation) of one task, each vectorised over a
  leading seed axis S (independent models trained side by side: one
  compilation, and small matrix products batched)."""

  def forward(params, inputs, perturbations=None):
    x = jax.nn.one_hot(inputs, task.classes) if task.classes else inputs  # (B, T, D)
    out = model.apply({"params": params}, x, carry_perturbations=perturbations)  # (B, T, O)
    return out[:, -1] if task.last_step_only else out

  def errors(out, targets):
    """(error per sequence (B,), correct answers (B, A) or None)."""
    if task.regression:
      return jnp.square(out[..., 0] - targets), None
    ce = optax.softmax_cross_entropy_with_integer_labels(out, targets)  # (B,) or (B, T)
    correct = (out.argmax(-1) == targets).reshape(targets.shape[0], -1)  # (B, 1 or T)
    if task.last_step_only:
      return ce, correct
    return ce.mean(-1), correct[:, -task.answer_steps:]

  def loss_fn(params, perturbations, inputs, targets):
    return errors(forward(params, inputs, perturbations), targets)[0].mean()

  def init(key):
    params = model.init(key, jnp.zeros((1, 1, task.input_size)))["params"]
    return params, tx.init(params)

  def train_step(params, opt_state, inputs, targets):
    zeros = probes.zero_perturbations(model.initial_carries(inputs.shape[0]), inputs.shape[1])
    # One backward pass gives dJ/dparams and, for free, dJ/dh_t at every step.
    loss, (grads, carry_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1))(
        params, zeros, inputs, targets)
    updates, opt_state = tx.update(grads, opt_state, params)
    step_norms = jnp.mean(probes.state_norms(carry_grads[0]), axis=0)  # (T,)
    return optax.apply_updates(params, updates), opt_state, loss, step_norms

  def evaluate(params, inputs, targets):
    """Sums over the batch: (error, correct answers, answers)."""
    err, correct = errors(forward(params, inputs), targets)
    if correct is None:
      return jnp.sum(err), jnp.zeros(()), jnp.zeros(())
    return jnp.sum(err), jnp.sum(correct), jnp.asarray(correct.size, jnp.float32)

  return (jax.jit(jax.vmap(init)), jax.jit(jax.vmap(train_step)),
          jax.jit(jax.vmap(evaluate, in_axes=(0, None, None))))


def _gradient_share(step_norms: np.ndarray) -> np.ndarray:
  """||dJ/dh_1|| / ||dJ/dh_T|| of (S, T) per-step norms, per seed."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return step_norms[:, 0] / step_norms[:, -1]


def _geometric_mean(values: np.ndarray) -> float | None:
  with np.errstate(divide="ignore", invalid="ignore"):
    return _finite(float(np.exp(np.mean(np.log(values)))))


def _finite_list(values) -> list:
  return [_finite(float(v)) for v in values]


def train_memory_task(config: ml_collections.ConfigDict, task: memory_tasks.Task, cell: str,
                      init: str, length: int, writer: metrics_lib.MetricWriter) -> dict:
  """Trains ``long_range.seeds`` models of one (task, cell/init, T) side by side
  for the task's fixed step budget; returns the run's row."""
  c = config.long_range
  steps = c[task.name].train_steps
  seq_len = task.seq_len(length)
  options = init_options(cell, init, seq_len, c.cell_options)
  model = SequenceModel(task.num_outputs, cell=cell, hidden_size=c.hidden_size,
                        num_layers=c.num_layers, connection=c.connection,
                        cell_options=options, unroll=c.unroll)
  tx = optim.make_optimizer(c.optim, steps, steps)
  init_fn, train_step, evaluate = _task_functions(model, task, tx)
  task_id = memory_tasks.TASKS.index(task.name)
  # Seed s starts from the same initialisation for every T and task; its
  # training data are its own, the held-out set is shared by all seeds.
  keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(config.seed), s))(
      jnp.arange(c.seeds))
  rngs = [np.random.default_rng([config.seed, s, task_id, length]) for s in range(c.seeds)]
  params, opt_state = init_fn(keys)
  tags = dict(task=task.name, model=model_name(cell, init), T=length)
  curve_steps, curve_loss = [], []
  first_norms = None
  start = time.perf_counter()
  for step in range(1, steps + 1):
    batches = [task.batch(rng, c.batch_size, length) for rng in rngs]
    inputs = np.stack([b[0] for b in batches])  # (S, B, seq_len[, 2])
    targets = np.stack([b[1] for b in batches])  # (S, B[, seq_len])
    params, opt_state, loss, step_norms = train_step(params, opt_state, inputs, targets)
    if first_norms is None:
      first_norms = np.asarray(step_norms)  # (S, seq_len), at the initial parameters
    if c.log_every_steps and (step % c.log_every_steps == 0 or step in (1, steps)):
      loss = np.asarray(loss)
      curve_steps.append(step)
      curve_loss.append(_finite(float(loss.mean())))
      writer.write(step, "train", **tags, loss=float(loss.mean()), loss_by_seed=loss.tolist(),
                   grad_share_by_seed=_finite_list(_gradient_share(np.asarray(step_norms))))
  final_norms = np.asarray(step_norms)
  train_seconds = time.perf_counter() - start

  eval_rng = np.random.default_rng([config.seed, task_id, length, 1 << 20])
  error_sum, correct, answers = np.zeros(c.seeds), np.zeros(c.seeds), np.zeros(c.seeds)
  for first in range(0, c.eval_size, c.batch_size):
    inputs, targets = task.batch(eval_rng, min(c.batch_size, c.eval_size - first), length)
    e, k, n = (np.asarray(v, np.float64) for v in evaluate(params, inputs, targets))
    error_sum, correct, answers = error_sum + e, correct + k, answers + n
  error = error_sum / c.eval_size  # (S,)
  if task.regression:
    accuracy = None
    solved = error < c.solved_mse
  else:
    accuracy = correct / answers
    solved = accuracy >= c.solved_accuracy
  row = {
      **tags, "cell": cell, "init": init, "cell_options": options, "seq_len": seq_len,
      "num_layers": c.num_layers, "connection": c.connection,
      "num_params": sum(x.size for x in jax.tree.leaves(params)) // c.seeds,  # one seed's
      "train_steps": steps,
      "error": _finite(float(np.mean(error))), "error_by_seed": _finite_list(error),
      "baseline": task.baseline(length),
      "accuracy": _finite(float(np.mean(accuracy))) if accuracy is not None else None,
      "accuracy_by_seed": _finite_list(accuracy) if accuracy is not None else None,
      "solved_by_seed": [bool(s) for s in solved], "solved": bool(np.all(solved)),
      # ||dJ/dh_1|| / ||dJ/dh_T||: the share of the gradient at the last state
      # that reaches the first (geometric mean over seeds), at the initial
      # parameters and at the last training step; of the bottom layer's states.
      "grad_share_init": _geometric_mean(_gradient_share(first_norms)),
      "grad_share_final": _geometric_mean(_gradient_share(final_norms)),
      "curve": {"step": curve_steps, "loss": curve_loss},
      "seconds": round(train_seconds, 1)}
  writer.write(steps, "eval", **tags, row=row)
  logging.info("long_range %s %s T=%d: error %s (baseline %.3g), solved %s, %.0f s",
               task.name, tags["model"], length, np.round(error, 4), row["baseline"],
               row["solved_by_seed"], train_seconds)
  return row


def _long_range_plan(config: ml_collections.ConfigDict) -> list[tuple]:
  """Every (task, cell, init, T) to run, checked before anything trains."""
  c = config.long_range  # sizes, counts and task names: config_schema
  plan = []
  for name in parse_list(c.tasks, str, "long_range.tasks"):
    task = memory_tasks.get_task(name, c.vocab_size)
    t = c[name]
    models = [parse_model(m, c.cell_options)
              for m in parse_list(t.models or c.models, str, f"long_range.{name}.models")]
    lengths = parse_list(t.lengths, int, f"long_range.{name}.lengths")
    for length in lengths:
      try:
        task.batch(np.random.default_rng(0), 1, length)
      except ValueError as e:
        raise ValueError(f"long_range.{name}.lengths: {e}") from None
    plan += [(task, cell, init, length) for cell, init in models for length in lengths]
  return plan


def _run_key(record: dict) -> tuple:
  """(task, model, T) of a metrics.jsonl record or a result row."""
  return record.get("task"), record.get("model"), record.get("T")


def model_name(cell: str, init: str) -> str:
  """'lstm/chrono', or the cell's name alone for its own initialisation."""
  return f"{cell}/{init}" if init != "default" else cell


def _plan_key(task: memory_tasks.Task, cell: str, init: str, length: int) -> tuple:
  return task.name, model_name(cell, init), length


def _finished_rows(workdir: pathlib.Path) -> dict[tuple, dict]:
  """The rows of the runs already finished: their 'eval' records in metrics.jsonl."""
  return {_run_key(r): r["row"] for r in metrics_lib.read_metrics(workdir)
          if r.get("split") == "eval" and "row" in r}


def train_long_range_runs(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """Trains every run of the plan that metrics.jsonl has no 'eval' record of,
  after dropping the lines an unfinished run left there."""
  plan = _long_range_plan(config)
  finished = _finished_rows(workdir)
  metrics_lib.keep_metrics(workdir, lambda r: _run_key(r) in finished)
  writer = metrics_lib.MetricWriter(workdir, tensorboard=False)
  try:
    for task, cell, init, length in plan:
      if _plan_key(task, cell, init, length) not in finished:
        train_memory_task(config, task, cell, init, length, writer)
  finally:
    writer.close()


# Restarts of a stalled training process in a row that finish no run before
# run_long_range gives up (a restart that finishes one starts the count again).
STALL_RESTARTS = 10


def process_cpu_seconds(pid: int) -> float | None:
  """User + system CPU time of a running process (all its threads), from
  /proc; None where there is no /proc (then nothing is seen to stall)."""
  try:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
  except OSError:
    return None
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_watched(command: list[str], stall_seconds: float, env: dict | None = None,
                poll_seconds: float = 1.0) -> int | None:
  """Runs ``command``; returns its exit status, or None when its CPU time did
  not advance for ``stall_seconds`` (a deadlock: a slow process on a loaded
  machine still gets CPU time). A stalled process first gets SIGUSR1 (the
  training process answers with every thread's Python stack on stderr), then
  is killed."""
  proc = subprocess.Popen(command, env=env)
  try:
    last, still_since = None, time.monotonic()
    while True:
      try:
        return proc.wait(timeout=poll_seconds)
      except subprocess.TimeoutExpired:
        pass
      cpu = process_cpu_seconds(proc.pid)
      now = time.monotonic()
      if cpu is None or cpu != last:
        last, still_since = cpu, now
      elif now - still_since >= stall_seconds:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        return None
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def _long_range_child(workdir: str, verbosity: str) -> None:
  """The training process of ``_train_watched``: trains what ``workdir``'s
  config.json plans and metrics.jsonl lacks."""
  faulthandler.register(signal.SIGUSR1, all_threads=True)
  flags.FLAGS.mark_as_parsed()  # no absl flags here; logging as under app.run
  logging.use_absl_handler()
  logging.set_verbosity(int(verbosity))
  cli.filter_logs()
  workdir = pathlib.Path(workdir)
  config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
  train_long_range_runs(config, workdir)


def _train_watched(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """``train_long_range_runs`` in a child process, restarted when it stalls.

  With jaxlib 0.10.2 on a 2-core CPU the default grid's process stopped for
  good at the start of one of its LSTM runs in each of four attempts on an
  idle machine (every thread blocked, CPU time standing still). Whatever the
  cause inside XLA's CPU runtime, a fresh process continues: the runs already
  finished are kept (their 'eval' records), the stalled one starts again
  from its seed and gives the same result.
  """
  stall = config.long_range.stall_seconds
  package_root = str(pathlib.Path(__file__).resolve().parents[2])
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
  command = [sys.executable, "-c",
             "import sys; from rnn_research.studies import gradients; "
             "gradients._long_range_child(*sys.argv[1:])",
             str(workdir), str(logging.get_verbosity())]
  fruitless = 0  # stalls in a row that finished no run
  while True:
    finished = len(_finished_rows(workdir))
    status = run_watched(command, stall, env)
    if status == 0:
      return
    if status is not None:
      raise RuntimeError(f"long_range training in {workdir} failed (exit status "
                         f"{status}); its error is above")
    fruitless = 0 if len(_finished_rows(workdir)) > finished else fruitless + 1
    if fruitless > STALL_RESTARTS:
      raise RuntimeError(f"long_range training in {workdir} stalled {fruitless} times "
                         "in a row without finishing a run; rerun to continue")
    logging.warning("long_range: the training process used no CPU time for %g s "
                    "(stalled); restarting it, finished runs are kept", stall)


def run_long_range(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  """Error and solved-or-not against T, per task and cell/init, over seeds.

  The runs train in a watched child process (``long_range.stall_seconds``;
  0: in this process). A rerun (same config) keeps the runs already finished
  (their rows are the 'eval' records of metrics.jsonl) and redoes the rest.
  """
  c = config.long_range
  plan = _long_range_plan(config)
  if c.stall_seconds > 0:
    _train_watched(config, workdir)
  else:
    train_long_range_runs(config, workdir)
  finished = _finished_rows(workdir)
  rows = [finished[_plan_key(*run)] for run in plan]
  tasks = list(dict.fromkeys(r["task"] for r in rows))
  longest = {t: {} for t in tasks}
  for r in rows:
    best = longest[r["task"]].get(r["model"])
    if r["solved"] and (best is None or r["T"] > best):
      longest[r["task"]][r["model"]] = r["T"]
    longest[r["task"]].setdefault(r["model"], None)
  return {"rows": rows, "tasks": tasks,
          "models": {t: list(dict.fromkeys(r["model"] for r in rows if r["task"] == t))
                     for t in tasks},
          "lengths": {t: list(dict.fromkeys(r["T"] for r in rows if r["task"] == t))
                      for t in tasks},
          "train_steps": {t: c[t].train_steps for t in tasks},
          "longest_solved": longest, "seeds": c.seeds, "hidden_size": c.hidden_size,
          "num_layers": c.num_layers, "connection": c.connection,
          "cell_options": dict(c.cell_options),
          "batch_size": c.batch_size, "eval_size": c.eval_size,
          "optim": c.optim.to_dict(), "solved_mse": c.solved_mse,
          "solved_accuracy": c.solved_accuracy, "vocab_size": c.vocab_size}


# ---------------------------------------------------------------------------
# clipping


def one_unit_loss(seq_len: int, x0: float, target: float) -> Callable[[jax.Array], jax.Array]:
  """Loss of Pascanu et al.'s one-unit RNN as a function of (w, b).

  Their x_t = w sigmoid(x_{t-1}) + b is, with h = sigmoid(x), the Elman cell
  h_t = sigmoid(w h_{t-1} + b) with no input; the loss is
  (h_T - sigmoid(target))^2 from h_0 = sigmoid(x0).
  """
  layer = Recurrent(cells_lib.ElmanCell(hidden_size=1, activation="sigmoid"))
  inputs = jnp.zeros((1, seq_len, 1))
  h0 = jnp.full((1, 1), jax.nn.sigmoid(x0))
  goal = jax.nn.sigmoid(target)

  def loss(wb):
    w, b = wb[0], wb[1]
    params = {"cell": {"input": {"kernel": jnp.zeros((1, 1)), "bias": b[None]},
                       "recurrent_kernel": w[None, None]}}
    _, h_last = layer.apply({"params": params}, inputs, h0)
    return jnp.square(h_last[0, 0] - goal)

  return loss


def sgd_trajectory(loss: Callable, start, learning_rate: float, steps: int,
                   clip_norm: float) -> dict[str, np.ndarray]:
  """Plain SGD from ``start`` through ``optim.make_optimizer`` (clipping first)."""
  opt_config = ml_collections.ConfigDict({
      "name": "sgd", "learning_rate": learning_rate, "clip_norm": clip_norm,
      "schedule": "constant", "momentum": 0.0})
  tx = optim.make_optimizer(opt_config, steps, steps)

  def step(carry, _):
    wb, opt_state = carry
    value, grad = jax.value_and_grad(loss)(wb)
    updates, opt_state = tx.update(grad, opt_state, wb)
    return (wb + updates, opt_state), (wb, value, jnp.linalg.norm(grad))

  wb0 = jnp.asarray(start, jnp.float32)
  (wb_last, _), (points, values, grad_norms) = jax.lax.scan(
      step, (wb0, tx.init(wb0)), None, length=steps)  # an optimisation loop, not time
  points = np.concatenate([np.asarray(points), np.asarray(wb_last)[None]])  # (S+1, 2)
  values = np.append(np.asarray(values), float(loss(wb_last)))
  return {"points": points, "loss": values, "grad_norm": np.asarray(grad_norms)}


def run_clipping(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  """The cliff: loss surface over (w, b) and SGD with and without clipping."""
  c = config.clipping
  loss = one_unit_loss(c.seq_len, c.x0, c.target)
  w_lo, w_hi = parse_list(c.w_range, float, "clipping.w_range")
  b_lo, b_hi = parse_list(c.b_range, float, "clipping.b_range")
  w_axis, b_axis = np.linspace(w_lo, w_hi, c.grid), np.linspace(b_lo, b_hi, c.grid)
  ww, bb = np.meshgrid(w_axis, b_axis)  # (G, G): rows b, columns w
  grid_points = jnp.asarray(np.stack([ww.ravel(), bb.ravel()], axis=-1), jnp.float32)
  surface = np.asarray(jax.jit(jax.vmap(loss))(grid_points)).reshape(ww.shape)
  np.savez_compressed(workdir / "surface.npz", w=w_axis, b=b_axis, loss=surface)

  starts = [parse_list(s, float, "clipping.starts") for s in c.starts.split(";") if s.strip()]
  runs = []
  for start in starts:
    for clip_norm in (0.0, c.clip_norm):
      t = sgd_trajectory(loss, start, c.learning_rate, c.steps, clip_norm)
      step_sizes = np.linalg.norm(np.diff(t["points"], axis=0), axis=-1)
      runs.append({
          "start": list(start), "clip_norm": clip_norm,
          "final_loss": float(t["loss"][-1]), "final_point": t["points"][-1].tolist(),
          "min_loss": float(np.min(t["loss"])),
          "max_step": float(step_sizes.max()), "max_grad_norm": float(t["grad_norm"].max()),
          "trajectory": t["points"].tolist(), "grad_norms": t["grad_norm"].tolist()})
  clipped = [r["final_loss"] for r in runs if r["clip_norm"] > 0]
  unclipped = [r["final_loss"] for r in runs if r["clip_norm"] == 0]
  return {"runs": runs, "surface_file": "surface.npz", "surface_min": float(surface.min()),
          "surface_max": float(surface.max()), "learning_rate": c.learning_rate,
          "steps": c.steps, "clip_norm": c.clip_norm,
          "mean_final_loss": {"clipped": float(np.mean(clipped)),
                              "unclipped": float(np.mean(unclipped))}}


# ---------------------------------------------------------------------------
# depth


def layer_gradient_norms(model: LanguageModel) -> Callable[[Any, Any, Any], list[float]]:
  """A function ``(params, inputs, targets) -> [mean ||dJ/dh_t|| per layer]``, J the
  mean token loss of the window and the mean over (b, t); compiled once per model."""

  @jax.jit
  def norms(params, inputs, targets):
    step_losses, zeros = probes.language_model_losses(model, {"params": params}, inputs,
                                                      targets)
    return [jnp.mean(n) for n in probes.state_gradient_norms(step_losses, zeros)]

  return lambda *args: [float(n) for n in norms(*args)]


def run_depth(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
  """Layers x connection: validation perplexity and the gradient reaching layer 1."""
  d = config.depth
  layers = parse_list(d.layers, int, "depth.layers")
  connections = parse_list(d.connections, str, "depth.connections")
  corpus = corpus_lib.load_corpus(config.lm.data)
  inputs, targets = probe_batch(corpus.valid, d.batch_size, d.seq_len)
  rows = []
  for num_layers in layers:
    for connection in connections:
      lm = lm_config_for(config, num_layers=num_layers, connection=connection)
      model = lm_study.build_model(lm, len(corpus.vocab))
      gradient_norms = layer_gradient_norms(model)
      at_init = gradient_norms(init_params(model, lm.seed), inputs, targets)
      results, _, params = train_language_model(
          lm, workdir / "runs" / f"{num_layers}x_{connection}")
      trained = gradient_norms(params, inputs, targets)
      rows.append({
          "layers": num_layers, "connection": connection,
          "valid_ppl": results["valid_ppl"], "steps": results["steps"],
          "bottom_grad_init": at_init[0], "bottom_grad_trained": trained[0],
          "top_grad_trained": trained[-1],
          "bottom_over_top_trained": trained[0] / trained[-1] if trained[-1] else None,
          "grad_by_layer_trained": trained})
      logging.info("depth %d x %s: valid ppl %.2f, bottom grad %.3g", num_layers,
                   connection, results["valid_ppl"], trained[0])
  return {"rows": rows, "layers": layers, "connections": connections,
          "cell": config.lm.model.cell, "hidden_size": config.lm.model.hidden_size,
          "train_steps": config.lm.max_steps, "data": corpus.source,
          "optimal_valid_ppl": (corpus.optimal_ppl or {}).get("valid")
          if getattr(corpus, "optimal_ppl", None) else None}


_RUNNERS = {
    "spectral": run_spectral,
    "cells": run_cells,
    "long_range": run_long_range,
    "clipping": run_clipping,
    "depth": run_depth,
}
_CHECKS = {"long_range": _long_range_plan}
