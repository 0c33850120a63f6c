r"""Recurrent cells: Elman, LSTM and GRU, and the linear-in-the-state minGRU,
minLSTM and LRU, with the input projection split off.

Every cell follows Flax's :class:`flax.linen.RNNCellBase` contract
(``__call__(carry, x) -> (carry, y)``, ``initialize_carry``,
``num_feature_axes``), so it runs inside ``flax.linen.RNN`` as well as in our
own :class:`rnn_research.recurrent.Recurrent`.

For speed a cell is used in two halves:

* ``project_inputs(x)`` computes ``U x + b`` for every gate at once. It has no
  dependence on the previous step, so a layer applies it to the whole sequence
  (B, T, D) in one matrix product, outside the time loop.
* ``step(carry, px)`` takes that projection for one step and does only the
  recurrent product ``W h_{t-1}`` and the nonlinearities, inside the loop.

``__call__(carry, x)`` is ``step(carry, project_inputs(x))``. Cells whose step
has one recurrent product (``single_recurrent_product``: Elman, LSTM, GRU with
``reset_after``) split ``step`` once more, into the product of
``recurrent_input(carry)`` with W and ``step_from_product(carry, px, rec)``,
so that ``recurrent.Recurrent`` can compute W's gradient as one product after
the backward loop instead of one small product per step.

Parameter trees are the same shape for every cell (G gates, H = hidden_size):

* ``input/kernel`` (D, G*H) and ``input/bias`` (G*H,): U and b, gates fused
  along the last axis in the order the docstring gives (PyTorch's order);
* ``recurrent_kernel`` (H, G*H): W;
* GRU with ``reset_after`` only: ``recurrent_bias`` (H,), the bias inside
  ``r * (W_h h + b_W)``.

Matrix products run in ``dtype`` (e.g. bfloat16) with float32 results; gates,
the carry and the LSTM cell state stay in float32.

minGRU, minLSTM and the LRU (``LinearRecurrenceCell``) have no W: their step
is h_t = a_t * h_{t-1} + b_t with (a_t, b_t) from x_t alone, which
``recurrent.Recurrent`` computes for all steps at once with a chunked
associative scan (``recurrent.chunked_scan``). They keep ``input/kernel`` and ``input/bias`` (the LRU's B has no bias).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

Array = jax.Array
Initializer = Callable[..., Array]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
}


def rows_transposed(x: Array) -> Array:
  """x (..., K) -> its transpose (K, N), N the product of the leading axes,
  laid out row-major: a transpose of all axes and a reshape, which XLA does
  not fold back into the dot as a transposed operand."""
  return jnp.moveaxis(x, -1, 0).reshape(x.shape[-1], -1)  # (K, N)


def projection(x: Array, kernel: Array, dtype: Any = None) -> Array:
  r"""x (..., K) @ kernel (K, N) in ``dtype`` (None = float32), float32 result.

  The product runs in ``dtype`` with float32 accumulation: rounding the
  product itself to bfloat16 would throw away the accumulation. The gradient
  is written by hand so that all three products run in ``dtype`` as plain
  row-major dots, the form XLA:CPU sends to its fast kernels (YNNPACK):

  .. math::

    \partial x = g K^\top, \qquad \partial K = x^\top g,

  with the cotangent :math:`g` cast to ``dtype`` (it arrives in float32) and
  :math:`x^\top` laid out row-major (:func:`rows_transposed`). Autodiff's
  own :math:`\partial K` contracts the leading axis of both operands, a dot
  that jaxlib 0.10.2 sends to a float32 Eigen kernel after transposing the
  (N, K') cotangent, and in bfloat16 its float32 cotangent keeps both
  backward products in float32. ``dx`` and ``dK`` come back in the dtypes
  of ``x`` and ``kernel``. ``tests/test_models.py`` checks the gradients
  against autodiff and the compiled HLO's dot operand types.
  """
  dtypes = (jnp.dtype(dtype or jnp.float32), jnp.dtype(x.dtype), jnp.dtype(kernel.dtype))
  return _projection(dtypes, x, kernel)


def _dot(x, kernel, dtype):
  return jax.lax.dot_general(x.astype(dtype), kernel.astype(dtype),
                             (((x.ndim - 1,), (0,)), ((), ())),
                             preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _projection(dtypes, x, kernel):
  return _dot(x, kernel, dtypes[0])


def _projection_fwd(dtypes, x, kernel):
  x_c, kernel_c = x.astype(dtypes[0]), kernel.astype(dtypes[0])
  return _dot(x_c, kernel_c, dtypes[0]), (x_c, kernel_c)


def _projection_bwd(dtypes, residuals, g):
  dtype, x_dtype, kernel_dtype = dtypes
  x_c, kernel_c = residuals
  g_c = g.astype(dtype)  # (..., N)
  dx = jax.lax.dot_general(g_c, kernel_c, (((g.ndim - 1,), (1,)), ((), ())),
                           preferred_element_type=jnp.float32)  # (..., K)
  dk = jax.lax.dot_general(rows_transposed(x_c), g_c.reshape(-1, g.shape[-1]),
                           (((1,), (0,)), ((), ())),
                           preferred_element_type=jnp.float32)  # (K, N)
  return dx.astype(x_dtype), dk.astype(kernel_dtype)


_projection.defvjp(_projection_fwd, _projection_bwd)


def float32_dot(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  """``nn.Dense``'s ``dot_general``: :func:`projection` in the operands'
  dtype (the layer's compute dtype) for Dense's x (..., K) @ kernel (K, N),
  ``lax.dot_general`` with a float32 result for any other contraction."""
  del precision, preferred_element_type
  if dimension_numbers == (((lhs.ndim - 1,), (0,)), ((), ())) and rhs.ndim == 2:
    return projection(lhs, rhs, lhs.dtype)
  return jax.lax.dot_general(lhs, rhs, dimension_numbers,
                             preferred_element_type=jnp.float32)


def recurrent_product(h: Array, kernel: Array, dtype: Any = None) -> Array:
  """h @ kernel in ``dtype`` (None = float32) with a float32 result (:func:`projection`)."""
  return projection(h, kernel, dtype)


def uniform_init(scale: float) -> Initializer:
  """uniform(-scale, scale), the initialisation of Zaremba et al. 2014."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)

  return init


def identity_init(key, shape, dtype=jnp.float32):
  """The identity matrix (square ``shape``): IRNN's W_h (Le, Jaitly & Hinton 2015)."""
  del key
  rows, cols = shape
  if rows != cols:
    raise ValueError(f"an identity recurrent kernel must be square, got {shape}")
  return jnp.eye(rows, dtype=dtype)


RECURRENT_INITS: dict[str, Initializer] = {
    "orthogonal": nn.initializers.orthogonal(),
    "identity": identity_init,
}
"""Recurrent-kernel initialisers by name, for configs (``model.cell_options =
{'recurrent_kernel_init': 'identity'}``); each applies per gate block."""


def resolve_init(init: Initializer | str) -> Initializer:
  """An initialiser, or its name in ``RECURRENT_INITS``; an unknown name lists them."""
  if not isinstance(init, str):
    return init
  try:
    return RECURRENT_INITS[init]
  except KeyError:
    raise ValueError(f"unknown recurrent_kernel_init {init!r}; valid: "
                     f"{', '.join(RECURRENT_INITS)}") from None


def chrono_bias(key, hidden_size: int, t_max: float) -> Array:
  """log(U[1, T_max - 1]), (H,): the chrono bias of Tallec & Ollivier 2018.

  A gate sigma(b) = 1 - 1/T keeps a unit's memory for about T steps; with
  T ~ U[2, T_max], b = log(T - 1). The LSTM's forget gate gets b, its input
  gate -b; the GRU's update gate (the weight of the candidate) -b.
  """
  if not t_max > 2:
    raise ValueError(f"chrono_t_max must be > 2 (0 = off), got {t_max}")
  return jnp.log(jax.random.uniform(key, (hidden_size,), jnp.float32, 1.0, t_max - 1.0))


def gate_stacked(init: Initializer, num_gates: int) -> Initializer:
  """Applies ``init`` to each gate's (in, H) block of a fused (in, G*H) kernel.

  An orthogonal W_h must be orthogonal per gate, not across the fused matrix
  (which is not square).
  """
  if num_gates == 1:
    return init

  def stacked(key, shape, dtype=jnp.float32):
    rows, cols = shape
    keys = jax.random.split(key, num_gates)
    return jnp.concatenate(
        [init(k, (rows, cols // num_gates), dtype) for k in keys], axis=-1)

  return stacked


class _ProjectedCell(nn.RNNCellBase):
  """Shared machinery of every cell: the fused input projection and the carry.

  Subclasses set ``num_gates`` and implement ``step``.
  """

  hidden_size: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Any = None  # compute dtype of the matrix products; None = float32
  param_dtype: Any = jnp.float32

  num_gates = 1
  # Whether h_t = a_t * h_{t-1} + b_t with (a_t, b_t) from x_t alone
  # (``LinearRecurrenceCell``): a layer may then scan in parallel.
  linear_recurrence = False
  single_recurrent_product = False

  def setup(self):
    self.input = nn.Dense(
        self.num_gates * self.hidden_size,
        kernel_init=self.kernel_init,
        bias_init=self._input_bias_init,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        dot_general=float32_dot,
    )

  @property
  def _input_bias_init(self) -> Initializer:
    return self.bias_init

  def project_inputs(self, x: Array) -> Array:
    """U x + b for all gates: (..., D) -> (..., G*H), float32."""
    return self.input(x).astype(jnp.float32)

  def __call__(self, carry, x):
    return self.step(carry, self.project_inputs(x))

  def step(self, carry, px):
    """One time step: ``px`` is this step's ``project_inputs``, (B, G*H)."""
    raise NotImplementedError

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng  # zero initial state, as in every reference implementation
    batch_dims = tuple(input_shape[:-1])
    return jnp.zeros(batch_dims + (self.hidden_size,), jnp.float32)

  @property
  def num_feature_axes(self) -> int:
    return 1


class _FusedCell(_ProjectedCell):
  """A cell with a recurrent kernel W: the classic cells.

  Subclasses set ``num_gates`` and implement ``step_from_product`` or ``step``.
  """

  # An initialiser or a name in RECURRENT_INITS ('orthogonal', 'identity').
  recurrent_kernel_init: Initializer | str = nn.initializers.orthogonal()

  def __post_init__(self):
    resolve_init(self.recurrent_kernel_init)  # an unknown name fails at construction
    t_max = getattr(self, "chrono_t_max", 0.0)
    if t_max and not t_max > 2:
      raise ValueError(f"chrono_t_max must be > 2 (0 = off), got {t_max}")
    super().__post_init__()

  def setup(self):
    super().setup()
    self.recurrent_kernel = self.param(
        "recurrent_kernel",
        gate_stacked(resolve_init(self.recurrent_kernel_init), self.num_gates),
        (self.hidden_size, self.num_gates * self.hidden_size),
        self.param_dtype,
    )

  def recurrent(self, h: Array, kernel: Array) -> Array:
    """h @ kernel in ``dtype`` with a float32 result."""
    return recurrent_product(h, kernel, self.dtype)

  def step(self, carry, px):
    """One time step: ``px`` is this step's ``project_inputs``, (B, G*H)."""
    rec = self.recurrent(self.recurrent_input(carry), self.recurrent_kernel)
    return self.step_from_product(carry, px, rec)

  @property
  def single_recurrent_product(self) -> bool:
    """Whether ``step`` is ``step_from_product`` after one product with W.

    True for a cell that implements ``step_from_product`` and keeps this
    class's ``step``; a cell that writes its own ``step`` is always run
    through it.
    """
    cls = type(self)
    return (cls.step is _FusedCell.step
            and cls.step_from_product is not _FusedCell.step_from_product)

  def recurrent_input(self, carry) -> Array:
    """The part of the carry that multiplies W: h_{t-1}, (B, H)."""
    return carry

  def step_from_product(self, carry, px, rec):
    """The step given ``rec = recurrent_input(carry) @ W``, (B, G*H) float32."""
    raise NotImplementedError


class ElmanCell(_FusedCell):
  r"""Elman (simple) RNN cell (Elman 1990).

  .. math::
      h_t = \phi(W_h h_{t-1} + W_x x_t + b)

  with :math:`\phi` one of ``tanh``, ``relu``, ``sigmoid``, ``identity``
  (``activation``). :math:`W_h` is ``recurrent_kernel`` (H, H), :math:`W_x`
  and :math:`b` are ``input/kernel`` (D, H) and ``input/bias``. The carry and
  the output are both :math:`h_t`.

  With ``identity`` the map is linear, so the gradient from step i back to
  step j is exactly :math:`g\,W_h^{\,i-j}` (Pascanu et al. 2013): the
  cleanest setting for the vanishing/exploding-gradient studies. W_h starts
  orthogonal (spectral radius 1) by default.

  IRNN (Le, Jaitly & Hinton 2015) is ``activation='relu'`` with
  ``recurrent_kernel_init='identity'`` (W_h = I) and zero biases (the
  default): at initialisation the state is carried over unchanged where the
  units are active.

  Example::

      cell = ElmanCell(hidden_size=64, activation="tanh")
      carry = cell.initialize_carry(jax.random.key(0), (8, 32))
      variables = cell.init(jax.random.key(1), carry, jnp.ones((8, 32)))
      carry, y = cell.apply(variables, carry, jnp.ones((8, 32)))
  """

  activation: str = "tanh"

  num_gates = 1

  def step_from_product(self, carry, px, rec):
    h = ACTIVATIONS[self.activation](px + rec)
    return h, h


class LSTMCell(_FusedCell):
  r"""Long short-term memory cell (Hochreiter & Schmidhuber 1997) with the
  forget gate of Gers, Schmidhuber & Cummins 2000.

  .. math::
      i_t &= \sigma(W_i h_{t-1} + U_i x_t + b_i) \\
      f_t &= \sigma(W_f h_{t-1} + U_f x_t + b_f) \\
      \tilde c_t &= \tanh(W_c h_{t-1} + U_c x_t + b_c) \\
      o_t &= \sigma(W_o h_{t-1} + U_o x_t + b_o) \\
      c_t &= f_t \odot c_{t-1} + i_t \odot \tilde c_t \\
      h_t &= o_t \odot \tanh(c_t)

  Gates are fused in the order (i, f, c~, o), PyTorch's, in ``input/kernel``
  (D, 4H) = [U_i U_f U_c U_o], ``recurrent_kernel`` (H, 4H) = [W_i W_f W_c W_o]
  and ``input/bias`` (4H,). The carry is ``(c, h)``; the output is h.

  The additive update of c is why gradients survive: dc_t/dc_{t-1} = f_t
  (elementwise), so with forget gates near 1 the error flows back unchanged
  over many steps instead of being multiplied by W_h at every step.

  ``forget_bias`` is added to the initial value of b_f (it stays trainable).
  Jozefowicz et al. 2015 recommend 1; Zaremba et al. 2014 used 0.

  ``chrono_t_max`` > 0 is the chrono initialisation of Tallec & Ollivier
  2018 instead: :math:`b_f \sim \log(\mathcal U[1, T_{max} - 1])` per unit and
  :math:`b_i = -b_f`, so unit j starts with forget gate 1 - 1/T_j and input
  gate about 1/T_j, T_j ~ U[2, T_max]: memories of every time scale up to
  T_max. ``forget_bias`` is then not used.
  """

  forget_bias: float = 1.0
  chrono_t_max: float = 0.0

  num_gates = 4

  @property
  def _input_bias_init(self) -> Initializer:
    h = self.hidden_size

    def init(key, shape, dtype=jnp.float32):
      bias = self.bias_init(key, shape, dtype)
      if self.chrono_t_max:
        b_f = chrono_bias(jax.random.fold_in(key, 1), h, self.chrono_t_max).astype(dtype)
        return bias.at[:h].set(-b_f).at[h:2 * h].set(b_f)
      return bias.at[h:2 * h].add(self.forget_bias)

    return init

  def recurrent_input(self, carry) -> Array:
    return carry[1]

  def step_from_product(self, carry, px, rec):
    c, _ = carry
    gates = px + rec  # (B, 4H)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (c, h), h

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    h = super().initialize_carry(rng, input_shape)
    return (h, h)


class GRUCell(_FusedCell):
  r"""Gated recurrent unit (Cho et al. 2014).

  .. math::
      r_t &= \sigma(W_r h_{t-1} + U_r x_t + b_r) \\
      u_t &= \sigma(W_u h_{t-1} + U_u x_t + b_u) \\
      \tilde h_t &= \tanh(W_h (r_t \odot h_{t-1}) + U_h x_t + b_h) \\
      h_t &= (1 - u_t) \odot h_{t-1} + u_t \odot \tilde h_t

  With ``reset_after=True`` (cuDNN's and PyTorch's variant) the candidate is
  :math:`\tanh(r_t \odot (W_h h_{t-1} + b_W) + U_h x_t + b_h)`, so all three
  recurrent products are one matrix product; ``recurrent_bias`` is b_W.

  Gates are fused in the order (r, u, h~), PyTorch's (r, z, n), in
  ``input/kernel`` (D, 3H), ``recurrent_kernel`` (H, 3H) and ``input/bias``.
  Carry and output are h. Like the LSTM's cell state, h_t is an interpolation
  of h_{t-1} and a candidate: with u near 0 the state (and its gradient)
  passes through unchanged.

  ``chrono_t_max`` > 0: chrono initialisation (Tallec & Ollivier 2018) of the
  update gate, :math:`b_u = -\log(\mathcal U[1, T_{max} - 1])` per unit, so
  u_j starts at 1/T_j, T_j ~ U[2, T_max]: the same leak 1/T as the LSTM's
  input gate (1 - u_j plays its forget gate). b_r and b_h stay zero.
  """

  reset_after: bool = False
  chrono_t_max: float = 0.0

  num_gates = 3

  @property
  def _input_bias_init(self) -> Initializer:
    h = self.hidden_size

    def init(key, shape, dtype=jnp.float32):
      bias = self.bias_init(key, shape, dtype)
      if self.chrono_t_max:
        b_u = -chrono_bias(jax.random.fold_in(key, 1), h, self.chrono_t_max)
        return bias.at[h:2 * h].set(b_u.astype(dtype))
      return bias

    return init

  def setup(self):
    super().setup()
    if self.reset_after:
      self.recurrent_bias = self.param(
          "recurrent_bias", self.bias_init, (self.hidden_size,), self.param_dtype)

  @property
  def single_recurrent_product(self) -> bool:
    # reset-before multiplies W_h by r * h, known only after the first product
    return self.reset_after and type(self).step is GRUCell.step

  def step(self, carry, px):
    if self.reset_after:  # (B, 3H): one product for all gates
      return super().step(carry, px)
    h = carry
    hs = self.hidden_size
    x_r, x_u, x_h = jnp.split(px, 3, axis=-1)
    w = self.recurrent_kernel
    h_r, h_u = jnp.split(self.recurrent(h, w[:, :2 * hs]), 2, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    u = jax.nn.sigmoid(x_u + h_u)
    candidate = jnp.tanh(x_h + self.recurrent(r * h, w[:, 2 * hs:]))
    return self._update(h, u, candidate)

  def step_from_product(self, carry, px, rec):
    if not self.reset_after:
      raise ValueError("a reset-before GRU step has two recurrent products")
    h = carry
    x_r, x_u, x_h = jnp.split(px, 3, axis=-1)
    h_r, h_u, h_h = jnp.split(rec, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    u = jax.nn.sigmoid(x_u + h_u)
    candidate = jnp.tanh(x_h + r * (h_h + self.recurrent_bias))
    return self._update(h, u, candidate)

  @staticmethod
  def _update(h, u, candidate):
    h = (1.0 - u) * h + u * candidate
    return h, h


def g_activation(x: Array) -> Array:
  """Feng et al. 2024's g: x + 1/2 for x >= 0, sigmoid(x) below; positive, continuous."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g_activation(x: Array) -> Array:
  """log g(x), computed without forming g: log(relu(x) + 1/2) or -softplus(-x)."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


class LinearRecurrenceCell(_ProjectedCell):
  r"""A cell whose recurrence is linear in the state, with coefficients from x_t alone:

  .. math::
      s_t = a_t \odot s_{t-1} + b_t, \qquad y_t = \mathrm{readout}(s_t, x_t),

  where (a_t, b_t) = ``coefficients(project_inputs(x_t))``. The composition
  of two such steps is again one, (a, b) then (a', b') = (a' a, a' b + b'),
  an associative operation, so ``recurrent.Recurrent`` computes every s_t at
  once with ``recurrent.chunked_scan`` (O(log T) depth instead of T
  sequential steps); ``step`` is the same recurrence one step at a time.

  The state s may differ from the carry (the LRU's is complex, its carry the
  real (Re s, Im s)): ``state(carry)`` and ``carry_of(state)`` convert, both
  linear. A cell with ``log_space`` also gives ``log_coefficients``
  (log a_t, log b_t) with b_t > 0, and the layer then scans in log space.
  """

  linear_recurrence = True
  log_space = False

  def coefficients(self, px):
    """(a_t, b_t) for ``px`` (..., P): arrays (..., S), a may broadcast against b."""
    raise NotImplementedError

  def log_coefficients(self, px):
    """(log a_t, log b_t) for cells with ``log_space``."""
    raise NotImplementedError

  def state(self, carry) -> Array:
    return carry

  def carry_of(self, state: Array):
    return state

  def readout(self, state: Array, px) -> Array:
    """y_t from s_t (and this step's ``px``); the state itself by default."""
    del px
    return state

  def step(self, carry, px):
    a, b = self.coefficients(px)
    s = a * self.state(carry) + b
    return self.carry_of(s), self.readout(s, px)


class MinGRUCell(LinearRecurrenceCell):
  r"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?").

  The GRU with the gates and the candidate read from x_t only:

  .. math::
      z_t &= \sigma(U_z x_t + b_z) \\
      \tilde h_t &= g(U_h x_t + b_h) \\
      h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

  so h_t = a_t h_{t-1} + b_t with a_t = 1 - z_t, b_t = z_t \tilde h_t. g is
  the paper's positive activation, g(x) = x + 1/2 (x >= 0), sigmoid(x)
  (x < 0), which keeps h_t > 0 for the log-space form.

  Log-space form (the paper's parallel mode, ``log_space=True``; off by
  default: the plain scan multiplies a_t in (0, 1), which neither overflows
  nor loses precision, and trains faster on the CPU, BENCHMARKS.md P2): with
  k_t = U_z x_t + b_z,

  .. math::
      \log a_t = -\mathrm{softplus}(k_t), \quad
      \log b_t = -\mathrm{softplus}(-k_t) + \log g(U_h x_t + b_h), \\
      \log h_t = a^*_t + \operatorname{logcumsumexp}_{k \le t}(\log b_k - a^*_k),
      \quad a^*_t = \textstyle\sum_{k \le t} \log a_k,

  for h_0 = 0; the layer adds the initial state's term (\prod_{k \le t} a_k)
  h_0 outside the logarithm, so a carried state of any sign is exact (the
  paper's code takes log g(h_0) instead). ``step`` is the first form.

  Gates are fused in the order (z, h~) in ``input/kernel`` (D, 2H) and
  ``input/bias`` (2H,); there is no recurrent kernel. Carry and output are h.
  """

  log_space: bool = False

  num_gates = 2

  def coefficients(self, px):
    k, pre_h = jnp.split(px, 2, axis=-1)
    # 1 - z_t as sigmoid(-k_t): the same number, without cancellation near z = 1
    return jax.nn.sigmoid(-k), jax.nn.sigmoid(k) * g_activation(pre_h)

  def log_coefficients(self, px):
    k, pre_h = jnp.split(px, 2, axis=-1)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g_activation(pre_h)


class MinLSTMCell(LinearRecurrenceCell):
  r"""minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024).

  The LSTM with gates and candidate from x_t only, the output gate dropped and
  the forget and input gates normalised to sum to one (time-independent scale
  of h):

  .. math::
      f_t &= \sigma(U_f x_t + b_f), \quad i_t = \sigma(U_i x_t + b_i) \\
      \tilde h_t &= g(U_h x_t + b_h) \\
      f'_t &= \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t} \\
      h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

  with g as in ``MinGRUCell``. With
  d_t = softplus(-(U_f x_t + b_f)) - softplus(-(U_i x_t + b_i)) = log i_t - log f_t,
  the plain form computes f'_t = sigmoid(-d_t) and i'_t = sigmoid(d_t), equal
  to the quotients and finite where f_t + i_t underflows (both gates closed:
  a PTB run under Adam reached such pre-activations and a non-finite update
  with the quotients). Log-space form:

  .. math::
      \log f'_t = -\mathrm{softplus}(d_t), \quad
      \log i'_t = -\mathrm{softplus}(-d_t), \quad
      \log b_t = \log i'_t + \log g(U_h x_t + b_h),

  scanned as in ``MinGRUCell``. Gates fused in the order (f, i, h~) in
  ``input/kernel`` (D, 3H) and ``input/bias`` (3H,). Carry and output are h.
  """

  log_space: bool = False

  num_gates = 3

  @staticmethod
  def _log_gate_ratio(pre_f, pre_i):
    """d = log i - log f, from the pre-activations (finite however closed both are)."""
    return jax.nn.softplus(-pre_f) - jax.nn.softplus(-pre_i)

  def coefficients(self, px):
    pre_f, pre_i, pre_h = jnp.split(px, 3, axis=-1)
    # f / (f + i) = sigmoid(-d): with both gates closed, f + i underflows and the
    # quotient's gradient (1 / (f + i)^2) overflows; this form stays finite.
    d = self._log_gate_ratio(pre_f, pre_i)
    return jax.nn.sigmoid(-d), jax.nn.sigmoid(d) * g_activation(pre_h)

  def log_coefficients(self, px):
    pre_f, pre_i, pre_h = jnp.split(px, 3, axis=-1)
    d = self._log_gate_ratio(pre_f, pre_i)
    return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g_activation(pre_h)


class _Skip(nn.Module):
  """The LRU's D x: ``scale`` (H,) times x when D_in = H, else x @ ``kernel`` (D_in, H)."""

  features: int
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.shape[-1] == self.features:
      scale = self.param("scale", nn.initializers.normal(1.0), (self.features,),
                         self.param_dtype)
      return x.astype(jnp.float32) * scale
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (x.shape[-1], self.features), self.param_dtype)
    return recurrent_product(x, kernel, self.dtype)


class LRUCell(LinearRecurrenceCell):
  r"""Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
  "Resurrecting Recurrent Neural Networks for Long Sequences").

  A diagonal complex recurrence of N = ``state_size`` units and a real output
  of H = ``hidden_size``:

  .. math::
      \lambda &= \exp(-\exp(\nu) + i\,\exp(\theta)) \quad (N,), \qquad
      \gamma = \exp(\gamma_{\log}) \\
      s_t &= \lambda \odot s_{t-1} + \gamma \odot (B x_t) \\
      y_t &= \operatorname{Re}(C s_t) + D x_t

  with B (N, D_in) and C (H, N) complex. |lambda| = exp(-exp(nu)) < 1 for
  every nu, so the recurrence is stable by construction; its powers give the
  decay of the gradient with distance directly, ||ds_t/ds_{t-l}|| = |lambda|^l
  per unit. Initialisation as the paper's appendix: |lambda|^2 uniform on
  [r_min^2, r_max^2] (the eigenvalues uniform in area on the ring
  r_min <= |lambda| <= r_max), nu = log(-log(|lambda|^2) / 2); the phase
  exp(theta) uniform on [0, max_phase]; gamma_log = log sqrt(1 - |lambda|^2),
  trainable, the normalisation that keeps E|s_t|^2 at the input's scale for
  white-noise input; Re B, Im B ~ N(0, 1/(2 D_in)); Re C, Im C ~ N(0, 1/N);
  D ~ N(0, 1), a diagonal (H,) when D_in = H as in the paper, else a dense
  (D_in, H) kernel with LeCun-normal initialisation.

  With ``glu`` the output is the channel mixer of the paper's sequence layer
  (the S5 layer its experiments stack), applied to each step's y:

  .. math::
      u_t = \operatorname{GELU}(y_t), \qquad
      o_t = (W_v u_t + c_v) \odot \sigma(W_g u_t + c_g)

  with W_v, W_g (H, H); the layer's residual is the stack's
  ``connection='residual'``. GELU is flax's ``nn.gelu`` (the tanh form).
  Without ``glu`` a stack of LRU layers is linear in its inputs: the paper's
  model has all its nonlinearity in this mixer.

  Parameters (row-major, like the other cells): ``nu_log``, ``theta_log``,
  ``gamma_log`` (N,); ``input/kernel`` (D_in, 2N) = [Re B^T | Im B^T];
  ``output_kernel`` (2N, H) = [Re C^T ; Im C^T]; ``skip/scale`` (H,) or
  ``skip/kernel`` (D_in, H); with ``glu``, ``glu_mixer/kernel`` (H, 2H) =
  [W_v^T | W_g^T] and ``glu_mixer/bias`` (2H,) = [c_v | c_g], LeCun-normal
  and zero as flax's Dense.
  The carry is real, (B, 2N) = [Re s, Im s]; the output is y (o with ``glu``).
  """

  state_size: int = 0  # N; 0 = hidden_size
  # The ring and phase range of the appendix's init_lru_parameters defaults;
  # the paper's long-range runs use e.g. r_min = 0.9, r_max = 0.999.
  r_min: float = 0.0
  r_max: float = 1.0
  max_phase: float = 6.28
  glu: bool = False  # the sequence layer's GELU + GLU on the output

  num_gates = 2  # the real and imaginary halves of B x

  @property
  def num_states(self) -> int:
    return self.state_size or self.hidden_size

  def setup(self):
    if not 0.0 <= self.r_min <= self.r_max <= 1.0:
      raise ValueError(f"LRU ring needs 0 <= r_min <= r_max <= 1, got r_min={self.r_min}, "
                       f"r_max={self.r_max}")
    n = self.num_states

    def nu_init(key, shape, dtype=jnp.float32):
      u = jax.random.uniform(key, shape, dtype)
      modulus_sq = u * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2
      return jnp.log(-0.5 * jnp.log(modulus_sq))

    def theta_init(key, shape, dtype=jnp.float32):
      return jnp.log(self.max_phase * jax.random.uniform(key, shape, dtype))

    self.nu_log = self.param("nu_log", nu_init, (n,), self.param_dtype)
    self.theta_log = self.param("theta_log", theta_init, (n,), self.param_dtype)
    self.gamma_log = self.param(
        "gamma_log",
        lambda key, shape, dtype: 0.5 * jnp.log1p(-jnp.exp(-2.0 * jnp.exp(self.nu_log))),
        (n,), self.param_dtype)
    self.input = nn.Dense(
        2 * n, use_bias=False,
        kernel_init=lambda key, shape, dtype=jnp.float32: jax.random.normal(
            key, shape, dtype) / jnp.sqrt(2.0 * shape[0]),
        dtype=self.dtype, param_dtype=self.param_dtype, dot_general=float32_dot)
    self.output_kernel = self.param(
        "output_kernel",
        lambda key, shape, dtype=jnp.float32: jax.random.normal(key, shape, dtype) / jnp.sqrt(n),
        (2 * n, self.hidden_size), self.param_dtype)
    self.skip = _Skip(self.hidden_size, self.dtype, self.param_dtype)
    if self.glu:
      self.glu_mixer = nn.Dense(2 * self.hidden_size, dtype=self.dtype,
                                param_dtype=self.param_dtype, dot_general=float32_dot)

  def eigenvalues(self) -> Array:
    """lambda, (N,) complex64."""
    return jnp.exp(-jnp.exp(self.nu_log) + 1j * jnp.exp(self.theta_log))

  def project_inputs(self, x: Array) -> Array:
    """[Re B x, Im B x, D x]: (..., D_in) -> (..., 2N + H), float32."""
    dx = self.skip(x)
    return jnp.concatenate([self.input(x).astype(jnp.float32), dx], axis=-1)

  def coefficients(self, px):
    n = self.num_states
    bx = jax.lax.complex(px[..., :n], px[..., n:2 * n])
    return self.eigenvalues(), jnp.exp(self.gamma_log) * bx

  def state(self, carry) -> Array:
    n = self.num_states
    return jax.lax.complex(carry[..., :n], carry[..., n:])

  def carry_of(self, state: Array) -> Array:
    return jnp.concatenate([jnp.real(state), jnp.imag(state)], axis=-1)

  def readout(self, state: Array, px) -> Array:
    # Re(C s) = Re s Re C^T - Im s Im C^T
    parts = jnp.concatenate([jnp.real(state), -jnp.imag(state)], axis=-1)  # (..., 2N)
    y = recurrent_product(parts, self.output_kernel, self.dtype) + px[..., 2 * self.num_states:]
    if not self.glu:
      return y
    value, gate = jnp.split(self.glu_mixer(nn.gelu(y)).astype(jnp.float32), 2, axis=-1)
    return value * jax.nn.sigmoid(gate)

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    return jnp.zeros(tuple(input_shape[:-1]) + (2 * self.num_states,), jnp.float32)


CELLS: dict[str, type[_ProjectedCell]] = {
    "elman": ElmanCell,
    "rnn_tanh": functools.partial(ElmanCell, activation="tanh"),
    "rnn_relu": functools.partial(ElmanCell, activation="relu"),
    "lstm": LSTMCell,
    "gru": GRUCell,
    "mingru": MinGRUCell,
    "minlstm": MinLSTMCell,
    "lru": LRUCell,
}
"""Cells by name. Add a cell by writing one class and one entry here: a
``_FusedCell`` with ``num_gates`` and either ``step_from_product`` (and
``recurrent_input`` if the carry is not h), or its own ``step``; or a
``LinearRecurrenceCell`` with ``coefficients``."""


def cell_fields(name: str) -> list[str]:
  """The options (dataclass fields) of the registered cell ``name``."""
  factory = CELLS[name]
  return sorted(f for f in getattr(factory, "func", factory).__dataclass_fields__
                if f not in ("parent", "name"))


def get_cell(name: str, **kwargs) -> _ProjectedCell:
  """Builds the registered cell ``name``; an unknown name lists the valid ones."""
  try:
    factory = CELLS[name]
  except KeyError:
    raise ValueError(
        f"unknown cell {name!r}; valid cells: {', '.join(sorted(CELLS))}"
    ) from None
  try:
    return factory(**kwargs)
  except TypeError as e:  # an option this cell does not have
    raise ValueError(
        f"cell {name!r}: {e}; its options: {', '.join(cell_fields(name))}") from None
