"""The language-model trainer: contract files, exact resume, preemption, guards, bad input."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import test as test_config
from rnn_research import checkpoint as ckpt_lib
from rnn_research import optim
from rnn_research.studies import lm
from rnn_research.data import batching

from tests import REPO


def tiny_config(**overrides):
  c = test_config.get_config()
  c.num_epochs = 2
  c.data.num_train_sentences = 120
  c.data.num_valid_sentences = 20
  c.data.num_test_sentences = 20
  c.model.hidden_size = 8
  c.checkpoint_every_steps = 4
  # Train metrics every 2 steps: checkpoints (every 4) then fall on log
  # boundaries, so a resumed run's logged means equal an uninterrupted run's.
  c.log_every_steps = 2
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return c


def latest_params(workdir):
  """The newest 'latest' checkpoint's state, as NumPy arrays."""
  mgr = ckpt_lib.Checkpointer(pathlib.Path(workdir) / "checkpoints" / "latest")
  step = mgr.latest_step()
  state = mgr.read_state(step)
  mgr.close()
  return step, jax.tree.map(np.asarray, state["params"])


def assert_trees_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb) and la
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


@pytest.fixture
def reference_run(tiny_lm_run):
  """One uninterrupted run of the tiny config (conftest.py), read-only."""
  return tiny_lm_run


def test_run_writes_the_contract_files(reference_run):
  workdir, results = reference_run
  for name in ("config.json", "metrics.jsonl", "results.json", "results.md", "vocab.json"):
    assert (workdir / name).exists(), name
  stored = json.loads((workdir / "results.json").read_text())
  assert {"valid_ppl", "test_ppl", "tokens_per_sec"} <= stored.keys()
  assert stored["test_ppl"] == pytest.approx(results["test_ppl"])
  # The optimum of the synthetic grammar is reported and is a lower bound.
  assert 1.0 < stored["optimal_test_ppl"] < stored["test_ppl"]
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_records = [r for r in records if r["split"] == "train"]
  assert {"loss", "ppl", "learning_rate", "grad_norm", "clipped_fraction",
          "tokens_per_sec"} <= train_records[0].keys()
  assert [r["epoch"] for r in records if r["split"] == "valid"] == [1, 2]
  assert "| test ppl |" in (workdir / "results.md").read_text()


def test_training_lowers_validation_perplexity(reference_run):
  _, results = reference_run
  vocab_size = len(json.loads((reference_run[0] / "vocab.json").read_text())["tokens"])
  # A model that learned nothing scores about the vocabulary size.
  assert results["valid_ppl"] < 0.8 * vocab_size


def test_zaremba_schedule_halves_after_decay_epochs(reference_run):
  workdir, _ = reference_run
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  rates = {r["epoch"]: r["learning_rate"] for r in records if r["split"] == "train"}
  # test config: lr 1.0, x0.5 per epoch after decay_after_epochs=1.
  assert rates[0] == pytest.approx(1.0) and rates[1] == pytest.approx(0.5)


class _Crash(Exception):
  """Stands in for a kill between two checkpoints (the async saves still finish)."""


def _watch_windows(monkeypatch, at=None, action=None):
  """Records the training windows the trainer asks for, in order; on the
  ``at``-th request (counted from 0) first calls ``action()``. Evaluation
  does not go through ``LMBatches``, so the list is exactly the steps trained."""
  seen = []
  original = batching.LMBatches.__getitem__

  def getitem(self, i):
    if len(seen) == at:
      action()
    seen.append(i)
    return original(self, i)

  monkeypatch.setattr(batching.LMBatches, "__getitem__", getitem)
  return seen


def _metrics(workdir):
  """metrics.jsonl without its wall-clock field."""
  return [{k: v for k, v in r.items() if k != "tokens_per_sec"}
          for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())]


