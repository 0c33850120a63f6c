"""Cells against their equations, recomputed by hand in NumPy from the parameter tree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from rnn_research import cells

B, D, H = 3, 5, 4


@pytest.fixture(autouse=True)
def _highest_precision():
  with jax.default_matmul_precision("highest"):
    yield


def sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


NP_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "sigmoid": sigmoid,
    "identity": lambda a: a,
}


def random_carry(cell, seed=2):
  carry = cell.initialize_carry(jax.random.key(0), (B, D))
  leaves, treedef = jax.tree.flatten(carry)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])


def random_variables(cell, carry, x, seed=0):
  """The cell's variables with every leaf (biases included) drawn at random."""
  variables = cell.init(jax.random.key(seed), carry, x)
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  return jax.tree.unflatten(
      treedef, [0.7 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])


def setup_cell(cell, seed=0):
  x = jax.random.normal(jax.random.key(seed + 10), (B, D))
  carry = random_carry(cell, seed + 20)
  variables = random_variables(cell, carry, x, seed)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  return x, carry, variables, p


ALL_CELLS = {
    "elman_tanh": lambda **kw: cells.ElmanCell(H, activation="tanh", **kw),
    "elman_relu": lambda **kw: cells.ElmanCell(H, activation="relu", **kw),
    "elman_sigmoid": lambda **kw: cells.ElmanCell(H, activation="sigmoid", **kw),
    "elman_identity": lambda **kw: cells.ElmanCell(H, activation="identity", **kw),
    "lstm": lambda **kw: cells.LSTMCell(H, **kw),
    "gru": lambda **kw: cells.GRUCell(H, **kw),
    "gru_reset_after": lambda **kw: cells.GRUCell(H, reset_after=True, **kw),
}


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "identity"])
def test_elman_matches_equation(activation):
  cell = cells.ElmanCell(H, activation=activation)
  x, h, variables, p = setup_cell(cell)
  want = NP_ACTIVATIONS[activation](
      np.asarray(h) @ p["recurrent_kernel"] + np.asarray(x) @ p["input"]["kernel"]
      + p["input"]["bias"])
  new_h, y = cell.apply(variables, h, x)
  np.testing.assert_allclose(new_h, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_lstm_matches_equation():
  cell = cells.LSTMCell(H, forget_bias=1.0)
  x, (c, h), variables, p = setup_cell(cell)
  c, h, x = (np.asarray(a, np.float64) for a in (c, h, x))
  u, w, b = p["input"]["kernel"], p["recurrent_kernel"], p["input"]["bias"]
  block = lambda k: slice(k * H, (k + 1) * H)  # gate order i, f, c~, o
  i = sigmoid(h @ w[:, block(0)] + x @ u[:, block(0)] + b[block(0)])
  f = sigmoid(h @ w[:, block(1)] + x @ u[:, block(1)] + b[block(1)])
  c_tilde = np.tanh(h @ w[:, block(2)] + x @ u[:, block(2)] + b[block(2)])
  o = sigmoid(h @ w[:, block(3)] + x @ u[:, block(3)] + b[block(3)])
  want_c = f * c + i * c_tilde
  want_h = o * np.tanh(want_c)
  (new_c, new_h), y = cell.apply(variables, (c, h), x)
  np.testing.assert_allclose(new_c, want_c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_h, want_h, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, want_h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_matches_equation(reset_after):
  cell = cells.GRUCell(H, reset_after=reset_after)
  x, h, variables, p = setup_cell(cell)
  h, x = np.asarray(h, np.float64), np.asarray(x, np.float64)
  u, w, b = p["input"]["kernel"], p["recurrent_kernel"], p["input"]["bias"]
  block = lambda k: slice(k * H, (k + 1) * H)  # gate order r, u, h~
  r = sigmoid(h @ w[:, block(0)] + x @ u[:, block(0)] + b[block(0)])
  z = sigmoid(h @ w[:, block(1)] + x @ u[:, block(1)] + b[block(1)])
  if reset_after:
    assert "recurrent_bias" in p
    candidate = np.tanh(r * (h @ w[:, block(2)] + p["recurrent_bias"])
                        + x @ u[:, block(2)] + b[block(2)])
  else:
    assert "recurrent_bias" not in p
    candidate = np.tanh((r * h) @ w[:, block(2)] + x @ u[:, block(2)] + b[block(2)])
  want = (1.0 - z) * h + z * candidate
  new_h, y = cell.apply(variables, h, x)
  np.testing.assert_allclose(new_h, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL_CELLS))
def test_project_inputs_then_step_equals_call(name):
  cell = ALL_CELLS[name]()
  x, carry, variables, _ = setup_cell(cell)
  want = cell.apply(variables, carry, x)
  px = cell.apply(variables, x, method="project_inputs")
  assert px.shape == (B, cell.num_gates * H)
  got = cell.apply(variables, carry, px, method="step")
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_forget_bias_lands_in_b_f_only():
  cell = cells.LSTMCell(H, forget_bias=2.5)
  x = jnp.ones((B, D))
  variables = cell.init(jax.random.key(0), cell.initialize_carry(None, (B, D)), x)
  bias = np.asarray(variables["params"]["input"]["bias"])
  want = np.zeros(4 * H)
  want[H:2 * H] = 2.5  # (i, f, c~, o): the second block is f
  np.testing.assert_array_equal(bias, want)


def test_get_cell_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as err:
    cells.get_cell("nope", hidden_size=H)
  msg = str(err.value)
  assert "nope" in msg
  for name in cells.CELLS:
    assert name in msg


def test_get_cell_builds_registered_cells():
  assert cells.get_cell("rnn_relu", hidden_size=H).activation == "relu"
  assert cells.get_cell("rnn_tanh", hidden_size=H).activation == "tanh"
  assert isinstance(cells.get_cell("lstm", hidden_size=H), cells.LSTMCell)
  gru = cells.get_cell("gru", hidden_size=H, reset_after=True)
  assert isinstance(gru, cells.GRUCell) and gru.reset_after


@pytest.mark.parametrize("name", ["elman_tanh", "lstm", "gru", "gru_reset_after"])
def test_cell_inside_flax_nn_rnn_equals_python_loop(name):
  cell = ALL_CELLS[name]()
  xs = jax.random.normal(jax.random.key(3), (B, 5, D))  # (B, T, D)
  rnn = nn.RNN(cell, return_carry=True)
  variables = rnn.init(jax.random.key(0), xs)
  carry, outputs = rnn.apply(variables, xs)
  assert outputs.shape == (B, 5, H)
  cell_vars = {"params": variables["params"]["cell"]}
  want_carry = cell.initialize_carry(None, (B, D))
  for t in range(5):
    want_carry, y = cell.apply(cell_vars, want_carry, xs[:, t])
    np.testing.assert_allclose(outputs[:, t], y, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(want_carry)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, num_gates, has_recurrent_bias", [
    ("elman_tanh", 1, False), ("lstm", 4, False), ("gru", 3, False),
    ("gru_reset_after", 3, True)])
