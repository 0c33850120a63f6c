"""rnn_research.dropout: the 16-bit-lane mask, its rate, scale and independence."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_research import dropout
from rnn_research.dropout import Dropout, keep_mask


def _apply(module, x, key, **kwargs):
  return module.apply({}, x, deterministic=False, rngs={"dropout": key}, **kwargs)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.65])
def test_drops_the_rate_and_keeps_the_expectation(rate):
  n = 2**20
  mask, keep = keep_mask(jax.random.key(0), rate, (n,))
  q = dropout.drop_threshold(rate) / 2**16
  assert abs(q - rate) <= 2**-17
  assert keep == 1.0 - q
  sigma = np.sqrt(rate * (1 - rate) / n)
  assert abs(float(jnp.mean(mask)) - keep) < 5 * sigma
  # The kept elements are scaled by 1 / keep: each is exactly 1 / keep or 0.
  y = _apply(Dropout(rate), jnp.ones((n,)), jax.random.key(1))
  values = np.unique(np.asarray(y))
  np.testing.assert_allclose(values, [0.0, 1.0 / keep], rtol=1e-7)
  assert abs(float(jnp.mean(y)) - 1.0) < 5 * sigma / keep


def test_rates_of_16_bits_are_exact():
  assert dropout.drop_threshold(0.5) == 2**15
  assert dropout.drop_threshold(0.25) == 2**14
  assert dropout.drop_threshold(0.2) == 13107  # 0.2 * 2^16 = 13107.2


def test_the_module_applies_keep_mask_with_its_key():
  x = jax.random.normal(jax.random.key(3), (4, 7, 5))  # last axis not a multiple of 4
  key = jax.random.key(9)
  mask, keep = keep_mask(key, 0.3, x.shape)
  y = Dropout(0.3).apply({}, x, deterministic=False, rng=key)
  np.testing.assert_array_equal(y, jnp.where(mask, x / keep, 0.0))
  assert 0 < int(mask.sum()) < x.size


def test_lanes_of_one_block_and_neighbours_are_uncorrelated():
  """Elements i, i + m, i + 2m, i + 3m (m = n / 4) share a Threefry block's 4 lanes."""
  n = 2**20
  m = n // 4
  mask = np.asarray(keep_mask(jax.random.key(5), 0.5, (n,))[0], np.float64)
  tol = 5 / np.sqrt(m)  # 5 sigma of a correlation of m independent pairs
  for lane in (1, 2, 3):  # the same word's high half, the other word's halves
    assert abs(np.corrcoef(mask[:m], mask[lane * m:(lane + 1) * m])[0, 1]) < tol
  assert abs(np.corrcoef(mask[:-1], mask[1:])[0, 1]) < tol


def test_keys_give_different_masks_and_one_key_the_same():
  shape = (8, 16, 32)
  a, _ = keep_mask(jax.random.key(0), 0.5, shape)
  b, _ = keep_mask(jax.random.key(0), 0.5, shape)
  c, _ = keep_mask(jax.random.key(1), 0.5, shape)
  np.testing.assert_array_equal(a, b)
  agreement = float(jnp.mean(a == c))
  assert 0.45 < agreement < 0.55  # independent masks agree on half the elements


def test_broadcast_dims_share_one_mask():
  x = jnp.ones((4, 9, 6))
  y = _apply(Dropout(0.5, broadcast_dims=(1,)), x, jax.random.key(2))
  np.testing.assert_array_equal(y, jnp.broadcast_to(y[:, :1], y.shape))
  assert 0 < int((y[:, 0] == 0).sum()) < 24


def test_deterministic_zero_and_one_rates():
  x = jax.random.normal(jax.random.key(0), (3, 5))
  np.testing.assert_array_equal(Dropout(0.5).apply({}, x, deterministic=True), x)
  np.testing.assert_array_equal(_apply(Dropout(0.0), x, jax.random.key(1)), x)
  np.testing.assert_array_equal(_apply(Dropout(1.0), x, jax.random.key(1)), jnp.zeros_like(x))
  with pytest.raises(ValueError, match="dropout rate must be in"):
    _apply(Dropout(1.5), x, jax.random.key(1))


def test_gradient_is_the_scaled_mask_and_dtype_is_kept():
  x = jax.random.normal(jax.random.key(0), (6, 10))
  key = jax.random.key(4)
  mask, keep = keep_mask(key, 0.2, x.shape)
  grad = jax.grad(lambda x: Dropout(0.2).apply({}, x, deterministic=False, rng=key).sum())(x)
  np.testing.assert_allclose(grad, jnp.where(mask, 1.0 / keep, 0.0), rtol=1e-7)
  y = _apply(Dropout(0.2), x.astype(jnp.bfloat16), key)
  assert y.dtype == jnp.bfloat16


def test_models_use_this_dropout_not_flax(monkeypatch):
  """The language model's masks are keep_mask's: swapping flax's layer in changes them."""
  from rnn_research import models
  model = models.LanguageModel(vocab_size=11, cell="lstm", hidden_size=8, num_layers=2,
                               dropout_rate=0.5)
  tokens = jnp.arange(12).reshape(2, 6) % 11
  variables = model.init(jax.random.key(0), tokens)

  def logits():
    return model.apply(variables, tokens, deterministic=False,
                       rngs={"dropout": jax.random.key(1)})[0]

  ours = logits()
  monkeypatch.setattr(dropout, "Dropout", nn.Dropout)
  assert not np.allclose(ours, logits())
