"""Language-model training by truncated BPTT, evaluated by perplexity.

``train_and_evaluate(config, workdir)`` is the whole study: it loads the
corpus, builds the model and the ``clip_by_global_norm -> optimizer`` chain,
trains with the hidden state carried across BPTT windows (Zaremba et al.
2014), validates every epoch, keeps the best checkpoint by validation
perplexity, and at the end reports validation and test perplexity of that
best checkpoint.

Everything the loop depends on is a function of the step or lives in the
checkpoint, so a run killed at any point (SIGKILL included) and restarted with
the same command continues exactly:

* data position: epoch = step // steps_per_epoch, window = step % steps_per_epoch;
* dropout randomness: ``fold_in(dropout_key, step)``;
* learning rate: a pure function of the step (``optim.learning_rate_schedule``);
* parameters, optimizer state, carried hidden state, skipped-update counters:
  in ``TrainState``, saved by orbax;
* best-so-far and the per-epoch validation history: in the checkpoint's meta.

SIGTERM or SIGINT saves a checkpoint at the next step boundary and returns.
A non-finite loss or gradient, or a loss past the range of exp (a diverged
model: its perplexity would be inf), never reaches the parameters (the update is
skipped on the device); with ``config.nonfinite = 'stop'`` the run then ends
with an error naming the step and the last good checkpoint.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from rnn_research import checkpoint as ckpt_lib
from rnn_research import config_schema
from rnn_research import metrics as metrics_lib
from rnn_research import optim
from rnn_research import parallel
from rnn_research import probes
from rnn_research import sampling
from rnn_research.data import batching
from rnn_research.data import corpus as corpus_lib
from rnn_research.models import LanguageModel

# Config fields that define what a checkpoint means; a workdir whose
# config.json differs in any of them holds another run.
_IDENTITY_FIELDS = ("seed", "model", "data", "optim")
_EVAL_ONLY_FIELDS = ("eval_batch_size", "eval_bptt")
NONFINITE_MODES = ("stop", "skip")
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


class NonFiniteError(ValueError):
  """A non-finite loss or gradient under ``nonfinite='stop'``."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: updates done (skipped ones included)
  params: Any
  opt_state: Any
  carries: Any  # hidden state carried into the next BPTT window
  skipped: jax.Array  # int32: non-finite updates skipped
  first_nonfinite: jax.Array  # int32: step of the first non-finite update, -1 if none


def build_model(config: ml_collections.ConfigDict, vocab_size: int) -> LanguageModel:
  m = config.model
  return LanguageModel(
      vocab_size=vocab_size, cell=m.cell, hidden_size=m.hidden_size,
      num_layers=m.num_layers, embed_size=m.embed_size or None,
      dropout_rate=m.dropout_rate, variational_dropout=m.variational_dropout,
      connection=m.connection, tie_weights=m.tie_weights, init_scale=m.init_scale,
      cell_options=m.cell_options.to_dict() if hasattr(m.cell_options, "to_dict")
      else dict(m.cell_options or {}),
      bidirectional=m.bidirectional, dtype=DTYPES[m.dtype], unroll=m.unroll)