def test_parameter_tree_shapes(name, num_gates, has_recurrent_bias):
  cell = ALL_CELLS[name]()
  variables = cell.init(jax.random.key(0), cell.initialize_carry(None, (B, D)),
                        jnp.ones((B, D)))
  want = {"input": {"kernel": (D, num_gates * H), "bias": (num_gates * H,)},
          "recurrent_kernel": (H, num_gates * H)}
  if has_recurrent_bias:
    want["recurrent_bias"] = (H,)
  assert jax.tree.map(lambda a: a.shape, variables) == {"params": want}
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))


def test_recurrent_kernel_is_orthogonal_per_gate():
  cell = cells.LSTMCell(H)
  variables = cell.init(jax.random.key(0), cell.initialize_carry(None, (B, D)),
                        jnp.ones((B, D)))
  w = np.asarray(variables["params"]["recurrent_kernel"])  # (H, 4H)
  for k in range(4):
    block = w[:, k * H:(k + 1) * H]
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


@pytest.mark.parametrize("name", ["elman_tanh", "lstm", "gru", "gru_reset_after"])
def test_bfloat16_dtype_stays_close_to_float32_with_float32_carry(name):
  cell32 = ALL_CELLS[name]()
  cell16 = ALL_CELLS[name](dtype=jnp.bfloat16)
  xs = jax.random.normal(jax.random.key(3), (B, 6, D))
  carry = cell32.initialize_carry(None, (B, D))
  variables = cell32.init(jax.random.key(0), carry, xs[:, 0])
  carry32 = carry16 = carry
  for t in range(6):
    carry32, y32 = cell32.apply(variables, carry32, xs[:, t])
    carry16, y16 = cell16.apply(variables, carry16, xs[:, t])
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves((carry16, y16)))
  # Observed largest differences: elman_tanh 5.7e-3, gru 1.7e-3, gru_reset_after
  # 1.2e-3, lstm 1.1e-3; bfloat16 keeps 8 bits, 2**-8 = 3.9e-3 relative.
  assert np.max(np.abs(np.asarray(y16) - np.asarray(y32))) < 1.5e-2
  assert not np.array_equal(y16, y32)  # the products did run in bfloat16


