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


def _run(config, steps=2):
  """Parameters after ``steps`` updates of ``optim.make_optimizer(config)``."""
  tx = optim.make_optimizer(config, steps_per_epoch=100, total_steps=100)
  params = jax.tree.map(jnp.asarray, PARAMS)
  state = tx.init(params)
  for g in GRADS[:steps]:
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


def _adam_reference(weight_decay=0.0, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
  """Kingma & Ba's Adam on the clipped gradients; with weight_decay, AdamW's
  decoupled decay (Loshchilov & Hutter): p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd p)."""
  m = {k: np.zeros_like(v) for k, v in PARAMS.items()}
  v = {k: np.zeros_like(x) for k, x in PARAMS.items()}
  p = {k: x.astype(np.float64) for k, x in PARAMS.items()}
  for t, g in enumerate(GRADS, start=1):
    g = _clipped(g)
    m = {k: b1 * m[k] + (1 - b1) * g[k] for k in m}
    v = {k: b2 * v[k] + (1 - b2) * g[k] ** 2 for k in v}
    for k in p:
      m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
      p[k] = p[k] - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p[k])
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
