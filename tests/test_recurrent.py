"""Scanned layers against a plain Python loop of the cell; stacks, dropout, probes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_research import cells
from rnn_research import recurrent
from rnn_research.recurrent import Bidirectional, Recurrent, StackedRNN

B, T, D, H = 3, 6, 3, 4
LENGTHS = np.array([6, 3, 0])  # full, partial and empty sequences

CELLS = {
    "elman_tanh": functools.partial(cells.ElmanCell, H, activation="tanh"),
    "lstm": functools.partial(cells.LSTMCell, H),
    "gru": functools.partial(cells.GRUCell, H),
    "gru_reset_after": functools.partial(cells.GRUCell, H, reset_after=True),
}


@pytest.fixture(autouse=True)
def _highest_precision():
  with jax.default_matmul_precision("highest"):
    yield


def inputs(seed=0, shape=(B, T, D)):
  return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def random_carry(cell, seed=7):
  carry = cell.initialize_carry(None, (B, D))
  leaves, treedef = jax.tree.flatten(carry)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      treedef, [np.asarray(jax.random.normal(k, l.shape)) for k, l in zip(keys, leaves)])


def random_variables(module, *args, seed=0, scale=0.5, **kwargs):
  """Variables of ``module.init(*args)`` with every leaf (biases too) drawn at random.

  Shapes come from tracing ``init`` (no eager run, no compile): on a 2-core
  machine that is most of what these tests would otherwise spend.
  """
  shapes = jax.eval_shape(lambda key: module.init(key, *args, **kwargs), jax.random.key(0))
  leaves, treedef = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      treedef, [scale * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])


def loop_reference(cell, cell_params, xs, lengths, carry):
  """A Python loop of ``cell(carry, x)``: the carry freezes past each length."""
  step = jax.jit(lambda c, x: cell.apply({"params": cell_params}, c, x))
  outputs = []
  for t in range(xs.shape[1]):
    new_carry, y = step(carry, xs[:, t])
    live = (t < lengths)[:, None]  # (B, 1)
    carry = jax.tree.map(lambda n, o: np.where(live, n, o), new_carry, carry)
    outputs.append(np.where(live, y, 0.0))
  return np.stack(outputs, axis=1), carry  # (B, T, H)


def np_reverse_within_lengths(x, lengths):
  out = np.array(x)
  for b, n in enumerate(lengths):
    out[b, :n] = x[b, :n][::-1]
  return out


def assert_trees_close(a, b, **kw):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(u, v, **{"rtol": 1e-5, "atol": 1e-6, **kw})


@pytest.mark.parametrize("name", sorted(CELLS))
def test_recurrent_with_lengths_equals_python_loop(name):
  cell = CELLS[name]()
  layer = Recurrent(cell)
  xs, carry0 = inputs(), random_carry(cell)
  variables = random_variables(layer, xs, carry0, LENGTHS)
  outputs, carry = layer.apply(variables, xs, carry0, LENGTHS)
  want_outputs, want_carry = loop_reference(
      cell, variables["params"]["cell"], xs, LENGTHS, carry0)
  np.testing.assert_allclose(outputs, want_outputs, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(outputs)[1, 3:] == 0) and np.all(np.asarray(outputs)[2] == 0)
  assert_trees_close(carry, want_carry)
  assert_trees_close(jax.tree.map(lambda c: c[2], carry),  # length 0: never updated
                     jax.tree.map(lambda c: c[2], carry0))


def test_recurrent_without_lengths_starts_from_zeros():
  cell = CELLS["lstm"]()
  layer = Recurrent(cell)
  xs = inputs()
  variables = random_variables(layer, xs)
  outputs, carry = layer.apply(variables, xs)
  want_outputs, want_carry = loop_reference(
      cell, variables["params"]["cell"], xs, np.full(B, T),
      cell.initialize_carry(None, (B, D)))
  np.testing.assert_allclose(outputs, want_outputs, rtol=1e-5, atol=1e-6)
  assert_trees_close(carry, want_carry)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_reverse_with_lengths_equals_loop_over_reversed_sequences(name):
  cell = CELLS[name]()
  layer = Recurrent(cell, reverse=True)
  xs, carry0 = inputs(), random_carry(cell)
  variables = random_variables(layer, xs, carry0, LENGTHS)
  outputs, carry = layer.apply(variables, xs, carry0, LENGTHS)
  rev_outputs, want_carry = loop_reference(
      cell, variables["params"]["cell"], np_reverse_within_lengths(xs, LENGTHS),
      LENGTHS, carry0)
  np.testing.assert_allclose(outputs, np_reverse_within_lengths(rev_outputs, LENGTHS),
                             rtol=1e-5, atol=1e-6)
  assert_trees_close(carry, want_carry)


@pytest.mark.parametrize("name", ["elman_tanh", "lstm"])
def test_bidirectional_halves_are_forward_layers_on_each_direction(name):
  bi = Bidirectional(Recurrent(CELLS[name]()), Recurrent(CELLS[name](), reverse=True))
  xs = inputs()
  variables = random_variables(bi, xs, lengths=LENGTHS)
  outputs, (carry_f, carry_b) = bi.apply(variables, xs, lengths=LENGTHS)
  assert outputs.shape == (B, T, 2 * H)
  forward = Recurrent(CELLS[name]())
  params = variables["params"]
  want_f, want_carry_f = forward.apply(
      {"params": params["forward_layer"]}, xs, lengths=LENGTHS)
  rev_b, want_carry_b = forward.apply(  # backward weights, run forward on reversed input
      {"params": params["backward_layer"]}, np_reverse_within_lengths(xs, LENGTHS),
      lengths=LENGTHS)
  want_b = np_reverse_within_lengths(np.asarray(rev_b), LENGTHS)
  np.testing.assert_allclose(outputs[..., :H], want_f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(outputs[..., H:], want_b, rtol=1e-5, atol=1e-6)
  assert_trees_close(carry_f, want_carry_f)
  assert_trees_close(carry_b, want_carry_b)
  summed, _ = bi.clone(merge="sum").apply(variables, xs, lengths=LENGTHS)
  np.testing.assert_allclose(summed, want_f + want_b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_unroll_4_equals_unroll_1(reverse):
  cell = CELLS["lstm"]()
  xs = inputs()
  variables = random_variables(Recurrent(cell, reverse=reverse), xs, lengths=LENGTHS)
  out1, carry1 = Recurrent(cell, reverse=reverse, unroll=1).apply(
      variables, xs, lengths=LENGTHS)
  out4, carry4 = Recurrent(cell, reverse=reverse, unroll=4).apply(  # T=6: ragged
      variables, xs, lengths=LENGTHS)
  np.testing.assert_allclose(out4, out1, rtol=1e-6, atol=1e-7)
  assert_trees_close(carry4, carry1, rtol=1e-6, atol=1e-7)


def carry_shapes(name, batch=B):
  if name == "lru":  # (Re s, Im s) of its complex state, N = H
    return (batch, 2 * H)
  return ((batch, H), (batch, H)) if name == "lstm" else (batch, H)


LAYER_TYPES = ["recurrent", "bidirectional_concat", "bidirectional_sum"] + [
    f"stacked_{c}_{v}" for c in ("none", "residual", "dense", "highway")
    for v in ("plain", "variational")]


def abstract_run(module, xs, lengths=None, **apply_kwargs):
  """Output and carry shapes of ``init`` then ``apply``, traced without compiling.

  The shape matrix below has 60 cases; compiling each would take minutes on
  a 2-core machine. Tracing catches every shape, dtype and structure error;
  the numerical tests above execute each layer type for real.
  """
  variables = jax.eval_shape(
      lambda key: module.init(key, xs, lengths=lengths), jax.random.key(0))
  return jax.eval_shape(
      lambda v, key: module.apply(v, xs, lengths=lengths, rngs={"dropout": key},
                                  **apply_kwargs),
      variables, jax.random.key(1))


@pytest.mark.parametrize("layer_type", LAYER_TYPES)
@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_every_cell_runs_in_every_layer_type(name, layer_type):
  make_cell = functools.partial(cells.get_cell, name, hidden_size=H)
  apply_kwargs = {}
  if layer_type == "recurrent":
    module, want_out, want_carry = Recurrent(make_cell()), (B, T, H), carry_shapes(name)
  elif layer_type.startswith("bidirectional"):
    merge = layer_type.split("_")[1]
    module = Bidirectional(Recurrent(make_cell()), Recurrent(make_cell(), reverse=True),
                           merge=merge)
    want_out = (B, T, 2 * H if merge == "concat" else H)
    want_carry = (carry_shapes(name),) * 2
  else:
    _, connection, dropout = layer_type.split("_")
    module = StackedRNN(make_cell, num_layers=3, dropout_rate=0.3, connection=connection,
                        variational=dropout == "variational")
    want_out, want_carry = (B, T, H), (carry_shapes(name),) * 3
    apply_kwargs = {"deterministic": False}
  outputs, carry = abstract_run(module, jnp.asarray(inputs()), LENGTHS, **apply_kwargs)
  assert outputs.shape == want_out and outputs.dtype == jnp.float32
  assert jax.tree.map(lambda a: a.shape, carry) == want_carry


@pytest.mark.parametrize("connection", ["none", "residual", "dense", "highway"])
def test_bidirectional_stack_runs_with_each_connection(connection):
  module = StackedRNN(CELLS["gru"], num_layers=3, bidirectional=True, connection=connection)
  outputs, carries = abstract_run(module, jnp.asarray(inputs()))
  assert outputs.shape == (B, T, 2 * H)
  assert jax.tree.map(lambda a: a.shape, carries) == (((B, H), (B, H)),) * 3


def test_dense_connection_feeds_each_layer_all_lower_outputs():
  module = StackedRNN(CELLS["elman_tanh"], num_layers=3, connection="dense")
  variables = random_variables(module, jnp.asarray(inputs()))
  kernels = [variables["params"][f"layer_{i}"]["cell"]["input"]["kernel"].shape
             for i in range(3)]
  assert kernels == [(D, H), (D + H, H), (D + 2 * H, H)]


@pytest.mark.parametrize("connection", ["residual", "highway"])
def test_residual_and_highway_combine_layer_input_and_output(connection):
  make_cell = CELLS["elman_tanh"]
  xs = inputs(shape=(B, T, H))  # input size = hidden size: every layer connects
  module = StackedRNN(make_cell, num_layers=2, connection=connection)
  variables = random_variables(module, xs)
  outputs, _ = module.apply(variables, xs)
  params = variables["params"]
  x = xs
  for i in range(2):
    f_x, _ = Recurrent(make_cell()).apply({"params": params[f"layer_{i}"]}, x)
    if connection == "residual":
      x = x + f_x
    else:
      gate_params = params[f"highway_{i}"]
      gate = jax.nn.sigmoid(x @ gate_params["kernel"] + gate_params["bias"])
      x = gate * f_x + (1.0 - gate) * x
  np.testing.assert_allclose(outputs, x, rtol=1e-5, atol=1e-6)


def test_unknown_connection_raises():
  module = StackedRNN(CELLS["gru"], num_layers=2, connection="skip")
  with pytest.raises(ValueError, match="skip.*none, residual, dense, highway"):
    module.init(jax.random.key(0), jnp.asarray(inputs()))


def test_unknown_merge_raises():
  bi = Bidirectional(Recurrent(CELLS["gru"]()), Recurrent(CELLS["gru"](), reverse=True),
                     merge="max")
  with pytest.raises(ValueError, match="max.*concat, sum"):
    bi.init(jax.random.key(0), jnp.asarray(inputs()))


def test_dropout_between_layers_only_when_not_deterministic():
  xs = jnp.asarray(inputs())
  stack = StackedRNN(CELLS["lstm"], num_layers=2, dropout_rate=0.5)
  variables = random_variables(stack, xs)
  no_dropout, _ = stack.clone(dropout_rate=0.0).apply(variables, xs)
  evaluated, _ = stack.apply(variables, xs, deterministic=True)
  trained, _ = stack.apply(variables, xs, deterministic=False,
                           rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(evaluated, no_dropout)
  assert np.max(np.abs(np.asarray(trained) - np.asarray(evaluated))) > 1e-3
  # one layer: nothing sits between layers, and the top is left to the model
  single = StackedRNN(CELLS["lstm"], num_layers=1, dropout_rate=0.5)
  variables = random_variables(single, xs)
  trained, _ = single.apply(variables, xs, deterministic=False,
                            rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(trained, single.apply(variables, xs)[0])


@pytest.mark.parametrize("variational", [False, True])
def test_variational_dropout_uses_one_mask_across_time(variational):
  hidden, rate = 8, 0.5
  # identity Elman with U = I, W = 0 as the top layer: it outputs what it reads,
  # i.e. the dropped-out output of the bottom layer.
  make_cell = functools.partial(cells.ElmanCell, hidden, activation="identity")
  stack = StackedRNN(make_cell, num_layers=2, dropout_rate=rate, variational=variational)
  xs = jnp.asarray(inputs(shape=(2, T, hidden)))
  variables = random_variables(stack, xs)
  params = dict(variables["params"])
  params["layer_1"] = {"cell": {
      "input": {"kernel": jnp.eye(hidden), "bias": jnp.zeros(hidden)},
      "recurrent_kernel": jnp.zeros((hidden, hidden))}}
  outputs, _, (bottom, _) = stack.apply(
      {"params": params}, xs, deterministic=False, return_hidden=True,
      rngs={"dropout": jax.random.key(4)})
  outputs, bottom = np.asarray(outputs), np.asarray(bottom)
  assert np.all(bottom != 0)
  dropped = outputs == 0  # (B, T, H)
  assert 0 < dropped.mean() < 1
  kept = ~dropped
  np.testing.assert_allclose(outputs[kept], bottom[kept] / (1 - rate), rtol=1e-5)
  same_mask_every_step = np.all(dropped == dropped[:, :1])
  assert same_mask_every_step == variational


def test_carry_perturbation_gradient_is_g_times_power_of_w():
  """Identity Elman: h_t = h_{t-1} @ W + x_t @ U + b, so dh_i/dh_j = W^(i-j) and
  the gradient of <g, h_i> with respect to a perturbation of h_j is
  g @ (W^T)^(i-j) for j <= i, and zero for j > i (no effect on the past)."""
  cell = cells.ElmanCell(H, activation="identity")
  layer = Recurrent(cell)
  xs = jnp.asarray(inputs())
  variables = random_variables(layer, xs)
  w = np.asarray(variables["params"]["cell"]["recurrent_kernel"], np.float64)
  assert not np.allclose(w, w.T)  # otherwise the orientation would go untested
  g = np.asarray(jax.random.normal(jax.random.key(5), (B, H)))

  @jax.jit
  def grad_at(i):
    def loss(perturbation):
      outputs, _ = layer.apply(variables, xs, carry_perturbation=perturbation)
      return jnp.sum(g * outputs[:, i])
    return jax.grad(loss)(jnp.zeros((B, T, H)))

  for i in range(T):
    grad = np.asarray(grad_at(i))
    for j in range(T):
      want = g @ np.linalg.matrix_power(w.T, i - j) if j <= i else np.zeros((B, H))
      np.testing.assert_allclose(grad[:, j], want, rtol=1e-4, atol=1e-5,
                                 err_msg=f"i={i} j={j}")


def test_carry_perturbation_reaches_lstm_hidden_state_at_distance_zero():
  # y_i = h_i, so dJ/dh_i = g; the cell state c_i only acts on later steps.
  layer = Recurrent(CELLS["lstm"]())
  xs = jnp.asarray(inputs())
  variables = random_variables(layer, xs)
  g = jax.random.normal(jax.random.key(5), (B, H))
  i = T - 1

  def loss(perturbation):
    outputs, _ = layer.apply(variables, xs, carry_perturbation=perturbation)
    return jnp.sum(g * outputs[:, i])

  grad_c, grad_h = jax.grad(loss)((jnp.zeros((B, T, H)), jnp.zeros((B, T, H))))
  np.testing.assert_allclose(grad_h[:, i], g, rtol=1e-6)
  np.testing.assert_array_equal(grad_c[:, i], 0.0)
  assert np.all(np.abs(np.asarray(grad_c[:, :i])).sum(-1) > 0)  # earlier steps feel it


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_weight_gradient_after_the_loop_equals_per_step_gradient(name, reverse):
  """hoist_weight_grad changes where W's gradient is summed, not what it is."""
  cell = CELLS[name]()
  xs = inputs()
  carry0 = random_carry(cell)
  variables = random_variables(Recurrent(cell), xs, carry0)
  weights = jnp.asarray(inputs(seed=3, shape=(B, T, H)))

  def loss_and_grads(hoist):
    layer = Recurrent(cell, reverse=reverse, unroll=2, hoist_weight_grad=hoist)

    def loss(variables, xs, carry0):
      outputs, carry = layer.apply(variables, xs, carry0)
      return jnp.sum(weights * jnp.sin(outputs)) + sum(
          jnp.sum(c ** 2) for c in jax.tree.leaves(carry))

    fn = jax.value_and_grad(loss, argnums=(0, 1, 2))
    return jax.jit(fn)(variables, xs, carry0), jax.make_jaxpr(fn)(variables, xs, carry0)

  (want_loss, want_grads), plain = loss_and_grads(False)
  (loss, grads), hoisted = loss_and_grads(True)
  # The two really are different programs where the cell has one product.
  assert (str(hoisted) != str(plain)) == cell.single_recurrent_product
  np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
  assert_trees_close(grads, want_grads, rtol=1e-5, atol=1e-6)