def token_losses(logits, targets):
  """Per-token cross-entropy in nats, (B, T)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets)


def make_train_step(model: LanguageModel, tx: optax.GradientTransformation,
                    schedule, config: ml_collections.ConfigDict):
  """The jitted update: (state, inputs, targets, dropout_key) -> (state, metrics)."""
  clip_norm = config.optim.clip_norm
  sum_over_time = config.optim.loss_sum_over_time

  record = config.record_step_gradients

  def train_step(state: TrainState, inputs, targets, dropout_key):
    rng = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params, perturbations):
      logits, carries = model.apply({"params": params}, inputs, state.carries,
                                    deterministic=False, rngs={"dropout": rng},
                                    carry_perturbations=perturbations)
      mean_loss = token_losses(logits, targets).mean()
      # Zaremba et al.'s reference code differentiates the loss summed over the
      # BPTT window (averaged over the batch); their learning rate assumes it.
      objective = mean_loss * inputs.shape[1] if sum_over_time else mean_loss
      return objective, (mean_loss, carries)

    # With record_step_gradients, also differentiate with respect to zero
    # perturbations of every layer's state: their gradients are dJ/dh_t.
    perturbations = (probes.zero_perturbations(state.carries, inputs.shape[1])
                     if record else None)
    (_, (loss, carries)), (grads, state_grads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.params, perturbations)
    grad_norm = optax.global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # A loss whose perplexity overflows counts as non-finite: the run has diverged.
    finite = (jnp.isfinite(grad_norm) & jnp.isfinite(loss)
              & (loss < metrics_lib.MAX_LOG_PERPLEXITY))
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    new_state = TrainState(
        step=state.step + 1,
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        carries=keep(carries, state.carries),
        skipped=state.skipped + (~finite).astype(jnp.int32),
        first_nonfinite=jnp.where(~finite & (state.first_nonfinite < 0),
                                  state.step, state.first_nonfinite))
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "clipped": (grad_norm > clip_norm) if clip_norm > 0 else jnp.bool_(False),
        "learning_rate": schedule(state.step),
    }
    if record:  # (L, T): batch-mean ||dJ/dh_t|| per layer and window position
      metrics["step_grad_norms"] = jnp.stack(
          [probes.state_norms(g).mean(axis=0) for g in state_grads])
    return new_state, metrics

  return train_step


def make_eval_step(model: LanguageModel):
  """(params, carries, inputs, targets) -> (carries, summed loss, token count)."""

  def eval_step(params, carries, inputs, targets):
    logits, carries = model.apply({"params": params}, inputs, carries)
    return carries, token_losses(logits, targets).sum(), targets.size

  return jax.jit(eval_step)


def evaluate(eval_step, model: LanguageModel, params, ids: np.ndarray,
             batch_size: int, bptt: int, mesh=None) -> float:
  """Perplexity of ``ids`` with the state carried across windows.

  Every token but the first is predicted once (the last window may be
  shorter), so with ``batch_size=1`` this is the exact full-context
  perplexity of the split, as the reference code's test evaluation.
  """
  streams = batching.batchify(ids, batch_size)  # (B, N)
  carries = model.initial_carries(batch_size)
  total, count = 0.0, 0
  for start in range(0, streams.shape[1] - 1, bptt):
    length = min(bptt, streams.shape[1] - 1 - start)
    inputs = streams[:, start:start + length]
    targets = streams[:, start + 1:start + 1 + length]
    if mesh is not None and batch_size % mesh.devices.size == 0:
      inputs, targets = parallel.shard_batch(mesh, (inputs, targets))
    carries, loss_sum, n = eval_step(params, carries, inputs, targets)
    total += float(loss_sum)
    count += int(n)
  return metrics_lib.perplexity(total / max(count, 1))


def per_token_figures(ppl: float | None, split: str, unit: str) -> dict:
  """For a character model, ``{split}_nats`` and ``{split}_bpc`` of a perplexity.

  Nats per character = ln(ppl); bits per character = nats / ln 2. Empty for
  word models (their figure is the perplexity) and for a missing split.
  """
  if unit != "char" or ppl is None:
    return {}
  nats = math.log(ppl)
  return {f"{split}_nats": nats, f"{split}_bpc": nats / math.log(2)}


def _fingerprint(config: ml_collections.ConfigDict) -> dict:
  d = config.to_dict()
  fp = {k: d.get(k) for k in _IDENTITY_FIELDS}
  fp["data"] = {k: v for k, v in (fp["data"] or {}).items() if k not in _EVAL_ONLY_FIELDS}
  return fp


def _without_defaults(fp: dict) -> dict:
  """``fp`` less the optim fields at the value that stands for them when absent
  (``optim.DEFAULTS``), so a run recorded before such a field existed resumes."""
  if isinstance(fp.get("optim"), dict):
    fp["optim"] = {k: v for k, v in fp["optim"].items()
                   if not (k in optim.DEFAULTS and v == optim.DEFAULTS[k])}
  return fp


def check_workdir(workdir: pathlib.Path, config, fingerprint=None) -> None:
  """Refuses a workdir whose config.json is another run's.

  Two configs are the same run when ``fingerprint`` (by default the fields
  that shape a language-model run) gives equal dicts.
  """
  fingerprint = fingerprint or _fingerprint
  path = workdir / "config.json"
  if not path.exists():
    return
  try:
    stored = ml_collections.ConfigDict(json.loads(path.read_text()))
  except Exception as e:
    raise ckpt_lib.CheckpointError(f"unreadable {path}: {e}") from None
  # Through JSON both, so that a tuple and the list it was stored as agree.
  normal = lambda c: _without_defaults(
      json.loads(json.dumps(metrics_lib.jsonable(fingerprint(c)))))
  old, new = normal(stored), normal(config)
  if old != new:
    flat = lambda d, p="": ({f"{p}{k}": v for kk, vv in d.items() for k, v in
                             flat(vv, f"{kk}.").items()} if isinstance(d, dict) else {p[:-1]: d})
    fo, fn = flat(old), flat(new)
    diff = sorted(k for k in fo.keys() | fn.keys() if fo.get(k) != fn.get(k))
    k = diff[0]
    raise ckpt_lib.CheckpointError(
        f"workdir {workdir} holds another run ({k}: {fo.get(k)!r} there, "
        f"{fn.get(k)!r} now{f', and {len(diff) - 1} more' if len(diff) > 1 else ''}); "
        "use a new --workdir")


def _load_vocab_and_corpus(config, workdir: pathlib.Path):
  corpus = corpus_lib.load_corpus(config.data)
  vocab_path = workdir / "vocab.json"
  if vocab_path.exists():
    stored = corpus_lib.Vocab.from_json(vocab_path)
    if stored != corpus.vocab:
      raise ckpt_lib.CheckpointError(
          f"vocabulary mismatch: {vocab_path} has {len(stored)} types, the data "
          f"gives {len(corpus.vocab)}; use a new --workdir for another corpus")
  return corpus


def _meta(config, step, steps_per_epoch, history, best) -> dict:
  return {"step": int(step), "epoch": int(step) // steps_per_epoch,
          "steps_per_epoch": steps_per_epoch, "history": history, "best": best,
          "fingerprint": _fingerprint(config)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the configured language model; returns results.json's dict."""
  config_schema.validate(config, config_schema.lm_schema())
  workdir = pathlib.Path(workdir)
  check_workdir(workdir, config)
  corpus = _load_vocab_and_corpus(config, workdir)
  model = build_model(config, len(corpus.vocab))
  d = config.data
  unit = d.get("unit", "word")
  mesh = parallel.make_mesh() if config.data_parallel else None
  if mesh is not None:
    parallel.check_divisible(mesh, d.batch_size)
  train_batches = batching.LMBatches(corpus.train, d.batch_size, d.bptt)
  steps_per_epoch = len(train_batches)
  total_steps = steps_per_epoch * config.num_epochs
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)

  schedule = optim.learning_rate_schedule(config.optim, steps_per_epoch, total_steps)
  tx = optim.make_optimizer(config.optim, steps_per_epoch, total_steps)
  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  carries0 = model.initial_carries(d.batch_size)
  params = jax.jit(model.init)(init_key, jnp.zeros((d.batch_size, d.bptt), jnp.int32),
                               carries0)["params"]
  state = TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                     carries=carries0, skipped=jnp.int32(0),
                     first_nonfinite=jnp.int32(-1))
  num_params = sum(x.size for x in jax.tree.leaves(params))
  logging.info("%s: %d parameters, %d steps per epoch, %d steps", config.model.cell,
               num_params, steps_per_epoch, total_steps)

  primary = jax.process_index() == 0
  latest = ckpt_lib.Checkpointer(workdir / "checkpoints" / "latest", max_to_keep=2)
  best_ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints" / "best", max_to_keep=1)
  history: list[dict] = []
  best = {"valid_ppl": None, "step": None, "epoch": None}
  if latest.steps():
    state, meta, step = latest.restore(state)
    history, best = meta["history"], meta["best"]
    logging.info("resumed from %s at step %d", latest.directory, step)
    if primary:
      # Metrics logged after that checkpoint will be logged again.
      metrics_lib.keep_metrics(workdir, lambda r: r["step"] <= step)
  # Only now, with the checkpoint known to fit, does the run describe itself.
  if primary:  # with several hosts, one writes the run's files (orbax coordinates its own)
    metrics_lib.write_config(workdir, config)
    corpus.vocab.to_json(workdir / "vocab.json")
  if mesh is not None:
    state = parallel.replicate(mesh, state)
    state = state.replace(carries=parallel.shard_batch(mesh, state.carries))

  train_step = jax.jit(make_train_step(model, tx, schedule, config), donate_argnums=0)
  eval_step = make_eval_step(model)
  writer = metrics_lib.MetricWriter(workdir, tensorboard=config.tensorboard, enabled=primary)
  progress = metrics_lib.Progress(total_steps)
  tokens_per_step = d.batch_size * d.bptt
  pending: list[dict] = []
  window_start, window_steps = time.perf_counter(), 0
  tok_rates: list[float] = []
  compile_seconds = None

  def save(step):
    _check_finite(state, config, latest)
    latest.save(step, state, _meta(config, step, steps_per_epoch, history, best))

  step = int(state.step)
  try:
    with ckpt_lib.Preemption() as preemption:
      while step < total_steps:
        if preemption.requested:
          save(step)
          latest.wait()
          writer.close()
          logging.warning("preempted: checkpoint saved at step %d; rerun the same "
                          "command to continue", step)
          return {"preempted": True, "step": step}
        epoch, position = divmod(step, steps_per_epoch)
        if position == 0:  # a new pass over the data starts from a zero state
          state = state.replace(carries=jax.tree.map(jnp.zeros_like, state.carries))
        inputs, targets = train_batches[position]
        if mesh is not None:
          inputs, targets = parallel.shard_batch(mesh, (inputs, targets))
        t0 = time.perf_counter()
        state, step_metrics = train_step(state, inputs, targets, dropout_key)
        preemption.dispatched(step_metrics)
        if compile_seconds is None:
          jax.block_until_ready(state.step)
          compile_seconds = time.perf_counter() - t0
          window_start, window_steps = time.perf_counter(), 0
          logging.info("first step (compile included): %.1f s", compile_seconds)
        else:
          window_steps += 1
        pending.append(step_metrics)
        step += 1
        end_of_epoch = step % steps_per_epoch == 0 or step == total_steps
        if step % config.log_every_steps == 0 or end_of_epoch:
          logged = jax.device_get(pending)
          elapsed = time.perf_counter() - window_start
          tok_s = window_steps * tokens_per_step / elapsed if window_steps else float("nan")
          if window_steps >= 2:
            tok_rates.append(tok_s)
          loss = float(np.mean([m["loss"] for m in logged]))
          writer.write(step, "train", loss=loss, ppl=metrics_lib.perplexity(loss),
                       learning_rate=float(logged[-1]["learning_rate"]),
                       grad_norm=float(np.mean([m["grad_norm"] for m in logged])),
                       grad_norm_max=float(np.max([m["grad_norm"] for m in logged])),
                       clipped_fraction=float(np.mean([m["clipped"] for m in logged])),
                       skipped=int(state.skipped), tokens_per_sec=tok_s, epoch=epoch,
                     **({"step_grad_norms": np.mean([m["step_grad_norms"] for m in logged],
                                                    axis=0).tolist()}
                        if config.record_step_gradients else {}))
          progress.update(step, tok_s, f"epoch {epoch + 1} loss {loss:.3f} "
                          f"ppl {metrics_lib.perplexity(loss):.1f}")
          _check_finite(state, config, latest)
          pending, window_start, window_steps = [], time.perf_counter(), 0
        eval_every = config.get("eval_every_steps", 0)
        if end_of_epoch or (eval_every and step % eval_every == 0):
          valid_ppl = evaluate(eval_step, model, state.params, corpus.valid,
                               d.eval_batch_size, d.eval_bptt, mesh)
          per_token = per_token_figures(valid_ppl, "valid", unit)
          history.append({"epoch": epoch + 1, "step": step, "valid_ppl": valid_ppl,
                          **per_token})
          writer.write(step, "valid", ppl=valid_ppl, epoch=epoch + 1,
                       **{k.removeprefix("valid_"): v for k, v in per_token.items()})
          logging.info("epoch %d: valid ppl %.3f%s", epoch + 1, valid_ppl,
                       f", {per_token['valid_bpc']:.4f} bpc" if per_token else "")
          if best["valid_ppl"] is None or valid_ppl < best["valid_ppl"]:
            best = {"valid_ppl": valid_ppl, "step": step, "epoch": epoch + 1}
            _check_finite(state, config, latest)
            best_ckpt.save(step, state.params, _meta(config, step, steps_per_epoch,
                                                     history, best))
            best_ckpt.wait()  # the best must be on disk before 'latest' points past it
          save(step)
        elif config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
          save(step)
  finally:
    # Never leave a save half-done, also when an error ends the run.
    latest.wait()
    best_ckpt.wait()

  # Final figures from the best checkpoint by validation perplexity.
  params, _, best_step = best_ckpt.restore(state.params)
  valid_ppl = evaluate(eval_step, model, params, corpus.valid, d.eval_batch_size,
                       d.eval_bptt, mesh)
  # A corpus cut by fractions may have no test split (nanoGPT's split).
  test_ppl = (evaluate(eval_step, model, params, corpus.test, d.eval_batch_size,
                       d.eval_bptt, mesh) if corpus.test.size > d.eval_batch_size else None)
  writer.write(step, "test", ppl=test_ppl, valid_ppl=valid_ppl, best_step=best_step)
  writer.close()
  results = {
      "valid_ppl": valid_ppl, "test_ppl": test_ppl,
      "tokens_per_sec": float(np.median(tok_rates)) if tok_rates else None,
      "compile_seconds": compile_seconds, "best_step": best_step,
      "best_epoch": best["epoch"], "steps": step, "epochs": -(-step // steps_per_epoch),
      "num_params": int(num_params), "skipped_updates": int(state.skipped),
      "history": history, "device": str(jax.devices()[0].platform),
      "unit": unit, "split_tokens": {s: int(corpus.split(s).size)
                                     for s in corpus_lib.SPLITS},
      **per_token_figures(valid_ppl, "valid", unit),
      **per_token_figures(test_ppl, "test", unit),
  }
  if corpus.split_note:
    results["splits"] = corpus.split_note
  if getattr(corpus, "optimal_ppl", None):
    results["optimal_valid_ppl"] = corpus.optimal_ppl["valid"]
    results["optimal_test_ppl"] = corpus.optimal_ppl["test"]
  if primary:
    markdown = results_markdown(config, results)
    num_sentences = config.get("samples", {}).get("grammar_sentences", 0)
    if config.data.source == "synthetic" and num_sentences:
      grammar_md, results["generated"] = sampling.grammar_report(
          model, params, corpus.vocab, num_sentences=num_sentences, seed=config.seed)
      markdown += "\n\n" + grammar_md
    elif config.get("samples"):  # the grammar's section has the samples of its model
      markdown += "\n\n" + sampling.samples_markdown(model, params, corpus.vocab,
                                                     unit, config.samples)
    metrics_lib.write_results(workdir, results, markdown)
  latest.close()
  best_ckpt.close()
  logging.info("valid ppl %.3f, test ppl %s", valid_ppl,
               "-" if test_ppl is None else f"{test_ppl:.3f}")
  return results


def check_finite(first_nonfinite: int, nonfinite: str, latest: ckpt_lib.Checkpointer,
                 what: str = "loss, gradient or perplexity") -> None:
  """Under ``nonfinite='stop'``, raises ``NonFiniteError`` once an update was
  non-finite (``first_nonfinite`` >= 0, the 0-based step), naming the step and
  the last good checkpoint in ``latest``. Every trainer's guard ends here."""
  if first_nonfinite >= 0 and nonfinite == "stop":
    good = latest.latest_step()
    where = (f"last good checkpoint: step {good} in {latest.directory}" if good is not None
             else "no checkpoint was saved")
    raise NonFiniteError(f"non-finite {what} at step {first_nonfinite + 1}; {where}")


def _check_finite(state: TrainState, config, latest: ckpt_lib.Checkpointer) -> None:
  check_finite(int(state.first_nonfinite), config.nonfinite, latest)


def results_markdown(config, results: dict) -> str:
  """The run's row in the layout of Zaremba et al. 2014's Table 1.

  Character models show bits and nats per character beside the perplexity,
  and the summary says which split each figure is on.
  """
  m = config.model
  char = results.get("unit") == "char"
  header = ["model", "cell", "layers", "hidden", "params", "valid ppl", "test ppl"]
  if char:
    header += ["valid bpc", "test bpc", "valid nats/char", "test nats/char"]
  name = config.get("name", "") or f"{m.num_layers}x{m.hidden_size} {m.cell}"
  ppl = lambda x: "-" if x is None else f"{x:.2f}"
  four = lambda x: "-" if x is None else f"{x:.4f}"
  rows = [[name, m.cell, m.num_layers, m.hidden_size, f"{results['num_params'] / 1e6:.{2 if char else 1}f}M",
           ppl(results["valid_ppl"]), ppl(results["test_ppl"])]]
  if char:
    rows[0] += [four(results.get(k)) for k in ("valid_bpc", "test_bpc", "valid_nats",
                                               "test_nats")]
  paper = config.get("paper")
  if paper and paper.get("test"):
    rows.append([f"{paper.get('source', 'paper')}", paper.get("cell") or m.cell,
                 paper.get("num_layers") or m.num_layers,
                 paper.get("hidden_size") or m.hidden_size,
                 paper.get("params", ""), ppl(paper.get("valid")), ppl(paper.get("test"))])
  if "optimal_test_ppl" in results:
    rows.append(["true grammar (optimum)", "-", "-", "-", "-",
                 ppl(results["optimal_valid_ppl"]), ppl(results["optimal_test_ppl"])])
  rows = [row + ["-"] * (len(header) - len(row)) for row in rows]
  tps = results.get("tokens_per_sec")
  counts = results.get("split_tokens")
  unit_name = "characters" if char else "tokens"
  where = ""
  if counts:
    where = (f"valid = the validation split ({counts['valid']:,} {unit_name}), test = "
             + (f"the test split ({counts['test']:,} {unit_name})" if counts["test"]
                else "none (the corpus has no test split)")
             + (f"; {results['splits']}" if results.get("splits") else "") + ". ")
  lines = [f"# {name}", "", metrics_lib.markdown_table(header, rows), "",
           f"Figures of the best checkpoint (by validation perplexity): {where}"
           + ("bpc = nats per character / ln 2." if char else ""),
           "",
           f"Training throughput: {tps:,.0f} tokens/s on {results['device']}; "
           f"{results['steps']} steps, best epoch {results['best_epoch']}."
           if tps else ""]
  return "\n".join(lines)


def load_run(workdir: str):
  """(config, model, best params, vocab) of a language-model workdir."""
  workdir = pathlib.Path(workdir)
  config_path = workdir / "config.json"
  if not (config_path.exists() and (workdir / "vocab.json").exists()):
    raise ckpt_lib.CheckpointError(
        f"{workdir} is not a language-model workdir (no config.json/vocab.json)")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  config_schema.validate(config, config_schema.lm_schema())
  vocab = corpus_lib.Vocab.from_json(workdir / "vocab.json")
  model = build_model(config, len(vocab))
  target = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32),
                          model.initial_carries(1))["params"]
  params, _, _ = ckpt_lib.Checkpointer(workdir / "checkpoints" / "best").restore(target)
  return config, model, params, vocab


