"""Layers over time: ``Recurrent`` (one layer), ``Bidirectional``, ``StackedRNN``.

This is the only module that loops over time. A layer projects the whole input
sequence once (``cell.project_inputs``: one (B*T, D) x (D, G*H) product) and
then runs ``cell.step`` under ``nn.scan``, so only ``W h_{t-1}`` and the gate
nonlinearities sit inside the sequential loop.

Differentiated, a scan over ``h_{t-1} W`` would also compute W's gradient one
(H, B) x (B, G*H) product per step, and read and write the whole (H, G*H)
accumulator at each. For cells with one recurrent product the layer instead
gives the loop W as a constant and a zero offset ``z_t`` added to the product,
whose gradient is the product's; W's gradient is then ``sum_t h_{t-1}^T dz_t``,
one (H, T*B) x (T*B, G*H) product after the backward loop (as cuDNN does).

Cells whose recurrence is linear in the state (``cell.linear_recurrence``:
minGRU, minLSTM, LRU; h_t = a_t h_{t-1} + b_t with a_t, b_t from x_t alone)
need no sequential loop at all: the layer computes every (a_t, b_t) from the
projected inputs and composes them with an associative scan in chunks
(``chunked_scan``; ``linear_scan``, or ``log_linear_scan`` in log space),
O(log T) deep, whose gradient is the same recurrence run backwards.
Generation and truncated BPTT run the same layer on each window or token
with the carry in and out, which is the cell's own ``step`` for T = 1.

All layers are batch-major, (B, T, F), and return ``(outputs, carry)``, like
PyTorch's ``(output, h_n)``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from rnn_research import cells as cells_lib
from rnn_research import dropout as dropout_lib
from rnn_research.cells import _ProjectedCell

Array = jax.Array
# log b_t past a sequence's end (b = 0). Finite, unlike -inf, so that
# logaddexp of two such entries has a finite gradient; exp of it is exactly 0.
_LOG_ZERO = -1e30

CONNECTIONS = ("none", "residual", "dense", "highway")
MERGES = ("concat", "sum")


def reverse_within_lengths(x: Array, lengths: Array | None) -> Array:
  """Reverses each sequence of (B, T, ...) inside its own length.

  Padding stays where it is, so a backward pass starts at each sequence's last
  real token (as PyTorch's packed sequences do). Applying it twice is the
  identity.
  """
  if lengths is None:
    return jnp.flip(x, axis=1)
  t = jnp.arange(x.shape[1])[None, :]  # (1, T)
  lengths = lengths[:, None]  # (B, 1)
  idx = jnp.where(t < lengths, lengths - 1 - t, t)  # (B, T)
  idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, idx, axis=1)


def _scan_body(cell: _ProjectedCell, carry, xs):
  """One time step. ``xs`` = (projected input, mask or None, perturbation or None)."""
  px, mask, delta = xs
  new_carry, y = cell.step(carry, px)
  if mask is not None:  # past a sequence's end the carry holds and y is zero
    keep = lambda new, old: jnp.where(mask[:, None], new, old)
    new_carry = jax.tree.map(keep, new_carry, carry)
    y = jnp.where(mask[:, None], y, 0.0)
  if delta is not None and cell.linear_recurrence:
    # The output is read from the perturbed state (for minGRU and minLSTM
    # the state itself, as below).
    new_carry = jax.tree.map(jnp.add, new_carry, delta)
    y = cell.readout(cell.state(new_carry), px)
    if mask is not None:
      y = jnp.where(mask[:, None], y, 0.0)
  elif delta is not None:
    new_carry = jax.tree.map(jnp.add, new_carry, delta)
    # The output is the hidden state, the carry's last leaf (h, or h of the
    # LSTM's (c, h)): it must carry the perturbation too, or dJ(i)/dh(i) at
    # distance 0 would be zero.
    delta_h = jax.tree.leaves(delta)[-1]
    y = y + (delta_h if mask is None else jnp.where(mask[:, None], delta_h, 0.0))
  return new_carry, y


def _scan_hoisting_weight_grad(step, kernel, others, px, carry0, unroll, dtype):
  """``lax.scan`` of ``step`` over time, with the kernel's gradient after the loop.

  ``step(kernel, others, carry, px_t, z_t) -> (carry, y, h)`` computes
  ``rec = h @ kernel (+ z_t)`` and the rest of the cell from it, and returns
  the h it multiplied; ``z_t`` is None when nothing is differentiated.
  px: (T, B, G*H), time-major. Returns (final carry, outputs (T, B, H)).
  """

  def inner(kernel, others, px, carry0, z):
    def body(carry, xs):
      carry, y, h = step(kernel, others, carry, *xs)
      return carry, (y, h)
    carry, (ys, hs) = jax.lax.scan(body, carry0, (px, z), unroll=unroll)
    return (carry, ys), hs

  @jax.custom_vjp
  def run(kernel, others, px, carry0):
    def body(carry, px_t):
      carry, y, _ = step(kernel, others, carry, px_t, None)
      return carry, y
    return jax.lax.scan(body, carry0, px, unroll=unroll)

  def fwd(kernel, others, px, carry0):
    # The loop is differentiated with respect to everything but the kernel.
    out, inner_vjp, hs = jax.vjp(functools.partial(inner, kernel), others, px, carry0,
                                 jnp.zeros_like(px), has_aux=True)
    return out, (kernel, hs, inner_vjp)

  def bwd(residuals, cotangents):
    kernel, hs, inner_vjp = residuals
    d_others, d_px, d_carry0, d_z = inner_vjp(cotangents)
    # dW = H_prev^T dZ over all (T, B) at once, as one row-major product
    _, kernel_vjp = jax.vjp(lambda k: cells_lib.projection(hs, k, dtype), kernel)
    (d_kernel,) = kernel_vjp(d_z)
    return d_kernel, d_others, d_px, d_carry0

  run.defvjp(fwd, bwd)
  return run(kernel, others, px, carry0)


def _compose(earlier, later):
  """(a, b) then (a', b'): h -> a' (a h + b) + b' = (a' a) h + (a' b + b')."""
  a, b = earlier
  a2, b2 = later
  return a2 * a, a2 * b + b2


def _log_compose(earlier, later):
  """``_compose`` of (log a, log b) pairs, for b > 0."""
  la, lb = earlier
  la2, lb2 = later
  return la + la2, jnp.logaddexp(la2 + lb, lb2)


# Steps per chunk of ``chunked_scan``: of 8 and 16, 16 was the faster for the
# benchmark's (16, 512, 256) scans on the CPU; compile time grows with it.
SCAN_CHUNK = 16


def chunked_scan(compose, elems, identity, chunk: int = SCAN_CHUNK):
  """Inclusive scan of an associative ``compose`` along axis 1, in chunks.

  The result at t is elems_1 o ... o elems_t, as ``jax.lax.associative_scan``
  gives, but the sequence is cut into chunks of ``chunk`` steps: one pass
  composes within every chunk at once (``chunk`` elementwise steps on
  (B, T/chunk, ...) slices), the chunks' totals are scanned the same way
  (recursively, log_chunk T levels), and each chunk's prefix is composed onto
  its results. Every operation reads whole contiguous blocks; the associative
  scan's stride-2 slicing and interleaving at each of its log2 T levels cost
  more on the CPU (BENCHMARKS.md, P2).

  Args:
    compose: (earlier, later) -> their composition, on tuples of arrays.
    elems: tuple of (B, T, ...) arrays.
    identity: tuple of scalars, compose's identity element (padding).
    chunk: steps per chunk (>= 2).
  """
  if chunk < 2:
    raise ValueError(f"chunk must be >= 2, got {chunk}")
  moved = tuple(jnp.moveaxis(e, 1, 0) for e in elems)  # (T, B, ...)
  out = _chunked_scan_time_major(compose, moved, identity, chunk)
  return tuple(jnp.moveaxis(o, 0, 1) for o in out)


def _chunked_scan_time_major(compose, xs, identity, chunk):
  steps = xs[0].shape[0]
  if steps <= chunk:  # one chunk: step after step
    acc, outs = tuple(x[0] for x in xs), []
    outs.append(acc)
    for j in range(1, steps):
      acc = compose(acc, tuple(x[j] for x in xs))
      outs.append(acc)
    return tuple(jnp.stack(o) for o in zip(*outs))
  n = -(-steps // chunk)  # chunks
  pad = n * chunk - steps
  xs = tuple(jnp.concatenate([x, jnp.full((pad,) + x.shape[1:], e, x.dtype)])
             for x, e in zip(xs, identity))
  xs = tuple(x.reshape((n, chunk) + x.shape[1:]) for x in xs)  # (n, chunk, ...)
  acc = tuple(x[:, 0] for x in xs)  # (n, ...): every chunk at once
  outs = [acc]
  for j in range(1, chunk):
    acc = compose(acc, tuple(x[:, j] for x in xs))
    outs.append(acc)
  totals = _chunked_scan_time_major(compose, acc, identity, chunk)  # (n, ...)
  # what comes before each chunk: the identity, then the totals of 1..n-1
  before = tuple(jnp.concatenate([jnp.full((1,) + t.shape[1:], e, t.dtype), t[:-1]])
                 for t, e in zip(totals, identity))
  outs = [compose(before, o) for o in outs]
  return tuple(jnp.stack(o, axis=1).reshape((n * chunk,) + o[0].shape[1:])[:steps]
               for o in zip(*outs))


def _states_from_zero(a: Array, b: Array, chunk: int) -> Array:
  """h_t of h_t = a_t h_{t-1} + b_t from h_0 = 0, (B, T, S)."""
  return chunked_scan(_compose, (a, b), (1.0, 0.0), chunk)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _linear_scan(a, b, h0, chunk):
  b = jnp.asarray(b)
  return _states_from_zero(a, b.at[:, 0].add(a[:, 0] * h0), chunk)


def _linear_scan_fwd(a, b, h0, chunk):
  h = _linear_scan(a, b, h0, chunk)
  return h, (a, h, h0)


def _linear_scan_bwd(chunk, residuals, g):
  # The transpose of a linear recurrence is the same recurrence backwards:
  # d_t = g_t + a_{t+1} d_{t+1}; then db_t = d_t, da_t = d_t h_{t-1},
  # dh_0 = a_1 d_1 (no conjugation for complex a, b: JAX's convention).
  a, h, h0 = residuals
  a_next = jnp.concatenate([a[:, 1:], jnp.zeros_like(a[:, :1])], axis=1)
  d = jnp.flip(_states_from_zero(jnp.flip(a_next, 1), jnp.flip(g, 1), chunk), 1)
  h_prev = jnp.concatenate([h0[:, None], h[:, :-1]], axis=1)
  return d * h_prev, d, a[:, 0] * d[:, 0]


_linear_scan.defvjp(_linear_scan_fwd, _linear_scan_bwd)


def linear_scan(a: Array, b: Array, h0: Array, chunk: int | None = None) -> Array:
  """Every h_t of h_t = a_t h_{t-1} + b_t: a, b (B, T, S), h0 (B, S) -> (B, T, S).

  h_0 enters as b_1 + a_1 h_0; the pairs (a_t, b_t) are composed by
  ``chunked_scan``. The gradient is the same scan run backwards in time (one
  pass, nothing of the forward composition stored but h), not the
  differentiated composition. ``chunk``: ``chunked_scan``'s, None =
  ``SCAN_CHUNK``.
  """
  return _linear_scan(a, b, h0, chunk or SCAN_CHUNK)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _log_linear_scan(log_a, log_b, h0, chunk):
  log_a_sum, log_h = chunked_scan(_log_compose, (log_a, log_b), (0.0, _LOG_ZERO), chunk)
  return jnp.exp(log_a_sum) * h0[:, None] + jnp.exp(log_h)


def _log_linear_scan_fwd(log_a, log_b, h0, chunk):
  h = _log_linear_scan(log_a, log_b, h0, chunk)
  return h, (log_a, log_b, h, h0)


def _log_linear_scan_bwd(chunk, residuals, g):
  # h is the linear recurrence of a = exp(log a), b = exp(log b): its
  # gradient, times da/dlog a = a and db/dlog b = b.
  log_a, log_b, h, h0 = residuals
  a = jnp.exp(log_a)
  d_a, d_b, d_h0 = _linear_scan_bwd(chunk, (a, h, h0), g)
  return d_a * a, d_b * jnp.exp(log_b), d_h0


_log_linear_scan.defvjp(_log_linear_scan_fwd, _log_linear_scan_bwd)


def log_linear_scan(log_a: Array, log_b: Array, h0: Array,
                    chunk: int | None = None) -> Array:
  """``linear_scan`` from log a_t and log b_t (b_t > 0), Feng et al. 2024's form.

  log h_t (for h_0 = 0) = a*_t + logcumsumexp_{k<=t}(log b_k - a*_k), with
  a*_t = sum_{k<=t} log a_k, computed pairwise by ``chunked_scan`` (no large
  a*_t is ever subtracted). h_0 (any sign) is added outside the log. The
  gradient is ``linear_scan``'s backward pass (times a_t and b_t).
  """
  return _log_linear_scan(log_a, log_b, h0, chunk or SCAN_CHUNK)


class Recurrent(nn.Module):
  """One recurrent layer over a (B, T, D) sequence.

  Attributes:
    cell: the cell (any registered cell; see ``cells.CELLS``).
    reverse: run from the end of each sequence to its start (within
      ``lengths``); outputs are returned in the original order.
    unroll: time steps per loop iteration of the compiled scan.
    hoist_weight_grad: differentiate W once after the loop (module
      docstring), for cells with ``single_recurrent_product`` and calls
      without ``lengths`` or ``carry_perturbation``; the gradient is the same
      up to float rounding. False always uses the per-step form.
    parallel: for cells with ``linear_recurrence``, compute the sequence with
      an associative scan (module docstring), in log space when the cell has
      ``log_space`` and no ``carry_perturbation`` is given (log space needs
      b_t > 0). False runs them step by step like the other cells (the
      reference the parallel form is tested against).

  Call arguments:
    inputs: (B, T, D).
    initial_carry: the cell's carry for batch B; zeros if None.
    lengths: (B,) int, real length of each sequence. Past it the carry stops
      updating (the final carry is the one at the sequence's end) and outputs
      are zero.
    carry_perturbation: a pytree like the carry with a time axis, (B, T, ...):
      added to the carry after each step (and its last leaf, the hidden state,
      to that step's output). Its gradient is dJ/d(carry_t), through step t's
      output and every later step, which is what ``probes`` measure.

  Returns:
    (outputs (B, T, H), final carry).
  """

  cell: _ProjectedCell
  reverse: bool = False
  unroll: int = 1
  hoist_weight_grad: bool = True
  parallel: bool = True

  @nn.compact
  def __call__(self, inputs: Array, initial_carry=None, lengths: Array | None = None,
               carry_perturbation=None):
    if self.reverse:
      inputs = reverse_within_lengths(inputs, lengths)
      if carry_perturbation is not None:
        carry_perturbation = jax.tree.map(
            lambda d: reverse_within_lengths(d, lengths), carry_perturbation)
    if initial_carry is None:
      initial_carry = self.cell.initialize_carry(
          jax.random.key(0), inputs[:, 0].shape)
    px = self.cell.project_inputs(inputs)  # (B, T, G*H): one product for all steps
    if (self.hoist_weight_grad and self.cell.single_recurrent_product
        and lengths is None and carry_perturbation is None
        and not self.is_initializing()):
      carry, outputs = self._hoisted(px, initial_carry)
      if self.reverse:
        outputs = reverse_within_lengths(outputs, lengths)
      return outputs, carry
    mask = None
    if lengths is not None:
      mask = jnp.arange(inputs.shape[1])[None, :] < lengths[:, None]  # (B, T)
    if self.parallel and self.cell.linear_recurrence:
      carry, outputs = self._parallel(px, initial_carry, mask, carry_perturbation)
      if self.reverse:
        outputs = reverse_within_lengths(outputs, lengths)
      return outputs, carry
    scan = nn.scan(
        _scan_body,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=1,
        out_axes=1,
        unroll=self.unroll,
    )
    carry, outputs = scan(self.cell, initial_carry, (px, mask, carry_perturbation))
    if self.reverse:
      outputs = reverse_within_lengths(outputs, lengths)
    return outputs, carry

  def _hoisted(self, px, initial_carry):
    """The scan with W's gradient as one product after it; (B, T, ...) in and out."""
    params = dict(self.cell.variables["params"])
    params.pop("input")  # used by project_inputs, outside the loop
    kernel = params.pop("recurrent_kernel")
    cell = self.cell.clone(parent=None)

    def step(kernel, others, carry, px_t, z_t):
      def apply(m):
        h = m.recurrent_input(carry)
        rec = m.recurrent(h, m.recurrent_kernel)
        if z_t is not None:
          rec = rec + z_t
        carry_, y = m.step_from_product(carry, px_t, rec)
        return carry_, y, h
      return cell.apply({"params": {**others, "recurrent_kernel": kernel}}, method=apply)

    carry, outputs = _scan_hoisting_weight_grad(
        step, kernel, params, jnp.swapaxes(px, 0, 1), initial_carry, self.unroll,
        self.cell.dtype)
    return carry, jnp.swapaxes(outputs, 0, 1)


  def _parallel(self, px, initial_carry, mask, carry_perturbation):
    """All steps of a linear-recurrence cell at once; (B, T, ...) in and out.

    The same as ``_scan_body`` step after step: past a sequence's end a_t = 1
    and b_t = 0 (the state holds) and outputs are zero; a perturbation is
    added to b_t, i.e. to the state after step t.
    """
    cell = self.cell
    h0 = cell.state(initial_carry)  # (B, S)
    live = None if mask is None else mask[:, :, None]  # (B, T, 1)
    if cell.log_space and carry_perturbation is None:
      log_a, log_b = cell.log_coefficients(px)
      if live is not None:
        log_a = jnp.where(live, log_a, 0.0)
        log_b = jnp.where(live, log_b, _LOG_ZERO)
      states = log_linear_scan(log_a, log_b, h0)
    else:
      a, b = cell.coefficients(px)
      a = jnp.broadcast_to(a, b.shape)  # (B, T, S): the LRU's lambda is (S,)
      if live is not None:
        a = jnp.where(live, a, 1.0)
        b = jnp.where(live, b, 0.0)
      if carry_perturbation is not None:
        b = b + cell.state(carry_perturbation)
      states = linear_scan(a, b, h0)  # (B, T, S)
    outputs = cell.readout(states, px)
    if live is not None:
      outputs = jnp.where(live, outputs, 0.0)
    return cell.carry_of(states[:, -1]), outputs


class Bidirectional(nn.Module):
  """A forward and a backward layer with separate weights, for encoders.

  The backward layer reads each sequence from its last real token to its first.
  Outputs are merged by ``concat`` (B, T, 2H) or ``sum`` (B, T, H). The carry is
  ``(forward_carry, backward_carry)``. Never use it in a language model: the
  backward half has read the words it is asked to predict.
  """

  forward_layer: Recurrent
  backward_layer: Recurrent
  merge: str = "concat"

  @nn.compact
  def __call__(self, inputs, initial_carry=None, lengths=None, carry_perturbation=None):
    if self.merge not in MERGES:
      raise ValueError(f"unknown merge {self.merge!r}; valid: {', '.join(MERGES)}")
    init_f, init_b = initial_carry if initial_carry is not None else (None, None)
    pert_f, pert_b = (carry_perturbation if carry_perturbation is not None
                      else (None, None))
    out_f, carry_f = self.forward_layer(inputs, init_f, lengths, pert_f)
    out_b, carry_b = self.backward_layer(inputs, init_b, lengths, pert_b)
    if self.merge == "concat":
      outputs = jnp.concatenate([out_f, out_b], axis=-1)
    else:
      outputs = out_f + out_b
    return outputs, (carry_f, carry_b)


class StackedRNN(nn.Module):
  """``num_layers`` recurrent layers with dropout and skip connections between them.

  Attributes:
    cell_factory: called with no arguments, returns a fresh cell per layer
      (and per direction); e.g. ``functools.partial(LSTMCell, hidden_size=650)``.
    num_layers: number of stacked layers.
    bidirectional: a ``Bidirectional`` layer per level (for encoders only).
    merge: how a bidirectional layer merges its directions.
    dropout_rate: dropout on each layer's output before the next layer (the
      non-recurrent dropout of Zaremba et al. 2014). Not applied after the top
      layer: the model that owns the stack decides that.
    variational: one dropout mask per sequence, shared over time (locked
      dropout, Gal & Ghahramani 2016), instead of a new mask per step.
    connection: between layers, ``none``; ``residual`` (x + f(x), He et al.
      2016); ``dense`` (layer l reads the concatenation of the stack input and
      all lower layers' outputs); ``highway`` (g * f(x) + (1 - g) * x, with a
      learned gate g; Srivastava et al. 2015). Residual and highway need equal
      input and output sizes and so start at the second layer when the stack's
      input size differs from its hidden size.
    highway_bias: initial bias of the highway gate; negative starts the stack
      close to carrying its input through.
    unroll: passed to every ``Recurrent``.

  Call returns ``(outputs, carries)``: the top layer's outputs (B, T, F) and a
  tuple with each layer's final carry. With ``return_hidden=True`` also a
  tuple of every layer's outputs (the per-step hidden states, for probes).
  """

  cell_factory: Callable[[], _ProjectedCell]
  num_layers: int = 1
  bidirectional: bool = False
  merge: str = "concat"
  dropout_rate: float = 0.0
  variational: bool = False
  connection: str = "none"
  highway_bias: float = -1.0
  unroll: int = 1

  def setup(self):
    if self.connection not in CONNECTIONS:
      raise ValueError(
          f"unknown connection {self.connection!r}; valid: {', '.join(CONNECTIONS)}")
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
    layers = []
    for i in range(self.num_layers):
      if self.bidirectional:
        layers.append(Bidirectional(
            Recurrent(self.cell_factory(), unroll=self.unroll),
            Recurrent(self.cell_factory(), reverse=True, unroll=self.unroll),
            merge=self.merge, name=f"layer_{i}"))
      else:
        layers.append(Recurrent(self.cell_factory(), unroll=self.unroll,
                                name=f"layer_{i}"))
    self.layers = layers
    self.dropout = dropout_lib.Dropout(self.dropout_rate,
                              broadcast_dims=(1,) if self.variational else ())
    if self.connection == "highway":
      size = self.cell_factory().hidden_size * (
          2 if self.bidirectional and self.merge == "concat" else 1)
      self.highway_gates = [
          nn.Dense(size, bias_init=nn.initializers.constant(self.highway_bias),
                   name=f"highway_{i}") for i in range(self.num_layers)]

  def __call__(self, inputs: Array, initial_carries: Sequence[Any] | None = None,
               lengths: Array | None = None, deterministic: bool = True,
               return_hidden: bool = False, carry_perturbations=None):
    carries, hidden = [], []
    x = inputs
    lower = [inputs]  # everything below the current layer, for dense connections
    for i, layer in enumerate(self.layers):
      layer_input = jnp.concatenate(lower, axis=-1) if self.connection == "dense" else x
      init = None if initial_carries is None else initial_carries[i]
      pert = None if carry_perturbations is None else carry_perturbations[i]
      y, carry = layer(layer_input, init, lengths, pert)
      if y.shape == x.shape and self.connection == "residual":
        y = x + y
      elif y.shape == x.shape and self.connection == "highway":
        gate = nn.sigmoid(self.highway_gates[i](x))
        y = gate * y + (1.0 - gate) * x
      carries.append(carry)
      hidden.append(y)
      if i < self.num_layers - 1:  # Zaremba et al.: dropout between layers
        y = self.dropout(y, deterministic=deterministic)
      lower.append(y)
      x = y
    if return_hidden:
      return x, tuple(carries), tuple(hidden)
    return x, tuple(carries)