def test_a_cell_with_its_own_step_is_never_run_without_it():
  """Recurrent's fast path calls step_from_product; a custom step must win."""

  class Peephole(cells.LSTMCell):  # a subclass that rewrites step

    def step(self, carry, px):
      return super().step(carry, px)

  assert cells.LSTMCell(4).single_recurrent_product
  assert not Peephole(4).single_recurrent_product
  assert cells.GRUCell(4, reset_after=True).single_recurrent_product
  assert not cells.GRUCell(4).single_recurrent_product


# --- linear recurrences: minGRU, minLSTM, LRU ----------------------------------


def np_g(a):
  return np.where(a >= 0, a + 0.5, sigmoid(a))


def test_g_and_log_g_are_the_papers_activation():
  a = np.linspace(-30.0, 30.0, 121)
  np.testing.assert_allclose(cells.g_activation(jnp.asarray(a)), np_g(a), rtol=1e-6)
  np.testing.assert_allclose(cells.log_g_activation(jnp.asarray(a)), np.log(np_g(a)),
                             rtol=1e-5, atol=1e-6)


def test_mingru_matches_equation():
  cell = cells.MinGRUCell(H)
  x, h, variables, p = setup_cell(cell)
  new_h, y = cell.apply(variables, h, x)
  pre = np.asarray(x, np.float64) @ p["input"]["kernel"] + p["input"]["bias"]
  z = sigmoid(pre[:, :H])
  want = (1.0 - z) * np.asarray(h) + z * np_g(pre[:, H:])
  np.testing.assert_allclose(new_h, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_minlstm_matches_equation():
  cell = cells.MinLSTMCell(H)
  x, h, variables, p = setup_cell(cell)
  new_h, y = cell.apply(variables, h, x)
  pre = np.asarray(x, np.float64) @ p["input"]["kernel"] + p["input"]["bias"]
  f, i = sigmoid(pre[:, :H]), sigmoid(pre[:, H:2 * H])
  want = f / (f + i) * np.asarray(h) + i / (f + i) * np_g(pre[:, 2 * H:])
  np.testing.assert_allclose(new_h, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("log_space", [False, True])
def test_minlstm_stays_finite_with_both_gates_closed(log_space):
  """f / (f + i) with f, i = sigmoid(-60) or sigmoid(-120): the quotient's
  gradient overflows, and at -120 f + i is 0 in float32 (0 / 0)."""
  cell = cells.MinLSTMCell(H, log_space=log_space)
  method = cell.log_coefficients if log_space else cell.coefficients
  variables = cell.init(jax.random.key(1), cell.initialize_carry(None, (B, D)),
                        jnp.ones((B, D)))
  closed = jnp.array([-60.0, -120.0, -120.0, 0.0])  # (H,)
  offset = jnp.array([0.0, 0.0, 3.0, 0.0])  # pre_i - pre_f
  px = jnp.concatenate([jnp.tile(closed, (B, 1)), jnp.tile(closed + offset, (B, 1)),
                        jnp.ones((B, H))], axis=-1)

  def total(px):
    a, b = cell.apply(variables, px, method=method)
    return jnp.sum(a) + jnp.sum(b)

  a, b = cell.apply(variables, px, method=method)
  if log_space:
    a, b = jnp.exp(a), jnp.exp(b)
  f_share = 1.0 / (1.0 + np.exp(np.asarray(offset)))  # f / (f + i) when both gates are closed
  np.testing.assert_allclose(a[0], f_share, rtol=1e-5)
  np.testing.assert_allclose(b[0], (1.0 - f_share) * 1.5, rtol=1e-5)  # g(1) = 1.5
  assert np.all(np.isfinite(np.asarray(jax.grad(total)(px))))


@pytest.mark.parametrize("glu", [False, True], ids=["y", "glu"])
@pytest.mark.parametrize("d_in", [H, D])  # diagonal D (the paper's) or a dense one
def test_lru_matches_equation(d_in, glu):
  cell = cells.LRUCell(H, state_size=3, glu=glu)
  x = jax.random.normal(jax.random.key(10), (B, d_in))
  carry = random_carry(cell, 20)
  variables = random_variables(cell, carry, x)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  new_carry, y = cell.apply(variables, carry, x)
  n = 3
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  b_mat = (p["input"]["kernel"][:, :n] + 1j * p["input"]["kernel"][:, n:]).T  # (N, D_in)
  c_mat = (p["output_kernel"][:n] + 1j * p["output_kernel"][n:]).T  # (H, N)
  s = np.asarray(carry[:, :n]) + 1j * np.asarray(carry[:, n:])
  xs = np.asarray(x, np.float64)
  s = lam * s + np.exp(p["gamma_log"]) * (xs @ b_mat.T)
  skip = p["skip"]["scale"] * xs if d_in == H else xs @ p["skip"]["kernel"]
  want_y = (s @ c_mat.T).real + skip
  if glu:  # GELU's tanh form, then value * sigmoid(gate)
    u = 0.5 * want_y * (1 + np.tanh(np.sqrt(2 / np.pi) * (want_y + 0.044715 * want_y ** 3)))
    mixed = u @ p["glu_mixer"]["kernel"] + p["glu_mixer"]["bias"]
    want_y = mixed[:, :H] * sigmoid(mixed[:, H:])
  np.testing.assert_allclose(new_carry, np.concatenate([s.real, s.imag], -1),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)


def test_lru_init_is_uniform_on_the_ring_with_gamma_normalisation():
  r_min, r_max, max_phase, n = 0.4, 0.9, 3.0, 4000
  cell = cells.LRUCell(2, state_size=n, r_min=r_min, r_max=r_max, max_phase=max_phase)
  params = cell.init(jax.random.key(0), cell.initialize_carry(None, (1, 2)),
                     jnp.ones((1, 2)))["params"]
  lam = np.asarray(cell.apply({"params": params}, method=cell.eigenvalues))
  modulus = np.abs(lam)
  assert r_min <= modulus.min() and modulus.max() <= r_max
  # Uniform in area: |lambda|^2 uniform on [r_min^2, r_max^2] (not |lambda| uniform).
  sq = (modulus ** 2 - r_min ** 2) / (r_max ** 2 - r_min ** 2)
  assert np.histogram(sq, bins=4, range=(0, 1))[0].min() > 0.9 * n / 4
  assert abs(np.mean(modulus) - np.mean(np.sqrt(np.linspace(r_min**2, r_max**2, n)))) < 0.01
  phase = np.exp(np.asarray(params["theta_log"]))
  assert 0 <= phase.min() and phase.max() <= max_phase and abs(phase.mean() - 1.5) < 0.05
  np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1 - modulus ** 2),
                             rtol=1e-5)


