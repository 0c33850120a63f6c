"""The optimizer chain and its schedules, against hand-written update formulas.

Each optimizer (plain SGD, SGD with momentum, Adam, AdamW) takes two steps on
fixed gradients and is compared with its update written out in NumPy; the
gradients have a global norm well above the clipping threshold, so every
update also checks ``clip_by_global_norm`` at the head of the chain.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from rnn_research import optim

# Two parameter arrays, and two steps of gradients with global norms 13 and 6.5.
PARAMS = {"w": np.array([[0.5, -1.0], [2.0, 0.25]], np.float32),
          "b": np.array([0.1, -0.2], np.float32)}
GRADS = [{"w": np.array([[3.0, 4.0], [0.0, 12.0]], np.float32),
          "b": np.array([0.0, 0.0], np.float32)},
         {"w": np.array([[-1.5, 2.0], [0.0, 6.0]], np.float32),
          "b": np.array([0.0, 0.0], np.float32)}]
CLIP = 2.0


def _config(**overrides):
  c = ml_collections.ConfigDict({
      "name": "sgd", "learning_rate": 0.1, "clip_norm": CLIP, "schedule": "constant",
      "lr_decay": 0.5, "decay_after_epochs": 4, "momentum": 0.0, "weight_decay": 0.0,
      "loss_sum_over_time": True})
  c.update(overrides)
  return c


def _run(config, steps=2, grads=GRADS):
  """Parameters after ``steps`` updates of ``optim.make_optimizer(config)``."""
  tx = optim.make_optimizer(config, steps_per_epoch=100, total_steps=100)
  params = jax.tree.map(jnp.asarray, PARAMS)
  state = tx.init(params)
  for g in grads[:steps]:
    updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, params)
    params = optax.apply_updates(params, updates)
  return jax.tree.map(np.asarray, params)


def _clipped(g, clip=CLIP):
  """Pascanu et al.'s rescaling: g * clip / ||g|| when ||g|| > clip (global norm)."""
  norm = np.sqrt(sum(float(np.sum(x ** 2)) for x in g.values()))
  scale = min(1.0, clip / norm) if clip > 0 else 1.0
  return {k: v * scale for k, v in g.items()}


def _assert_close(got, want, atol=1e-7):
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=atol, err_msg=k)


def test_gradients_above_the_threshold_are_rescaled_before_sgd():
  """Catches: clip_by_global_norm dropped from the chain (the update would be
  lr * g with ||g|| = 13, six times the clipped step)."""
  assert all(np.sqrt(sum(np.sum(x ** 2) for x in g.values())) > 3 * CLIP for g in GRADS)
  got = _run(_config())
  want = dict(PARAMS)
  for g in GRADS:
    want = {k: want[k] - 0.1 * _clipped(g)[k] for k in want}
  _assert_close(got, want)
  # The step length is exactly lr * clip, whatever the gradient's norm.
  first = _run(_config(), steps=1)
  step = np.sqrt(sum(np.sum((first[k] - PARAMS[k]) ** 2) for k in PARAMS))
  assert step == pytest.approx(0.1 * CLIP, rel=1e-6)


def test_clip_norm_zero_leaves_the_gradient_alone():
  got = _run(_config(clip_norm=0.0))
  want = {k: PARAMS[k] - 0.1 * (GRADS[0][k] + GRADS[1][k]) for k in PARAMS}
  _assert_close(got, want)


def test_sgd_with_momentum_accumulates_the_clipped_gradients():
  """optax's trace: m_t = mu m_{t-1} + g_t, p_t = p_{t-1} - lr m_t."""
  got = _run(_config(momentum=0.9))
  m = {k: np.zeros_like(v) for k, v in PARAMS.items()}
  want = dict(PARAMS)
  for g in GRADS:
    m = {k: 0.9 * m[k] + _clipped(g)[k] for k in m}
    want = {k: want[k] - 0.1 * m[k] for k in want}
  _assert_close(got, want)


def _adam_reference(weight_decay=0.0, lr=0.1, b1=0.9, b2=0.999, eps=1e-8, decayed=("w",),
                    grads=GRADS):
  """Kingma & Ba's Adam on the clipped gradients; with weight_decay, AdamW's
  decoupled decay (Loshchilov & Hutter): p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd p),
  on the parameters named in ``decayed`` only (nanoGPT's: the matrices)."""
  m = {k: np.zeros_like(v) for k, v in PARAMS.items()}
  v = {k: np.zeros_like(x) for k, x in PARAMS.items()}
  p = {k: x.astype(np.float64) for k, x in PARAMS.items()}
  for t, g in enumerate(grads, start=1):
    g = _clipped(g)
    m = {k: b1 * m[k] + (1 - b1) * g[k] for k in m}
    v = {k: b2 * v[k] + (1 - b2) * g[k] ** 2 for k in v}
    for k in p:
      m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
      decay = weight_decay if k in decayed else 0.0
      p[k] = p[k] - lr * (m_hat / (np.sqrt(v_hat) + eps) + decay * p[k])
  return p


# Adam in float32: 1 - 0.999 ** 2 carries a relative error of about 5e-5, so
# the parameters agree to about 2e-6 (0.1 * 0.03 is what AdamW's decay adds).
ADAM_ATOL = 1e-5