def test_hoisted_weight_gradient_in_bfloat16_is_close_to_per_step():
  cell = cells.LSTMCell(H, dtype=jnp.bfloat16)
  xs = inputs()
  variables = random_variables(Recurrent(cell), xs)
  grads = {}
  for hoist in (False, True):
    layer = Recurrent(cell, hoist_weight_grad=hoist)
    grads[hoist] = jax.grad(lambda v: jnp.sum(jnp.sin(layer.apply(v, xs)[0])))(variables)
  kernel = lambda g: g["params"]["cell"]["recurrent_kernel"]
  # Summed in another order from bfloat16 products: close, not equal (largest
  # difference observed 2.2e-3, on entries up to 0.71).
  np.testing.assert_allclose(kernel(grads[True]), kernel(grads[False]), rtol=0.01, atol=5e-3)
  assert float(jnp.max(jnp.abs(kernel(grads[True])))) > 0.05


# --- linear recurrences: the associative scan against the step ------------------

LINEAR_CELLS = {
    "mingru": functools.partial(cells.MinGRUCell, H),
    "mingru_log": functools.partial(cells.MinGRUCell, H, log_space=True),
    "minlstm": functools.partial(cells.MinLSTMCell, H),
    "minlstm_log": functools.partial(cells.MinLSTMCell, H, log_space=True),
    "lru": functools.partial(cells.LRUCell, H, state_size=3),
    "lru_glu": functools.partial(cells.LRUCell, H, state_size=3, glu=True),
}