def test_lru_refuses_a_ring_outside_the_unit_disc():
  cell = cells.LRUCell(2, r_min=0.5, r_max=1.2)
  with pytest.raises(ValueError, match="r_min <= r_max <= 1"):
    cell.init(jax.random.key(0), cell.initialize_carry(None, (1, 2)), jnp.ones((1, 2)))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_log_coefficients_are_the_logs_of_the_coefficients(name):
  cell = cells.get_cell(name, hidden_size=H)
  px = 4.0 * jax.random.normal(jax.random.key(0), (B, cell.num_gates * H))
  variables = cell.init(jax.random.key(1), cell.initialize_carry(None, (B, D)),
                        jnp.ones((B, D)))
  a, b = cell.apply(variables, px, method=cell.coefficients)
  log_a, log_b = cell.apply(variables, px, method=cell.log_coefficients)
  np.testing.assert_allclose(np.exp(log_a), a, rtol=1e-5)
  np.testing.assert_allclose(np.exp(log_b), b, rtol=1e-5)


def _init_params(cell):
  return cell.init(jax.random.key(0), cell.initialize_carry(None, (B, D)),
                   jnp.ones((B, D)))["params"]


def test_chrono_lstm_draws_b_f_from_log_uniform_and_sets_b_i_to_minus_b_f():
  t_max, hidden = 50.0, 256
  params = _init_params(cells.LSTMCell(hidden, chrono_t_max=t_max))
  bias = np.asarray(params["input"]["bias"])
  b_i, b_f, b_c, b_o = np.split(bias, 4)
  assert np.all(b_f >= 0) and np.all(b_f <= np.log(t_max - 1) + 1e-6)
  # T_j = 1 + exp(b_f) is uniform on [2, T_max]: its mean and spread say so.
  t = 1.0 + np.exp(b_f)
  assert abs(t.mean() - (2 + t_max) / 2) < 4 and t.min() < 6 and t.max() > t_max - 4
  np.testing.assert_array_equal(b_i, -b_f)
  np.testing.assert_array_equal(b_c, 0.0)
  np.testing.assert_array_equal(b_o, 0.0)


