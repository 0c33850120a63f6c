r"""Gradient-flow probes: how much of the error at step i reaches the state at step j.

Pascanu, Mikolov & Bengio 2013 write the gradient of the loss at step i with
respect to the state j < i steps earlier as a product of Jacobians,

.. math::
    \frac{\partial J(i)}{\partial h(j)} = \frac{\partial J(i)}{\partial h(i)}
        \prod_{j < t \le i} \operatorname{diag}(\sigma'(a_t))\, W_h,

so with the identity activation it is exactly :math:`g\,W_h^{\,i-j}` and its
norm shrinks like :math:`\rho(W_h)^{i-j}` when the spectral radius is under 1
and grows above it. These probes measure that quantity on real models with
autodiff, never with finite differences.

How: every layer takes a ``carry_perturbation`` (B, T, ...) that
``recurrent.Recurrent`` adds to the carry after each step. At zero it changes
nothing, and its cotangent at step j is dJ/d(carry_j) through every later step.
One forward pass gives the per-position losses J(i) (B, T) and a VJP; pulling
back the one-hot cotangent of position i gives dJ(i)/d(carry_j) for every j at
once (and for every batch row, since rows do not interact), so T backward
passes give the whole (i, j) table.

Conventions:

* "The state" is a layer's whole carry: h for Elman and GRU, (c, h) for the
  LSTM; its norm is the Euclidean norm over all carry leaves together.
* The perturbation is added to the state h_t itself (the carry and the
  layer's output), so distance ``l = i - j = 0`` is the direct gradient
  dJ(i)/dh(i) through the readout and ``l >= 1`` the recurrent paths.
* Kernels are stored row-major, h_t = h_{t-1} K + ..., so the lecture's W_h is
  K^T; spectra are the same for both.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

Array = jax.Array
StepLosses = Callable[[Any], Array]  # carry perturbations -> losses (B, T)

# Gate names of a fused (H, G*H) recurrent kernel, in the cells' fused order.
GATE_NAMES = {1: ("h",), 3: ("r", "u", "h"), 4: ("i", "f", "c", "o")}


def zero_perturbations(carries: Any, seq_len: int) -> Any:
  """Zeros shaped like ``carries`` (leaves (B, ...)) with a time axis: (B, T, ...)."""
  return jax.tree.map(
      lambda c: jnp.zeros((c.shape[0], seq_len) + c.shape[1:], c.dtype), carries)


def state_norms(carry_grads: Any) -> Array:
  """(B, T): the norm of each step's carry gradient, over all its leaves together.

  Scaled by the largest entry before squaring: vanishing gradients reach
  1e-20 and below, whose float32 squares would flush to zero (XLA's CPU
  flushes subnormals), turning a measurable norm into 0.
  """
  leaves = [g.reshape(g.shape[:2] + (-1,)) for g in jax.tree.leaves(carry_grads)]  # (B, T, F)
  scale = jnp.max(jnp.stack([jnp.max(jnp.abs(g), axis=-1) for g in leaves]), axis=0)  # (B, T)
  safe = jnp.where(scale > 0, scale, 1.0)[..., None]
  squares = sum(jnp.sum(jnp.square(g / safe), axis=-1) for g in leaves)  # (B, T)
  return jnp.where(scale > 0, scale * jnp.sqrt(squares), 0.0)


def language_model_losses(model, variables, inputs: Array, targets: Array,
                          carries=None) -> tuple[StepLosses, Any]:
  """Per-position cross-entropy of a ``LanguageModel`` as a function of carry perturbations.

  Args:
    model: a ``models.LanguageModel``.
    variables: its variables (``{'params': ...}``).
    inputs, targets: int (B, T).
    carries: initial carries (None = zeros), e.g. carried over from earlier text.

  Returns:
    ``(step_losses, zeros)``: ``step_losses(perturbations) -> (B, T)`` losses,
    evaluated deterministically (no dropout), and zero perturbations for every
    layer (a tuple, one carry-shaped tree (B, T, ...) per layer).
  """
  batch, seq_len = inputs.shape
  if carries is None:
    carries = model.initial_carries(batch)
  zeros = zero_perturbations(tuple(carries), seq_len)

  def step_losses(perturbations):
    logits, _ = model.apply(variables, inputs, carries, deterministic=True,
                            carry_perturbations=perturbations)  # (B, T, V)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # (B, T)

  return step_losses, zeros


def language_model_pair_norms(model, layer: int = 0, chunk_size: int = 16
                              ) -> Callable[[Any, Array, Array], Array]:
  """A jitted ``(params, inputs, targets) -> (B, T, T)`` pairwise norms of a
  ``LanguageModel`` (``pairwise_gradient_norms`` over all positions).

  Parameters are an argument, not a constant, so one compilation serves every
  parameter value of the architecture (each spectral radius, init and trained).
  """

  @jax.jit
  def pair_norms(params, inputs, targets):
    step_losses, zeros = language_model_losses(model, {"params": params}, inputs, targets)
    return pairwise_gradient_norms(step_losses, zeros, layer, None, chunk_size)

  return pair_norms


def pairwise_gradient_norms(step_losses: StepLosses, perturbations: Any,
                            layer: int | None = 0, positions: Array | None = None,
                            chunk_size: int = 16) -> Array:
  """||dJ_b(i)/d carry_b(j)|| for each loss position i and every state position j.

  Args:
    step_losses: perturbations -> per-position losses (B, T).
    perturbations: zeros for every layer (a sequence indexed by layer).
    layer: the layer whose carry is probed; None = every layer, from the same
      backward passes.
    positions: the loss positions i (default all T).
    chunk_size: backward passes run together (bounds memory to
      chunk_size x the perturbations' size).

  Returns:
    (B, I, T) norms, or (L, B, I, T) for ``layer=None``; zero wherever j > i
    (no path from the future).
  """
  losses, pullback = jax.vjp(step_losses, perturbations)
  batch, seq_len = losses.shape
  if positions is None:
    positions = jnp.arange(seq_len)

  def one_position(i):
    cotangent = jnp.zeros((batch, seq_len), losses.dtype).at[:, i].set(1.0)
    (grads,) = pullback(cotangent)
    if layer is None:
      return jnp.stack([state_norms(g) for g in grads])  # (L, B, T)
    return state_norms(grads[layer])  # (B, T)

  norms = jax.lax.map(one_position, jnp.asarray(positions),
                      batch_size=min(chunk_size, len(positions)))  # (I, [L,] B, T)
  return jnp.moveaxis(norms, 0, -2)  # ([L,] B, I, T)


def average_by_distance(pair_norms: Array, positions: Array | None = None
                        ) -> dict[str, np.ndarray]:
  """Averages over batch rows and (i, j) pairs at each distance l = i - j.

  Args:
    pair_norms: (B, I, T) from ``pairwise_gradient_norms``.
    positions: the I loss positions (default 0..T-1).

  Returns:
    numpy arrays (T,), indexed by distance:

    * ``mean_norm``: mean of ||dJ(i)/dh(i-l)||, the quantity of the issue;
    * ``count``: the number of (b, i) pairs averaged;
    * ``mean_log_gain``: mean of log(||dJ(i)/dh(i-l)|| / ||dJ(i)/dh(i)||), the
      log of what l steps of the recurrence multiply a gradient by. Loss
      positions differ in ||dJ(i)/dh(i)||, and the pairs at distance l are only
      those with i >= l, so ``mean_norm`` mixes a change of population into the
      decay; the gain does not, and for an identity Elman RNN with an
      orthogonal W_h scaled to rho it is exactly l log(rho). Loss positions
      with dJ(i)/dh(i) = 0 (a saturated softmax) are left out of it; it is
      NaN at a distance where some pair underflowed to 0 (the mean of the
      survivors would be biased upwards).

    Entries with no pairs are NaN.
  """
  pair_norms = np.asarray(pair_norms, np.float64)
  batch, _, seq_len = pair_norms.shape
  positions = np.arange(seq_len) if positions is None else np.asarray(positions)
  distance = positions[:, None] - np.arange(seq_len)[None, :]  # (I, T)
  valid = distance >= 0
  b_idx, i_idx, j_idx = np.nonzero(np.broadcast_to(valid, pair_norms.shape))
  dist = distance[i_idx, j_idx]
  norms = pair_norms[b_idx, i_idx, j_idx]
  direct = pair_norms[b_idx, i_idx, positions[i_idx]]  # ||dJ(i)/dh(i)||
  # A loss position with dJ(i)/dh(i) = 0 (a saturated softmax) has no gain;
  # a zero norm below a nonzero one is an underflow.
  has_gain = direct > 0
  positive = has_gain & (norms > 0)
  with np.errstate(divide="ignore", invalid="ignore"):
    log_gain = np.log(norms) - np.log(direct)
  count = np.bincount(dist, minlength=seq_len).astype(np.float64)
  sums = np.bincount(dist, weights=norms, minlength=seq_len)
  gain_pairs = np.bincount(dist[has_gain], minlength=seq_len)
  gain_count = np.bincount(dist[positive], minlength=seq_len)
  gain_sums = np.bincount(dist[positive], weights=log_gain[positive], minlength=seq_len)
  complete = (gain_count > 0) & (gain_count == gain_pairs)
  with np.errstate(divide="ignore", invalid="ignore"):
    return {
        "mean_norm": np.where(count > 0, sums / count, np.nan),
        "count": count,
        "mean_log_gain": np.where(complete, gain_sums / gain_count, np.nan),
    }


def gradient_by_distance(step_losses: StepLosses, perturbations: Any, layer: int = 0,
                         positions: Array | None = None, chunk_size: int = 16
                         ) -> dict[str, np.ndarray]:
  """The norm of dJ(i)/dh(j) against the distance i - j, averaged over positions and batch.

  Returns:
    ``distance`` (0..T-1) and the arrays of ``average_by_distance``.
  """
  pairs = _jitted_pairs(step_losses, layer, chunk_size)(perturbations, positions)
  averages = average_by_distance(pairs, positions)
  return {"distance": np.arange(len(averages["count"])), **averages}


def _jitted_pairs(step_losses: StepLosses, layer: int, chunk_size: int):
  return jax.jit(lambda perts, pos: pairwise_gradient_norms(
      step_losses, perts, layer, pos, chunk_size))


def state_gradient_norms(step_losses: StepLosses, perturbations: Any,
                         reduce: Callable[[Array], Array] = jnp.mean) -> tuple[Array, ...]:
  """||dJ/d carry_t|| of the whole loss ``reduce(J)`` for every layer: a tuple of (B, T).

  One backward pass: what reaches each step's state from all later losses.
  ``depth`` studies read the bottom layer's to see how much signal a stack lets
  through.
  """
  grads = jax.grad(lambda p: reduce(step_losses(p)))(perturbations)
  return tuple(state_norms(g) for g in grads)


def per_step_gradient_norms(carry_grads: Any) -> np.ndarray:
  """(L, T): batch-mean ||dJ/d carry_t|| per layer and step, from the
  perturbation gradients a training step computed alongside its parameter
  gradients (the cheap way to record them during training: differentiate the
  loss with respect to ``(params, zero perturbations)``)."""
  return np.stack([np.asarray(jnp.mean(state_norms(g), axis=0)) for g in carry_grads])


def recurrent_spectra(params: Any) -> list[dict[str, Any]]:
  """Spectral radius and largest singular value of every recurrent matrix.

  Each ``recurrent_kernel`` (H, G*H) is split into its G square gate blocks
  (gate names as in ``cells``: h; r, u, h; i, f, c, o).

  The LRU's recurrence is the diagonal matrix diag(lambda), lambda =
  exp(-exp(nu) + i exp(theta)) (``cells.LRUCell``): one row per layer, path
  '.../cell/nu_log', gate 'lambda', whose spectral radius and largest
  singular value are both max |lambda|. minGRU and minLSTM have no recurrent
  matrix (their a_t depends on x_t alone) and give no row.

  Returns:
    One dict per block: ``path`` ('rnn/layer_0/cell/recurrent_kernel'),
    ``gate``, ``spectral_radius``, ``max_singular_value``.
  """
  rows = []
  for path, kernel in traverse_util.flatten_dict(_unfreeze(params)).items():
    if path[-1] == "nu_log":  # |lambda| = exp(-exp(nu))
      radius = float(np.max(np.exp(-np.exp(np.asarray(kernel, np.float64)))))
      rows.append({"path": "/".join(path), "gate": "lambda", "spectral_radius": radius,
                   "max_singular_value": radius})
      continue
    if path[-1] != "recurrent_kernel":
      continue
    kernel = np.asarray(kernel, np.float64)
    hidden, width = kernel.shape
    num_gates = width // hidden
    names = GATE_NAMES.get(num_gates, tuple(str(g) for g in range(num_gates)))
    for g, name in enumerate(names):
      block = kernel[:, g * hidden:(g + 1) * hidden]  # (H, H)
      rows.append({
          "path": "/".join(path),
          "gate": name,
          "spectral_radius": float(np.max(np.abs(np.linalg.eigvals(block)))),
          "max_singular_value": float(np.linalg.norm(block, ord=2)),
      })
  return rows


def _unfreeze(tree: Any) -> dict:
  return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree)


def fit_slope(distance: np.ndarray, log_values: np.ndarray, start: int = 0,
              stop: int | None = None) -> float:
  """Least-squares slope of ``log_values`` against distance over [start, stop),
  skipping non-finite entries: natural log per step, comparable with log(rho)."""
  d = np.asarray(distance, np.float64)[start:stop]
  y = np.asarray(log_values, np.float64)[start:stop]
  keep = np.isfinite(y)
  if keep.sum() < 2:
    return float("nan")
  return float(np.polyfit(d[keep], y[keep], 1)[0])