@pytest.fixture(params=[2, None], ids=["chunk2", "chunk_default"])
def scan_chunk(request, monkeypatch):
  """Chunks of 2 steps put T = 6 across chunk boundaries, padding (6 -> 3
  chunks -> 2) and two levels of ``chunked_scan``; the default is one chunk."""
  if request.param:
    monkeypatch.setattr(recurrent, "SCAN_CHUNK", request.param)
  return request.param


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(LINEAR_CELLS))
def test_parallel_scan_equals_python_loop_of_the_step(name, reverse, scan_chunk):
  cell = LINEAR_CELLS[name]()
  assert cell.linear_recurrence
  layer = Recurrent(cell, reverse=reverse)
  xs = inputs()
  carry = random_carry(cell)
  variables = random_variables(layer, xs, carry, LENGTHS)
  got, got_carry = jax.jit(layer.apply)(variables, xs, carry, LENGTHS)
  loop_xs = np_reverse_within_lengths(xs, LENGTHS) if reverse else xs
  want, want_carry = loop_reference(cell, variables["params"]["cell"], loop_xs, LENGTHS, carry)
  if reverse:
    want = np_reverse_within_lengths(want, LENGTHS)
  assert_trees_close(got, want, atol=1e-5)
  assert_trees_close(got_carry, want_carry, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LINEAR_CELLS))