def test_chrono_gru_sets_only_the_update_gate_bias_to_minus_log_uniform():
  t_max, hidden = 20.0, 256
  params = _init_params(cells.GRUCell(hidden, chrono_t_max=t_max))
  b_r, b_u, b_h = np.split(np.asarray(params["input"]["bias"]), 3)
  assert np.all(b_u <= 0) and np.all(b_u >= -np.log(t_max - 1) - 1e-6)
  # u_j = sigmoid(b_u) = 1 / T_j with T_j uniform on [2, T_max].
  t = 1.0 / sigmoid(b_u)
  assert abs(t.mean() - (2 + t_max) / 2) < 1.5 and np.unique(b_u).size == hidden
  np.testing.assert_array_equal(b_r, 0.0)
  np.testing.assert_array_equal(b_h, 0.0)


@pytest.mark.parametrize("t_max", [1.0, 2.0, -5.0])
def test_chrono_needs_t_max_above_two(t_max):
  with pytest.raises(ValueError, match="chrono_t_max must be > 2"):
    cells.get_cell("lstm", hidden_size=H, chrono_t_max=t_max)


def test_irnn_from_config_options_has_identity_w_h_and_zero_biases():
  # The path a config's model.cell_options takes (strings only).
  from rnn_research import models  # pylint: disable=g-import-not-at-top
  cell = models.cell_factory("rnn_relu", H, {"recurrent_kernel_init": "identity"})()
  params = _init_params(cell)
  assert cell.activation == "relu"
  np.testing.assert_array_equal(params["recurrent_kernel"], np.eye(H))
  np.testing.assert_array_equal(params["input"]["bias"], 0.0)


@pytest.mark.parametrize("name, num_gates", [("gru", 3), ("lstm", 4), ("rnn_tanh", 1)])
def test_named_recurrent_inits_apply_per_gate(name, num_gates):
  for init, check in (("identity", lambda b: np.testing.assert_array_equal(b, np.eye(H))),
                      ("orthogonal", lambda b: np.testing.assert_allclose(
                          b.T @ b, np.eye(H), atol=1e-5))):
    w = np.asarray(_init_params(cells.get_cell(name, hidden_size=H,
                                               recurrent_kernel_init=init))["recurrent_kernel"])
    for k in range(num_gates):
      check(w[:, k * H:(k + 1) * H])


def test_unknown_recurrent_init_name_is_refused_at_construction():
  with pytest.raises(ValueError, match="unknown recurrent_kernel_init 'eye'; valid: orthogonal"):
    cells.get_cell("gru", hidden_size=H, recurrent_kernel_init="eye")