def restore_language_model(workdir: str):
  """(model, params, vocab) from a language-model workdir's best checkpoint.

  The architecture comes from the workdir's config.json and the vocabulary
  from its vocab.json, so the caller needs nothing but the path.
  """
  _, model, params, vocab = load_run(workdir)
  return model, params, vocab


def evaluate_workdir(workdir: str, splits=("valid", "test"), data_dir: str | None = None,
                     batch_size: int = 1, bptt: int = 200) -> dict:
  """Perplexity of a workdir's best checkpoint on its own data or on ``data_dir``.

  Another corpus is encoded with the run's vocabulary; its out-of-vocabulary
  words become ``<unk>`` and their rate is reported.
  """
  config, model, params, vocab = load_run(workdir)
  eval_step = make_eval_step(model)
  results = {}
  if data_dir:
    d = config.data
    texts, _ = corpus_lib.local_splits(data_dir, d.get("unit", "word"),
                                       d.get("valid_fraction", 0.05),
                                       d.get("test_fraction", 0.05))
    for split in splits:
      ids, num_oov = vocab.encode_with_oov(texts[split])
      results[split] = {"ppl": evaluate(eval_step, model, params, ids, batch_size, bptt),
                        "tokens": int(ids.size), "oov_rate": num_oov / max(ids.size, 1)}
  else:
    corpus = corpus_lib.load_corpus(config.data)
    if corpus.vocab != vocab:
      raise ckpt_lib.CheckpointError(f"the data of {workdir} no longer gives its vocabulary")
    for split in splits:
      ids = corpus.split(split)
      results[split] = {"ppl": evaluate(eval_step, model, params, ids, batch_size, bptt),
                        "tokens": int(ids.size)}
  return results