def test_parallel_gradients_equal_the_sequential_scans(name, scan_chunk, reverse=True):
  """Gradients of outputs and final carry with respect to parameters, inputs,
  initial carry and carry perturbations: associative scan vs ``nn.scan`` of the
  step, reversed within lengths (reversal and masking are both on the path)."""
  cell = LINEAR_CELLS[name]()
  xs = inputs()
  carry = random_carry(cell)
  perturbation = jax.tree.map(lambda c: np.zeros((B, T) + c.shape[1:], np.float32), carry)
  variables = random_variables(Recurrent(cell), xs, carry, LENGTHS)
  w_out = inputs(5, (B, T, H))
  w_carry = random_carry(cell, seed=9)

  def loss(parallel, params, xs, carry, perturbation, use_perturbation):
    layer = Recurrent(cell, reverse=reverse, parallel=parallel)
    out, final = layer.apply({"params": params}, xs, carry, LENGTHS,
                             perturbation if use_perturbation else None)
    return jnp.sum(out * w_out) + jnp.sum(final * w_carry)

  for use_perturbation in (False, True):  # log space only runs without one
    grads = [jax.jit(jax.grad(functools.partial(loss, parallel), argnums=(0, 1, 2, 3)),
                     static_argnums=4)(variables["params"], xs, carry, perturbation,
                                       use_perturbation)
             for parallel in (True, False)]
    assert_trees_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def _loop_scan(a, b, h0):
  """h_t = a_t h_{t-1} + b_t as a Python loop over t: the reference."""
  h, out = h0, []
  for t in range(a.shape[1]):
    h = a[:, t] * h + b[:, t]
    out.append(h)
  return jnp.stack(out, axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@pytest.mark.parametrize("steps,chunk", [(1, 2), (5, 2), (16, 16), (17, 16), (37, 3), (80, 16)])
def test_linear_scan_equals_the_loop_with_its_gradient(steps, chunk, dtype):
  """Values and gradients (a, b, h0; complex as the LRU's) of ``linear_scan``
  and ``log_linear_scan`` against the loop: one chunk, a partial last chunk,
  and up to three levels of chunks."""
  rng = np.random.default_rng(steps)
  shape = (2, steps, 3)
  a = rng.uniform(0.0, 1.0, shape)
  b = rng.standard_normal(shape)
  h0 = rng.standard_normal((2, 3))
  if dtype == np.complex64:
    a = a * np.exp(1j * rng.uniform(0.0, 6.0, shape))
    b = b + 1j * rng.standard_normal(shape)
    h0 = h0 - 1j * rng.standard_normal((2, 3))
  a, b, h0 = (x.astype(dtype) for x in (a, b, h0))
  w = rng.standard_normal(shape).astype(np.float32)
  loss = lambda scan: lambda *args: jnp.sum(jnp.real(scan(*args)) * w + jnp.imag(scan(*args)))
  scan = functools.partial(recurrent.linear_scan, chunk=chunk)
  assert_trees_close(scan(a, b, h0), _loop_scan(a, b, h0), rtol=1e-5, atol=1e-5)
  assert_trees_close(jax.grad(loss(scan), argnums=(0, 1, 2))(a, b, h0),
                     jax.grad(loss(_loop_scan), argnums=(0, 1, 2))(a, b, h0),
                     rtol=1e-4, atol=1e-5)
  if dtype == np.float32:  # the log-space form: b > 0
    log_a, log_b = np.log(a), rng.standard_normal(shape).astype(np.float32)
    log_scan = functools.partial(recurrent.log_linear_scan, chunk=chunk)
    plain = lambda la, lb, h: _loop_scan(jnp.exp(la), jnp.exp(lb), h)
    assert_trees_close(log_scan(log_a, log_b, h0), plain(log_a, log_b, h0),
                       rtol=1e-5, atol=1e-5)
    assert_trees_close(jax.grad(loss(log_scan), argnums=(0, 1, 2))(log_a, log_b, h0),
                       jax.grad(loss(plain), argnums=(0, 1, 2))(log_a, log_b, h0),
                       rtol=1e-4, atol=1e-5)


def test_chunked_scan_rejects_a_chunk_below_two():
  with pytest.raises(ValueError, match="chunk must be >= 2"):
    recurrent.chunked_scan(recurrent._compose, (np.ones((1, 3, 1)),) * 2, (1.0, 0.0), 1)


def test_log_space_equals_plain_form_on_long_sequences():
  """Over 2048 steps the two forms of the minGRU scan agree, values and gradients."""
  xs = inputs(3, (2, 2048, D))
  variables = random_variables(Recurrent(cells.MinGRUCell(H)), xs, scale=2.0)

  def run(log_space, params, xs):
    out, carry = Recurrent(cells.MinGRUCell(H, log_space=log_space)).apply(
        {"params": params}, xs)
    return jnp.sum(out ** 2) + jnp.sum(carry), (out, carry)

  results = [jax.jit(jax.value_and_grad(functools.partial(run, log_space), has_aux=True))(
      variables["params"], xs) for log_space in (True, False)]
  (_, (out_log, carry_log)), grads_log = results[0]
  (_, (out_plain, carry_plain)), grads_plain = results[1]
  assert np.all(np.asarray(out_log) > 0)  # g > 0 keeps the state positive
  assert_trees_close(out_log, out_plain, rtol=1e-4, atol=1e-5)
  assert_trees_close(carry_log, carry_plain, rtol=1e-4, atol=1e-5)
  assert_trees_close(grads_log, grads_plain, rtol=1e-3, atol=1e-4)


def test_carried_state_across_windows_equals_one_pass():
  """Truncated BPTT and generation: windows of 1 and 3 steps with the carry in
  and out give the one-pass outputs."""
  cell = cells.MinLSTMCell(H)
  layer = Recurrent(cell)
  xs = inputs()
  variables = random_variables(layer, xs)
  want, want_carry = layer.apply(variables, xs)
  for width in (1, 3):
    carry, outs = None, []
    for start in range(0, T, width):
      out, carry = layer.apply(variables, xs[:, start:start + width], carry)
      outs.append(out)
    assert_trees_close(jnp.concatenate(outs, axis=1), want)
    assert_trees_close(carry, want_carry)


def test_lru_perturbation_gradient_decays_as_the_eigenvalue_modulus():
  """dJ/d s_{t-l} = lambda^l dJ/d s_t per unit: with one modulus r on the ring, the
  perturbation gradient's norm falls by exactly r per step."""
  r = 0.8
  cell = cells.LRUCell(H, state_size=3, r_min=r, r_max=r)
  layer = Recurrent(cell)
  xs = inputs()
  variables = layer.init(jax.random.key(0), xs)
  zeros = np.zeros((B, T, 6), np.float32)
  w_out = inputs(5, (B, T, H))[:, -1]
  grad = jax.grad(lambda d: jnp.sum(layer.apply(variables, xs, None, None, d)[0][:, -1]
                                    * w_out))(zeros)  # only the last output
  norms = np.linalg.norm(np.asarray(grad), axis=-1)  # (B, T)
  np.testing.assert_allclose(norms[:, :-1] / norms[:, 1:], r, rtol=1e-4)