def test_adam_matches_its_update_formula():
  _assert_close(_run(_config(name="adam")), _adam_reference(), atol=ADAM_ATOL)


def test_adamw_decays_the_weights_apart_from_the_gradient():
  got = _run(_config(name="adamw", weight_decay=0.3))
  _assert_close(got, _adam_reference(weight_decay=0.3), atol=ADAM_ATOL)
  # The decay is really applied: without it the parameters differ.
  assert not np.allclose(got["w"], _adam_reference()["w"], rtol=1e-4)


def test_adamw_leaves_the_vectors_undecayed():
  """Catches: the mask dropped. "b" has zero gradients, so the only thing that
  could move it is the decay, which nanoGPT (and we) apply to matrices only."""
  got = _run(_config(name="adamw", weight_decay=0.3))
  np.testing.assert_array_equal(got["b"], PARAMS["b"])
  decayed_too = _adam_reference(weight_decay=0.3, decayed=("w", "b"))
  assert not np.allclose(decayed_too["b"], PARAMS["b"])
  assert optim.matrices(PARAMS) == {"w": True, "b": False}


def test_b2_sets_the_second_moment_decay():
  """Gradients whose clipped magnitudes change between the steps (GRADS' do
  not), so that the second step shows b2; after one, Adam's step is sign(g)
  whatever b2 is."""
  grads = [GRADS[0], {"w": np.array([[1.0, 0.5], [0.0, 0.1]], np.float32), "b": GRADS[1]["b"]}]
  for name in ("adam", "adamw"):
    got = _run(_config(name=name, b2=0.5), grads=grads)
    _assert_close(got, _adam_reference(b2=0.5, grads=grads), atol=ADAM_ATOL)
    assert not np.allclose(got["w"], _adam_reference(b2=0.999, grads=grads)["w"], atol=1e-3)


def test_unknown_optimizer_and_schedule_are_refused():
  with pytest.raises(ValueError, match="unknown optimizer 'sgdd'; valid: sgd, adam, adamw"):
    optim.make_optimizer(_config(name="sgdd"), 10, 10)
  with pytest.raises(ValueError, match="unknown schedule 'linear'"):
    optim.learning_rate_schedule(_config(schedule="linear"), 10, 10)


def test_epoch_decay_counts_epochs_as_the_reference_code_does():
  """TensorFlow's ptb_word_lm.py: epoch i (from 0) runs at
  lr * lr_decay ** max(i + 1 - max_epoch, 0). With max_epoch (our
  decay_after_epochs) = 4 the first four epochs run at the base rate and the
  fifth is the first at lr * decay: "after 4 epochs" in the paper's words."""
  schedule = optim.learning_rate_schedule(
      _config(schedule="epoch_decay", learning_rate=1.0, lr_decay=0.5), 10, 130)
  rates = [float(schedule(epoch * 10 + position)) for epoch in range(7)
           for position in (0, 9)]
  want = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
  assert rates == pytest.approx(want)


def test_cosine_goes_to_zero_over_the_run():
  schedule = optim.learning_rate_schedule(_config(schedule="cosine", learning_rate=2.0),
                                          10, 40)
  assert float(schedule(0)) == pytest.approx(2.0)
  assert float(schedule(20)) == pytest.approx(1.0)  # half-way: (1 + cos(pi / 2)) / 2
  assert float(schedule(40)) == pytest.approx(0.0, abs=1e-7)


def _nanogpt_lr(it, lr, warmup, decay_iters, min_lr):
  """nanoGPT's train.py get_lr, written out."""
  if it < warmup:
    return lr * (it + 1) / (warmup + 1)
  if it > decay_iters:
    return min_lr
  ratio = (it - warmup) / (decay_iters - warmup)
  return min_lr + 0.5 * (1.0 + np.cos(np.pi * ratio)) * (lr - min_lr)


def test_cosine_with_warmup_and_floor_is_nanogpts_schedule():
  config = _config(schedule="cosine", learning_rate=1e-3, warmup_steps=10,
                   end_learning_rate=1e-4)
  schedule = optim.learning_rate_schedule(config, 7, 50)
  got = [float(schedule(s)) for s in range(51)]
  want = [_nanogpt_lr(s, 1e-3, 10, 50, 1e-4) for s in range(51)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert got[0] == pytest.approx(1e-3 / 11) and got[50] == pytest.approx(1e-4)


def test_cosine_floor_without_warmup():
  schedule = optim.learning_rate_schedule(
      _config(schedule="cosine", learning_rate=2.0, end_learning_rate=0.5), 10, 40)
  assert float(schedule(0)) == pytest.approx(2.0)
  assert float(schedule(20)) == pytest.approx(1.25)
  assert float(schedule(40)) == pytest.approx(0.5)


def test_a_warmup_as_long_as_the_run_is_refused():
  config = _config(schedule="cosine", warmup_steps=40)
  with pytest.raises(ValueError, match="warmup_steps = 40 leaves no step of the cosine: "
                                       "the run has 40 steps"):
    optim.learning_rate_schedule(config, 10, 40)
