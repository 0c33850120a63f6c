r"""Dropout whose mask costs a quarter of the random bits of ``flax.linen.Dropout``.

``flax.linen.Dropout`` draws one uniform float per element
(``jax.random.bernoulli``); with JAX's default partitionable Threefry each
element costs a whole Threefry-2x32 block (two 32-bit words, XORed to one),
and on the CPU those blocks are most of a dropout layer's time.

Here every element takes a 16-bit lane of a Threefry-2x32 block, the blocks
counted as in JAX's partitionable ``jax.random.bits``: four elements per
block, the same generator as JAX's, keyed from the module's rng by
``jax.random.bits``. The element is dropped when its lane
is below q * 2^16 with q = ``rate`` rounded to a multiple of 2^-16 (at most
7.6e-6 from ``rate``, exact for rates such as 0.5, 0.25 or 0.125), and the
kept ones are scaled by 1 / (1 - q), the realised keep probability, so the
expectation is the input's exactly. ``python benchmarks/ab_step.py
--config=shakespeare_feng --cell=mingru --variant=flax_dropout`` times a
training step against flax's layer (BENCHMARKS.md, A13).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
from jax import lax
from jax.extend.random import threefry2x32_p
import jax.numpy as jnp

LANE_BITS = 16
LANES = 2**LANE_BITS


def drop_threshold(rate: float) -> int:
  """q * 2^16 of ``rate``: the lanes below it are dropped."""
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"dropout rate must be in [0, 1], got {rate}")
  return round(rate * LANES)


def keep_mask(key: jax.Array, rate: float, shape: Sequence[int]) -> tuple[jax.Array, float]:
  """(bool mask of ``shape``, True with probability 1 - q; the keep probability 1 - q)."""
  threshold = drop_threshold(rate)
  *lead, last = tuple(shape) or (1,)
  # One Threefry-2x32 block (two words, four lanes) per 4 elements of the last
  # axis, counted by the block's linear index as JAX's partitionable
  # jax.random.bits counts its elements: elementwise in the leading axes, so a
  # batch-sharded mask is computed shard by shard.
  blocks = (*lead, -(-last // 4))
  if math.prod(blocks) >= 2**32:
    raise ValueError(f"dropout mask of {math.prod(shape)} elements exceeds the 32-bit counter")
  index = jnp.zeros(blocks, jnp.uint32)
  stride = 1
  for axis in reversed(range(len(blocks))):
    index = index + lax.broadcasted_iota(jnp.uint32, blocks, axis) * jnp.uint32(stride)
    stride *= blocks[axis]
  k1, k2 = jax.random.bits(key, (2,), jnp.uint32)
  w1, w2 = threefry2x32_p.bind(k1, k2, jnp.zeros_like(index), index)
  low = jnp.uint32(LANES - 1)
  lanes = jnp.concatenate([w1 & low, w1 >> LANE_BITS, w2 & low, w2 >> LANE_BITS],
                          axis=-1)[..., :last]
  return (lanes >= threshold).reshape(tuple(shape)), 1.0 - threshold / LANES


class Dropout(nn.Module):
  """Drop-in for ``flax.linen.Dropout`` (same fields and call), with ``keep_mask``'s mask.

  Attributes:
    rate: the probability of dropping an element (rounded to a multiple of 2^-16).
    broadcast_dims: dimensions sharing one mask (``(1,)``: one mask per sequence
      of a (B, T, H) input, shared over time).
    deterministic: if true, the inputs are returned unchanged.
    rng_collection: the rng stream the mask's key comes from.
  """

  rate: float
  broadcast_dims: Sequence[int] = ()
  deterministic: bool | None = None
  rng_collection: str = "dropout"

  @nn.compact
  def __call__(self, inputs: jax.Array, deterministic: bool | None = None,
               rng: Any = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    threshold = drop_threshold(self.rate)
    if threshold == 0 or deterministic:
      return inputs
    if threshold == LANES:
      return jnp.zeros_like(inputs)
    if rng is None:
      rng = self.make_rng(self.rng_collection)
    shape = list(inputs.shape)
    for dim in self.broadcast_dims:
      shape[dim] = 1
    mask, keep = keep_mask(rng, self.rate, shape)
    mask = jnp.broadcast_to(mask, inputs.shape)
    return lax.select(mask, inputs / jnp.asarray(keep, inputs.dtype),
                      jnp.zeros_like(inputs))