def _assert_resumed_run_equals_reference(workdir, seen, start, reference_run):
  """The second process trained only the steps after ``start`` and ended like
  the run that never stopped: figures, parameters and metrics.jsonl."""
  ref_dir, ref_results = reference_run
  steps_per_epoch, total = ref_results["steps"] // 2, ref_results["steps"]
  assert seen == [s % steps_per_epoch for s in range(start, total)]
  results = json.loads((workdir / "results.json").read_text())
  assert results["valid_ppl"] == ref_results["valid_ppl"]
  assert results["test_ppl"] == ref_results["test_ppl"]
  assert latest_params(workdir)[0] == latest_params(ref_dir)[0]
  assert_trees_equal(latest_params(workdir)[1], latest_params(ref_dir)[1])
  # Each step logged once, with the figures of the run that never stopped.
  assert _metrics(workdir) == _metrics(ref_dir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_checkpoint_at_the_step_it_reports_and_the_rerun_resumes_there(
    reference_run, tmp_path, monkeypatch, sig):
  """A real signal to this process while window 5 is fetched: the step in
  flight finishes, the run saves step 6 (not a multiple of
  checkpoint_every_steps=4, so only the signal handler's save can make it)
  and returns. The rerun starts at step 6 and trains the 46 steps left.

  Catches: no checkpoint saved on SIGTERM/SIGINT (no step 6 on disk; the
  rerun restarts at 4); resume replaced by restart (the rerun asks for all
  52 windows)."""
  _watch_windows(monkeypatch, at=5, action=lambda: os.kill(os.getpid(), sig))
  out = lm.train_and_evaluate(tiny_config(), str(tmp_path))
  assert out == {"preempted": True, "step": 6}
  ckpt = ckpt_lib.Checkpointer(tmp_path / "checkpoints" / "latest")
  assert ckpt.latest_step() == 6
  assert ckpt.read_meta(6)["step"] == 6 and int(ckpt.read_state(6)["step"]) == 6
  ckpt.close()
  if sig == signal.SIGINT:  # the same handler; the rerun is checked once, with SIGTERM
    return
  monkeypatch.undo()
  seen = _watch_windows(monkeypatch)
  lm.train_and_evaluate(tiny_config(), str(tmp_path))
  _assert_resumed_run_equals_reference(tmp_path, seen, 6, reference_run)


def test_a_signal_is_acted_on_within_a_step_of_the_device_not_at_the_next_log(
    tmp_path, sigterm_after_device_steps):
  """SIGTERM comes once the device has finished 5 steps of a run whose first
  fetch of a result is at the end of the epoch (step 26). The checkpoint is
  saved within two steps of the signal.

  Catches: the host left to run ahead of the device (JAX dispatches
  asynchronously): it has dispatched the whole epoch when the signal comes,
  and saves there, at the run's next fetch, 20 steps late."""
  sent = sigterm_after_device_steps(5)
  out = lm.train_and_evaluate(tiny_config(**{
      "model.hidden_size": 384, "log_every_steps": 1000, "checkpoint_every_steps": 0}),
      str(tmp_path))
  assert out["preempted"] and sent, (out, sent)
  assert out["step"] <= sent[0] + 2, (out, sent)


def test_run_killed_after_logging_resumes_from_its_checkpoint_and_trims_metrics(
    reference_run, tmp_path, monkeypatch):
  """The run dies fetching window 7: metrics.jsonl already holds step 6, the
  newest checkpoint is step 4. The rerun starts at step 4, drops the logged
  step 6 and logs it again.

  Catches: resume replaced by restart (52 windows asked for, not 48); the
  trimming of metrics.jsonl on resume disabled (step 6 logged twice)."""

  def crash():
    raise _Crash

  _watch_windows(monkeypatch, at=7, action=crash)
  with pytest.raises(_Crash):
    lm.train_and_evaluate(tiny_config(), str(tmp_path))
  assert [r["step"] for r in _metrics(tmp_path)][-1] == 6
  assert latest_params(tmp_path)[0] == 4
  monkeypatch.undo()
  seen = _watch_windows(monkeypatch)
  lm.train_and_evaluate(tiny_config(), str(tmp_path))
  _assert_resumed_run_equals_reference(tmp_path, seen, 4, reference_run)


def test_final_figures_come_from_the_best_checkpoint_not_the_last_parameters(
    tmp_path, monkeypatch):
  """A learning rate of 8 in epoch 2 wrecks the model, so the best validation
  perplexity is epoch 1's and the last parameters are far worse.

  Catches: results.json computed from the last parameters instead of the
  best checkpoint."""
  from rnn_research import optim
  monkeypatch.setattr(optim, "learning_rate_schedule", lambda o, steps_per_epoch, total: (
      lambda step: jnp.where(step < steps_per_epoch, 1.0, 8.0)))
  results = lm.train_and_evaluate(tiny_config(), str(tmp_path))
  first, second = results["history"]
  assert second["valid_ppl"] > 10 * first["valid_ppl"]  # it got worse after the best epoch
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert (on_disk["best_epoch"], on_disk["best_step"]) == (1, first["step"])
  assert on_disk["valid_ppl"] == pytest.approx(first["valid_ppl"], rel=1e-9)
  # Test perplexity of the best checkpoint, evaluated here independently.
  model, params, _ = lm.restore_language_model(str(tmp_path))
  corpus = lm.corpus_lib.load_corpus(tiny_config().data)
  c = tiny_config()
  want = lm.evaluate(lm.make_eval_step(model), model, params, corpus.test,
                        c.data.eval_batch_size, c.data.eval_bptt)
  assert on_disk["test_ppl"] == pytest.approx(want, rel=1e-6)
  assert latest_params(tmp_path)[0] == second["step"]  # and that is not what was scored


def _cli(workdir, *flags, config="configs/test.py"):
  return [sys.executable, "-m", "experiments.lm_perplexity", f"--config={config}",
          f"--workdir={workdir}", *flags]


def _tiny_flags():
  return ["--config.num_epochs=2", "--config.data.num_train_sentences=120",
          "--config.data.num_valid_sentences=20", "--config.data.num_test_sentences=20",
          "--config.model.hidden_size=8", "--config.checkpoint_every_steps=4",
          "--config.log_every_steps=2"]


def _wait_for_checkpoint(workdir, proc, newer_than, timeout=120):
  """Waits until the run has a finished checkpoint past step ``newer_than``."""
  ckdir = pathlib.Path(workdir) / "checkpoints" / "latest"
  deadline = time.time() + timeout
  while time.time() < deadline:
    steps = [int(p.name) for p in ckdir.glob("*") if p.name.isdigit()] if ckdir.exists() else []
    if steps and max(steps) > newer_than:
      return max(steps)
    if proc.poll() is not None:
      pytest.fail(f"run ended before a checkpoint past {newer_than}: {proc.stderr.read()}")
    time.sleep(0.05)
  pytest.fail("no checkpoint appeared")


def _checkpoint_steps(workdir):
  ckdir = pathlib.Path(workdir) / "checkpoints" / "latest"
  return sorted(int(p.name) for p in ckdir.glob("*") if p.name.isdigit()) if ckdir.exists() else []


def test_sigkill_and_sigterm_then_rerun_ends_like_uninterrupted_run(reference_run, tmp_path):
  """Kill -9 twice and SIGTERM once, each after the process has itself
  trained past every checkpoint already on disk; the rerun's figures and
  final parameters equal the run that never stopped, bitwise.

  Catches: resume replaced by restart (the last process does not resume).
  A missing save on SIGTERM is caught only when the signal lands past a
  periodic checkpoint, not always: the in-process signal test catches it."""
  ref_dir, ref_results = reference_run
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
    # Newer than anything on disk: a checkpoint this process trained to.
    on_disk = max(_checkpoint_steps(tmp_path), default=-1)
    proc = subprocess.Popen(_cli(tmp_path, *_tiny_flags()), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(tmp_path, proc, on_disk)
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    if sig == signal.SIGTERM:
      stderr = proc.stderr.read()
      assert rc == 0, stderr[-2000:]  # preemption: checkpoint saved, clean exit
      step = int(re.search(r"preempted: checkpoint saved at step (\d+)", stderr).group(1))
      assert step in _checkpoint_steps(tmp_path), (step, _checkpoint_steps(tmp_path))
    proc.stderr.close()
  last = max(_checkpoint_steps(tmp_path))
  final = subprocess.run(_cli(tmp_path, *_tiny_flags()), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
  assert final.returncode == 0, final.stderr[-2000:]
  assert re.search(rf"resumed from \S+ at step {last}\b", final.stderr), final.stderr[-2000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["valid_ppl"] == ref_results["valid_ppl"]
  assert results["test_ppl"] == ref_results["test_ppl"]
  assert_trees_equal(latest_params(tmp_path)[1], latest_params(ref_dir)[1])


def _poison_step(monkeypatch, bad_position):
  """Makes one training window hold an out-of-range token id: nn.Embed's
  gather fills it with NaN, so that step's loss and gradient are NaN."""
  original = batching.LMBatches.__getitem__

  def getitem(self, i):
    inputs, targets = original(self, i)
    if i == bad_position:
      inputs = inputs.copy()
      inputs[0, 0] = 10**6
    return inputs, targets

  monkeypatch.setattr(batching.LMBatches, "__getitem__", getitem)


def test_nonfinite_stop_names_the_step_and_saves_nothing_bad(tmp_path, monkeypatch):
  _poison_step(monkeypatch, 6)
  with pytest.raises(lm.NonFiniteError, match=r"step 7; last good checkpoint: step 4"):
    lm.train_and_evaluate(tiny_config(nonfinite="stop"), str(tmp_path))
  step, params = latest_params(tmp_path)
  assert step == 4
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_nonfinite_skip_drops_the_update_and_counts_it(tmp_path, monkeypatch):
  _poison_step(monkeypatch, 6)
  results = lm.train_and_evaluate(tiny_config(nonfinite="skip"), str(tmp_path))
  assert results["skipped_updates"] == 2  # window 6 in each of the two epochs
  assert np.isfinite(results["test_ppl"])
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(latest_params(tmp_path)[1]))


def test_a_diverging_run_ends_through_the_guard_not_an_overflow(tmp_path):
  # A huge learning rate without clipping: the loss grows past exp's range
  # (perplexity inf) while staying finite.
  diverging = {"optim.learning_rate": 1e6, "optim.clip_norm": 0.0}
  with pytest.raises(lm.NonFiniteError, match=r"^non-finite loss, gradient or "
                     r"perplexity at step \d+; (last good checkpoint|no checkpoint)"):
    lm.train_and_evaluate(tiny_config(**diverging), str(tmp_path / "stop"))
  # With 'skip' the run ends, and reports the diverged model's perplexity as inf.
  results = lm.train_and_evaluate(tiny_config(nonfinite="skip", **diverging),
                                     str(tmp_path / "skip"))
  assert results["skipped_updates"] > 0 and results["test_ppl"] == float("inf")
  text = (tmp_path / "skip" / "results.json").read_text()
  strict = json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
  assert strict["test_ppl"] == "inf"
  assert "| inf | inf |" in (tmp_path / "skip" / "results.md").read_text()


def _single_step(config, vocab_size=11, batch=3, bptt=5):
  """(train_step, state, inputs, targets) of ``config`` on random tokens."""
  model = lm.build_model(config, vocab_size)
  tx = optim.make_optimizer(config.optim, 100, 100)
  schedule = optim.learning_rate_schedule(config.optim, 100, 100)
  tokens = np.random.default_rng(0).integers(0, vocab_size, (batch, bptt + 1), dtype=np.int32)
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  carries = model.initial_carries(batch)
  params = model.init(jax.random.key(0), inputs, carries)["params"]
  state = lm.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                           carries=carries, skipped=jnp.int32(0),
                           first_nonfinite=jnp.int32(-1))
  return jax.jit(lm.make_train_step(model, tx, schedule, config)), state, inputs, targets, model


@pytest.mark.parametrize("sum_over_time", [True, False])
def test_update_differentiates_the_loss_summed_over_the_window(sum_over_time):
  """Plain SGD at rate 1 without clipping or dropout: the new parameters are
  p - grad J with, written out here, J = (1/B) sum_{b,t} -log softmax(logits)[b, t, y]
  (Zaremba et al.'s objective), or J / T with loss_sum_over_time=False.

  Catches: the summed objective replaced by the mean (a step T = 5 times smaller)."""
  c = tiny_config(**{"optim.clip_norm": 0.0, "optim.schedule": "constant",
                     "model.dropout_rate": 0.0, "optim.loss_sum_over_time": sum_over_time})
  step, state, inputs, targets, model = _single_step(c)
  batch, bptt = inputs.shape

  def objective(params):
    logits, _ = model.apply({"params": params}, inputs, state.carries)
    logp = jax.nn.log_softmax(logits, axis=-1)  # (B, T, V)
    picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (B, T)
    total = -picked.sum() / batch
    return total if sum_over_time else total / bptt

  want = jax.tree.map(lambda p, g: p - g, state.params, jax.grad(objective)(state.params))
  new_state, metrics = step(state, inputs, targets, jax.random.key(1))
  assert float(metrics["loss"]) == pytest.approx(
      float(objective(state.params)) / (bptt if sum_over_time else 1), rel=1e-6)
  for got, w in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(want)):
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@jax.custom_vjp
def _nan_gradient(x):
  """The identity, whose gradient is NaN: a finite loss with a non-finite gradient."""
  return x


_nan_gradient.defvjp(lambda x: (x, None), lambda _, g: (g * jnp.nan,))


def test_a_nonfinite_gradient_with_a_finite_loss_is_not_applied(monkeypatch):
  """Catches: the non-finite guard checking the loss only (the NaN gradient
  would reach the parameters and the momentum)."""
  original = lm.token_losses
  monkeypatch.setattr(lm, "token_losses", lambda logits, targets: original(
      _nan_gradient(logits), targets))
  c = tiny_config(**{"optim.momentum": 0.9})
  step, state, inputs, targets, _ = _single_step(c)
  before = jax.tree.map(np.asarray, (state.params, state.opt_state, state.carries))
  new_state, metrics = step(state, inputs, targets, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"])) and not np.isfinite(float(metrics["grad_norm"]))
  assert (int(new_state.skipped), int(new_state.first_nonfinite), int(new_state.step)) == (
      1, 0, 1)
  assert_trees_equal((new_state.params, new_state.opt_state, new_state.carries), before)


def test_restore_language_model_gives_the_trained_model(reference_run):
  workdir, results = reference_run
  model, params, vocab = lm.restore_language_model(str(workdir))
  eval_step = lm.make_eval_step(model)
  corpus = lm.corpus_lib.load_corpus(tiny_config().data)
  ppl = lm.evaluate(eval_step, model, params, corpus.valid, 1, 50)
  assert ppl == pytest.approx(results["valid_ppl"], rel=1e-5)


# --- bad input: one line, non-zero exit, nothing overwritten -----------------

def _snapshot(workdir):
  return {p: p.stat().st_mtime_ns for p in pathlib.Path(workdir).rglob("*") if p.is_file()}


@pytest.mark.parametrize("overrides, message", [
    ({"model.cell": "lstmm"}, "config.model.cell: unknown cell 'lstmm'; valid: elman, gru"),
    ({"model.bidirectional": True}, "cannot be bidirectional"),
    ({"model.connection": "skip"}, "unknown connection 'skip'"),
    ({"optim.name": "sgdd"}, "unknown optimizer 'sgdd'"),
    ({"nonfinite": "ignore"}, "unknown nonfinite 'ignore'"),
])
def test_bad_config_is_refused_before_anything_is_written(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    lm.train_and_evaluate(tiny_config(**overrides), str(tmp_path / "run"))
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_workdir_of_another_run_is_refused_and_left_alone(reference_run):
  workdir, _ = reference_run
  before = _snapshot(workdir)
  with pytest.raises(ckpt_lib.CheckpointError, match=r"holds another run \(model.hidden_size"):
    lm.train_and_evaluate(tiny_config(**{"model.hidden_size": 12}), str(workdir))
  assert _snapshot(workdir) == before


def test_a_workdir_recorded_before_an_optim_field_existed_still_resumes(tmp_path):
  """config.json of a run from before warmup_steps, end_learning_rate and b2:
  the same run as a config holding them at their defaults, another run when
  one of them differs."""
  stored = tiny_config().to_dict()
  for key in optim.DEFAULTS:
    stored["optim"].pop(key, None)
  (tmp_path / "config.json").write_text(json.dumps(stored))
  lm.check_workdir(tmp_path, tiny_config())
  with pytest.raises(ckpt_lib.CheckpointError, match=r"holds another run \(optim.b2: "
                                                     r"None there, 0.99 now\)"):
    lm.check_workdir(tmp_path, tiny_config(**{"optim.b2": 0.99}))


def test_missing_data_dir_names_the_directory(tmp_path):
  c = tiny_config(**{"data.source": "local", "data.dir": str(tmp_path / "nope")})
  with pytest.raises(ValueError, match="nope"):
    lm.train_and_evaluate(c, str(tmp_path / "run"))


def test_cli_bad_input_gives_one_line_and_exit_2(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  for split in ("train", "valid", "test"):
    (data / f"{split}.txt").write_text("a b c\n")
  (data / "valid.txt").write_bytes(b"a b\n\xff\xfe c\n")  # not UTF-8 on line 2
  cases = [
      (["--config.model.hidden_sise=3"], "hidden_sise"),
      (["--config.data.source=local", f"--config.data.dir={data}"], "valid.txt"),
      (["--malloc=sometimes"], "--malloc"),
  ]
  for flags, needle in cases:
    proc = subprocess.run(_cli(tmp_path / "run", *flags), cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 2, proc.stderr[-1000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr


def test_evaluate_workdir_on_its_own_data_and_on_another_folder(reference_run, tmp_path):
  workdir, results = reference_run
  own = lm.evaluate_workdir(str(workdir), ["valid"])
  assert own["valid"]["ppl"] == pytest.approx(results["valid_ppl"], rel=1e-6)
  for split in ("train", "valid", "test"):  # another corpus with unseen words
    (tmp_path / f"{split}.txt").write_text("the dog sees the cats\nzebra walks\n")
  other = lm.evaluate_workdir(str(workdir), ["test"], str(tmp_path))
  assert other["test"]["tokens"] == 9
  assert other["test"]["oov_rate"] == pytest.approx(1 / 9)  # 'zebra'
  assert np.isfinite(other["test"]["ppl"])


def _copy_run(src, dst):
  import shutil
  shutil.copytree(src, dst)
  return dst


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(reference_run, tmp_path,
                                                                  caplog):
  ref_dir, _ = reference_run
  workdir = _copy_run(ref_dir, tmp_path / "run")
  latest = workdir / "checkpoints" / "latest"
  steps = sorted(int(p.name) for p in latest.iterdir() if p.name.isdigit())
  assert len(steps) == 2
  for f in (latest / str(steps[-1]) / "state").rglob("*"):  # wreck the newest one
    if f.is_file():
      f.write_bytes(b"garbage")
  results = lm.train_and_evaluate(tiny_config(), str(workdir))
  assert any("could not be read" in r.getMessage() for r in caplog.records)
  # Resumed from the older checkpoint, redid the lost steps, same end.
  assert results["test_ppl"] == reference_run[1]["test_ppl"]
  assert_trees_equal(latest_params(workdir)[1], latest_params(ref_dir)[1])


def test_checkpoint_of_another_shape_is_refused_without_writing(reference_run, tmp_path):
  workdir = _copy_run(reference_run[0], tmp_path / "run")
  (workdir / "config.json").unlink()  # no config to compare: the shapes must catch it
  before = _snapshot(workdir)
  with pytest.raises(ckpt_lib.CheckpointError, match="does not fit this config"):
    lm.train_and_evaluate(tiny_config(**{"model.hidden_size": 12}), str(workdir))
  assert _snapshot(workdir) == before
  assert not (workdir / "config.json").exists()


def test_changed_corpus_under_the_same_workdir_is_refused(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  for split in ("train", "valid", "test"):
    (data / f"{split}.txt").write_text("a b c d e f g h\n" * 30)
  c = tiny_config(**{"data.source": "local", "data.dir": str(data), "num_epochs": 1,
                     "data.batch_size": 2, "data.bptt": 5})
  lm.train_and_evaluate(c, str(tmp_path / "run"))
  (data / "train.txt").write_text("a b c d e f g h zebra\n" * 30)  # a new word type
  before = _snapshot(tmp_path / "run")
  with pytest.raises(ckpt_lib.CheckpointError, match="vocabulary mismatch"):
    lm.train_and_evaluate(c, str(tmp_path / "run"))
  assert _snapshot(tmp_path / "run") == before


def test_cli_unknown_variant_and_missing_workdir_give_one_line(tmp_path):
  cases = [(_cli(tmp_path / "run", config="configs/ptb.py:huge"),
            "unknown variant 'huge' of configs/ptb.py; valid: small, medium, large"),
           (_cli(tmp_path / "run")[:-1], "--workdir must have a value")]
  for argv, needle in cases:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 2, proc.stderr[-1000:]
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines


def test_recorded_step_gradients_leave_training_unchanged(reference_run, tmp_path):
  ref_dir, ref_results = reference_run
  c = tiny_config(record_step_gradients=True)
  results = lm.train_and_evaluate(c, str(tmp_path))
  # Zero perturbations change nothing but the order of float sums: with them the
  # layers keep W's gradient per step (A8 in BENCHMARKS.md), so equal to rounding.
  np.testing.assert_allclose(results["test_ppl"], ref_results["test_ppl"], rtol=1e-6)
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  norms = np.array(next(r for r in records if r["split"] == "train")["step_grad_norms"])
  assert norms.shape == (c.model.num_layers, c.data.bptt)
  assert np.isfinite(norms).all() and (norms > 0).all()
  # The last position's state feeds one prediction; earlier ones feed more.
  assert norms[0, 0] > norms[0, -1]


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "lru"])
def test_language_model_study_trains_the_linear_recurrence_cells(cell, tmp_path):
  """The LM study by cell name (configs/test.py's LSTM options cleared)."""
  config = tiny_config(**{"model.cell": cell, "num_epochs": 1, "samples.temperatures": (),
                          "samples.grammar_sentences": 0})  # generation: test_models
  config.model.cell_options = {}
  results = lm.train_and_evaluate(config, str(tmp_path))
  assert results["steps"] > 0
  assert 1.0 < results["valid_ppl"] < 1e4 and 1.0 < results["test_ppl"] < 1e4
  assert json.loads((tmp_path / "config.json").read_text())["model"]["cell"] == cell


# ---------------------------------------------------------------------------
# Character models.

CHAR_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 6


def char_config(path, **overrides):
  return tiny_config(**{"data.source": "local", "data.unit": "char", "data.dir": str(path),
                        "data.valid_fraction": 0.2, "data.test_fraction": 0.1,
                        "data.bptt": 8, **overrides})


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("char")
  (root / "play.txt").write_text(CHAR_TEXT, encoding="utf-8")
  workdir = root / "run"
  results = lm.train_and_evaluate(char_config(root / "play.txt"), str(workdir))
  return root, workdir, results


def test_char_run_reports_bits_per_character_beside_perplexity(char_run):
  _, workdir, results = char_run
  stored = json.loads((workdir / "results.json").read_text())
  assert stored["unit"] == "char"
  for split in ("valid", "test"):
    nats = stored[f"{split}_nats"]
    assert nats == pytest.approx(np.log(stored[f"{split}_ppl"]), rel=1e-12)
    assert stored[f"{split}_bpc"] == pytest.approx(nats / np.log(2), rel=1e-12)
  assert len(CHAR_TEXT) == 486  # 70% = 340.2, then 2:1 of the remaining 146
  assert stored["split_tokens"] == {"train": 340, "valid": 97, "test": 49}
  assert all("valid_bpc" in h for h in stored["history"])
  md = (workdir / "results.md").read_text()
  assert "valid bpc" in md and f"{stored['valid_bpc']:.4f}" in md
  assert "valid = the validation split" in md and "## Samples" in md


def test_char_run_resumes_exactly_after_preemption(char_run, tmp_path, preempt_after):
  root, ref_dir, ref_results = char_run
  with preempt_after(5):
    assert lm.train_and_evaluate(char_config(root / "play.txt"), str(tmp_path))["preempted"]
  results = lm.train_and_evaluate(char_config(root / "play.txt"), str(tmp_path))
  assert results["valid_bpc"] == ref_results["valid_bpc"]
  assert_trees_equal(latest_params(tmp_path)[1], latest_params(ref_dir)[1])


def test_corpus_without_test_split_reports_none(tmp_path):
  (tmp_path / "play.txt").write_text(CHAR_TEXT, encoding="utf-8")
  results = lm.train_and_evaluate(
      char_config(tmp_path / "play.txt", **{"data.test_fraction": 0.0, "num_epochs": 1,
                                           "samples.temperatures": ()}),
      str(tmp_path / "run"))
  assert results["test_ppl"] is None and "test_bpc" not in results
  assert results["split_tokens"]["test"] == 0
  assert "test = none" in (tmp_path / "run" / "results.md").read_text()


def test_grammar_model_results_say_what_it_generates(reference_run):
  workdir, results = reference_run
  generated = results["generated"]
  assert generated["sampled_sentences"] == 50
  assert 0 <= generated["generable"] <= generated["agreement_parsed"] <= 50
  md = (workdir / "results.md").read_text()
  assert "## What the model generates" in md and "\n3. " in md


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_published_row_names_the_papers_model_whatever_model_is_trained(cell):
  from configs import ptb
  config = ptb.get_config("small")
  with config.unlocked():
    config.model.cell = cell
    config.model.num_layers, config.model.hidden_size = 3, 64
  md = lm.results_markdown(config, {"num_params": 4_651_600, "valid_ppl": 130.0,
                                    "test_ppl": 125.0})
  ours, paper = [line for line in md.splitlines() if line.startswith("| Zaremba")]
  assert ours.split(" | ")[1:4] == [cell, "3", "64"]
  assert paper.split(" | ")[1:4] == ["lstm", "2", "200"] and "120.70 | 114.50" in paper
