"""The supervised trainer: exact resume (SIGKILL included), the best checkpoint
for the test figures, early stopping, refused checkpoints, the non-finite guard.

The task is tests/studies/supervised_toy.py: 48 points, 6 batches an epoch,
4 epochs, dropout, a dev evaluation and a checkpoint at each epoch's end."""

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
import optax
import pytest

from rnn_research import checkpoint as ckpt_lib
from rnn_research import metrics as metrics_lib
from rnn_research.studies import lm
from rnn_research.studies import supervised
from tests.studies import supervised_toy as toy

from tests import REPO


def checkpoint_params(workdir, which="latest"):
  """(step, params) of the newest checkpoint under checkpoints/<which>, as NumPy."""
  ckpt = ckpt_lib.Checkpointer(pathlib.Path(workdir) / "checkpoints" / which)
  step = ckpt.latest_step()
  state = ckpt.read_state(step)
  ckpt.close()
  return step, jax.tree.map(np.asarray, state["params"] if which == "latest" else state)


def assert_trees_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb) and la
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)


def snapshot(workdir):
  return {str(p.relative_to(workdir)): p.read_bytes()
          for p in sorted(pathlib.Path(workdir).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """(workdir, Result) of one uninterrupted toy run, read-only."""
  workdir = tmp_path_factory.mktemp("toy_reference")
  _, _, result = toy.fit(workdir)
  return workdir, result


def test_the_reference_run_trains_logs_and_keeps_its_best(reference):
  workdir, result = reference
  assert result.steps == 24 and not result.stopped_early
  assert [h["step"] for h in result.history] == [6, 12, 18, 24]
  rows = metrics_lib.read_metrics(workdir)
  assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 25))
  assert all(r["run"] == "toy" for r in rows)
  assert result.history[-1]["error"] < result.history[0]["error"]
  # The train record's loss and error are sums over the items divided by their count.
  assert {"loss", "error", "l2_grads", "l2_params", "l2_updates"} <= set(rows[0])
  assert 0 <= rows[0]["error"] <= 1


def test_preempted_mid_epoch_then_resumed_ends_like_the_run_that_never_stopped(
    reference, tmp_path, monkeypatch, preempt_after):
  """Preempted after step 9 (mid-epoch 2): the checkpoint saved there is the
  only one past step 6, and the rerun trains steps 10-24 only and ends with the reference's parameters,
  figures and metrics.jsonl, bitwise.

  Catches: resume replaced by restart (the rerun fetches 24 batches, not 15);
  the data order not a function of the epoch, or dropout not of the step
  (other parameters)."""
  with preempt_after(9):
    _, _, out = toy.fit(tmp_path)
  assert out.preempted and out.steps == 9
  fetched = []
  real = toy.Batches.__getitem__
  monkeypatch.setattr(toy.Batches, "__getitem__",
                      lambda self, i: fetched.append(self.first + i) or real(self, i))
  _, _, out = toy.fit(tmp_path)
  assert fetched == list(range(9, 24))
  ref_dir, ref = reference
  assert (out.best, out.figures, out.history) == (ref.best, ref.figures, ref.history)
  assert_trees_equal(out.params, ref.params)
  assert_trees_equal(checkpoint_params(tmp_path)[1], checkpoint_params(ref_dir)[1])
  assert metrics_lib.read_metrics(tmp_path) == metrics_lib.read_metrics(ref_dir)


def test_a_signal_is_acted_on_within_a_step_of_the_device_not_at_the_next_log(
    tmp_path, sigterm_after_device_steps):
  """SIGTERM comes once the device has finished 5 steps of a 30-step epoch
  whose first fetch of a result is at its end (a least-squares fit, its steps
  heavy enough to take milliseconds). The checkpoint is saved within two
  steps of the signal.

  Catches: the host left to run ahead of the device (JAX dispatches
  asynchronously): it has dispatched the whole epoch when the signal comes,
  and saves there, 25 steps late."""
  x = jax.random.normal(jax.random.key(0), (512, 512))

  def loss_fn(params, batch, rng, train):
    del rng, train
    h = batch
    for _ in range(8):
      h = jnp.tanh(h @ params["w"])
    objective = jnp.mean((h - batch) ** 2)
    return objective, {"loss": objective}

  evaluate = lambda params, split: {"error": 0.0, "loss": 0.0}
  sent = sigterm_after_device_steps(5)
  out = supervised.fit(
      tmp_path, params={"w": jnp.eye(512)}, tx=optax.sgd(0.01), loss_fn=loss_fn,
      train_batches=lambda epoch: [x] * 30, evaluate=evaluate,
      options=supervised.Options(num_epochs=2, log_every_steps=1000, tensorboard=False),
      rng=jax.random.key(1))
  assert out.preempted and sent, (out, sent)
  assert out.steps <= sent[0] + 2, (out, sent)


def _wait(predicate, proc, timeout=120):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    if proc.poll() is not None:
      pytest.fail(f"the run ended early: {proc.stderr.read()[-2000:]}")
    time.sleep(0.05)
  pytest.fail("the run did not get there in time")


def test_sigkill_mid_epoch_then_rerun_ends_with_the_uninterrupted_parameters_and_figures(
    reference, tmp_path):
  """A process blocks fetching batch 9 (epoch 2, batch 4 of 6) after it has
  logged step 9 and its step-8 checkpoint is on disk, and is killed with
  SIGKILL. The rerun resumes at step 8, drops the logged step 9, and ends
  with the reference's parameters (last and best), figures and metrics.

  Catches: resume replaced by restart (no 'resumed ... at step 8'); the
  trimming of metrics.jsonl disabled (step 9 logged twice)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", "tests.studies.supervised_toy", str(tmp_path)]
  proc = subprocess.Popen(cmd + ["9"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  ckdir = tmp_path / "checkpoints" / "latest"
  logged = lambda: any(r["step"] == 9 for r in metrics_lib.read_metrics(tmp_path))
  _wait(lambda: (ckdir / "8").is_dir() and logged(), proc)
  time.sleep(0.5)  # let the background save of step 8 finish
  proc.send_signal(signal.SIGKILL)
  assert proc.wait(timeout=60) == -signal.SIGKILL
  proc.stderr.close()
  assert ckpt_lib.Checkpointer(ckdir).latest_step() == 8
  final = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
  assert final.returncode == 0, final.stderr[-2000:]
  assert re.search(r"resumed from \S+ at step 8\b", final.stderr), final.stderr[-2000:]
  ref_dir, ref = reference
  figures = json.loads((tmp_path / "figures.json").read_text())
  assert figures["test"] == ref.figures["test"] and figures["best"] == ref.best
  assert_trees_equal(checkpoint_params(tmp_path)[1], checkpoint_params(ref_dir)[1])
  assert_trees_equal(checkpoint_params(tmp_path, "best")[1], jax.device_get(ref.params))
  assert metrics_lib.read_metrics(tmp_path) == metrics_lib.read_metrics(ref_dir)


def _wrecking_sgd():
  """SGD at 0.5 for epoch 1, then at 10: dev loss 0.49 after epoch 1, then
  3,000 and more (still finite), so the best is epoch 1."""
  return optax.sgd(lambda step: jnp.where(step < 6, 0.5, 10.0))


def test_test_figures_come_from_the_best_checkpoint_not_the_last_parameters(tmp_path):
  """Catches: the final figures computed from the last parameters."""
  model, data, out = toy.fit(tmp_path / "run", tx=_wrecking_sgd(), monitor=("loss",))
  assert out.best["step"] == 6 and out.steps == 24
  assert out.history[-1]["loss"] > 2 * out.history[0]["loss"]  # worse after the best
  evaluate = toy.evaluate_for(model, data)
  _, last = checkpoint_params(tmp_path / "run")
  # The parameters after epoch 1, from a run that stops there.
  one = toy.fit(tmp_path / "one_epoch", tx=_wrecking_sgd(), num_epochs=1)[2]
  assert out.figures["test"] == evaluate(one.params, "test")
  assert out.figures["test"] != evaluate(last, "test")
  assert_trees_equal(out.params, one.params)


def test_early_stopping_ends_after_patience_evaluations_without_a_better_one(tmp_path):
  """Dev loss rises after epoch 1; with patience 2 training stops at the
  second worse evaluation (step 18), and a rerun trains no further.

  Catches: patience ignored (24 steps run)."""
  _, _, out = toy.fit(tmp_path, tx=_wrecking_sgd(), monitor=("loss",), patience=2)
  assert out.stopped_early and out.steps == 18 and out.best["step"] == 6
  assert checkpoint_params(tmp_path)[0] == 18
  _, _, again = toy.fit(tmp_path, tx=_wrecking_sgd(), monitor=("loss",), patience=2)
  assert again.steps == 18 and again.figures == out.figures


def test_monitor_with_a_minus_selects_the_highest(tmp_path):
  _, _, out = toy.fit(tmp_path, tx=_wrecking_sgd(), monitor=("-loss",), num_epochs=2)
  assert out.best["step"] == 12  # the higher dev loss wins


def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_is_overwritten(reference,
                                                                              tmp_path):
  """Another hidden size (shapes differ) and another identity (shapes equal):
  one-line CheckpointError each, every file of the workdir as it was."""
  import shutil
  workdir = tmp_path / "run"
  shutil.copytree(reference[0], workdir)
  before = snapshot(workdir)
  with pytest.raises(ckpt_lib.CheckpointError, match="does not fit this config") as e:
    toy.fit(workdir, hidden=12, identity={"hidden": 8})
  assert "\n" not in str(e.value)
  with pytest.raises(ckpt_lib.CheckpointError,
                     match=r"holds another run \(hidden: 8 there, 9 now\)"):
    toy.fit(workdir, identity={"hidden": 9})
  assert snapshot(workdir) == before


def test_a_nonfinite_loss_is_never_applied_and_stop_names_the_step(tmp_path, monkeypatch):
  """Batch 4 gets a NaN input. 'skip' drops that update and counts it; 'stop'
  ends with the step and the last good checkpoint."""
  real = toy.Batches.__getitem__

  def poisoned(self, i):
    batch = real(self, i)
    if self.first + i == 4:
      batch = {**batch, "x": np.full_like(batch["x"], np.nan)}
    return batch

  monkeypatch.setattr(toy.Batches, "__getitem__", poisoned)
  _, _, out = toy.fit(tmp_path / "skip", nonfinite="skip")
  assert out.skipped == 1
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(out.params))
  with pytest.raises(lm.NonFiniteError,
                     match=r"^non-finite loss or gradient at step 5; last good checkpoint: "
                     r"step 4 in "):
    toy.fit(tmp_path / "stop", nonfinite="stop", checkpoint_every_steps=2)


@pytest.mark.parametrize("overrides, message", [
    ({"patience": -1}, r"^config.patience = -1 is not valid"),
    ({"nonfinite": "ignore"}, r"^config.nonfinite = 'ignore' is not valid"),
])
def test_bad_options_are_refused_with_one_line(overrides, message):
  with pytest.raises(ValueError, match=message):
    toy.options(**overrides).check()


def test_a_monitor_the_dev_figures_lack_is_refused_at_the_first_evaluation(tmp_path):
  with pytest.raises(ValueError, match=r"no 'f1' to select the best checkpoint by"):
    toy.fit(tmp_path, monitor=("f1",))
