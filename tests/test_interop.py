"""rnn_research.interop against PyTorch's own nn.RNN / nn.LSTM / nn.GRU."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the [test] extra) is needed "
                            "to compare against nn.RNN/LSTM/GRU")

from rnn_research import interop  # noqa: E402

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
INPUT_SIZE, HIDDEN_SIZE, BATCH, TIME = 5, 6, 2, 6


@pytest.fixture(autouse=True)
def _highest_precision():
  # float32 matmuls in full precision, so the only differences are rounding.
  with jax.default_matmul_precision("highest"):
    yield


def torch_net(kind, num_layers, bidirectional, seed=0):
  torch.manual_seed(seed)
  kwargs = dict(input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, num_layers=num_layers,
                bidirectional=bidirectional, batch_first=True)
  if kind.startswith("rnn_"):
    net = torch.nn.RNN(nonlinearity=kind[len("rnn_"):], **kwargs)
  else:
    net = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](**kwargs)
  # PyTorch's default init (uniform +-1/sqrt(H)) makes every bias small; a
  # wider spread exercises b_ih vs b_hh (the GRU's b_hn) and saturated gates.
  with torch.no_grad():
    for p in net.parameters():
      p.uniform_(-0.8, 0.8)
  return net.eval()


def rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b)) / np.max(np.abs(b))


def run_torch(net, x):
  with torch.no_grad():
    out, states = net(torch.from_numpy(x))
  states = states if isinstance(states, tuple) else (states,)
  return out.numpy(), tuple(s.numpy() for s in states)


def inputs(seed=1):
  return np.random.default_rng(seed).normal(size=(BATCH, TIME, INPUT_SIZE)).astype(
      np.float32)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_matches_torch_outputs_and_final_states(kind, num_layers, bidirectional):
  net = torch_net(kind, num_layers, bidirectional)
  x = inputs()
  want_out, want_states = run_torch(net, x)
  module, variables = interop.from_torch(
      net.state_dict(), kind, INPUT_SIZE, HIDDEN_SIZE, num_layers, bidirectional)
  out, carries = module.apply(variables, x)
  states = interop.torch_final_states(carries, kind)
  assert out.shape == want_out.shape
  assert rel_err(out, want_out) < 1e-5
  assert len(states) == len(want_states)  # (h_n,) or (h_n, c_n)
  for got, want in zip(states, want_states):
    assert got.shape == want.shape
    assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_accepts_numpy_state_dict(kind):
  net = torch_net(kind, 2, True)
  x = inputs()
  want_out, _ = run_torch(net, x)
  numpy_sd = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
  module, variables = interop.from_torch(numpy_sd, kind, INPUT_SIZE, HIDDEN_SIZE, 2, True)
  out, _ = module.apply(variables, x)
  assert rel_err(out, want_out) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_to_torch_loads_into_torch_and_reproduces_outputs(kind):
  # Start from our own init (not from torch) so b_hh is rebuilt by to_torch.
  module = interop.build(kind, HIDDEN_SIZE, num_layers=2, bidirectional=True)
  x = inputs()
  variables = module.init(jax.random.key(0), x)
  variables = jax.tree.map(  # non-zero biases, so a misplaced one shows
      lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape), variables)
  sd = interop.to_torch(variables, kind, num_layers=2, bidirectional=True)
  net = torch_net(kind, 2, True, seed=5)  # different weights, overwritten below
  net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
  want_out, want_states = run_torch(net, x)
  out, carries = module.apply(variables, x)
  assert rel_err(out, want_out) < 1e-5
  for got, want in zip(interop.torch_final_states(carries, kind), want_states):
    assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_of_to_torch_round_trips_exactly(kind):
  net = torch_net(kind, 2, True)
  _, variables = interop.from_torch(net.state_dict(), kind, INPUT_SIZE, HIDDEN_SIZE, 2, True)
  _, again = interop.from_torch(interop.to_torch(variables, kind, 2, True), kind,
                                INPUT_SIZE, HIDDEN_SIZE, 2, True)
  assert jax.tree.structure(again) == jax.tree.structure(variables)
  for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)


def test_to_torch_gru_keeps_b_hn_in_b_hh():
  net = torch_net("gru", 1, False)
  _, variables = interop.from_torch(net.state_dict(), "gru", INPUT_SIZE, HIDDEN_SIZE)
  sd = interop.to_torch(variables, "gru")
  h = HIDDEN_SIZE
  np.testing.assert_array_equal(sd["bias_hh_l0"][:2 * h], 0.0)
  np.testing.assert_allclose(sd["bias_hh_l0"][2 * h:],
                             net.state_dict()["bias_hh_l0"][2 * h:].numpy())


def test_shape_mismatch_names_key_and_both_shapes():
  net = torch_net("lstm", 2, False)
  sd = dict(net.state_dict())
  sd["weight_hh_l1"] = torch.zeros(4 * HIDDEN_SIZE, HIDDEN_SIZE + 1)
  with pytest.raises(ValueError) as err:
    interop.from_torch(sd, "lstm", INPUT_SIZE, HIDDEN_SIZE, num_layers=2)
  msg = str(err.value)
  assert "weight_hh_l1" in msg
  assert f"({4 * HIDDEN_SIZE}, {HIDDEN_SIZE + 1})" in msg
  assert f"({4 * HIDDEN_SIZE}, {HIDDEN_SIZE})" in msg


def test_wrong_input_size_is_a_shape_mismatch():
  net = torch_net("gru", 1, False)
  with pytest.raises(ValueError, match="weight_ih_l0"):
    interop.from_torch(net.state_dict(), "gru", INPUT_SIZE + 1, HIDDEN_SIZE)


def test_missing_or_unexpected_keys_are_named():
  net = torch_net("rnn_tanh", 2, False)
  with pytest.raises(ValueError, match="bias_hh_l1"):
    # a 2-layer state_dict read as 1 layer: layer 1's keys are unexpected
    interop.from_torch(net.state_dict(), "rnn_tanh", INPUT_SIZE, HIDDEN_SIZE, num_layers=1)
  sd = dict(net.state_dict())
  del sd["bias_ih_l0"]
  with pytest.raises(ValueError, match="bias_ih_l0"):
    interop.from_torch(sd, "rnn_tanh", INPUT_SIZE, HIDDEN_SIZE, num_layers=2)


def test_unknown_kind_lists_valid_kinds():
  with pytest.raises(ValueError, match="rnn_tanh.*rnn_relu.*lstm.*gru"):
    interop.from_torch({}, "transformer", INPUT_SIZE, HIDDEN_SIZE)
  with pytest.raises(ValueError, match="valid kinds"):
    interop.to_torch({}, "elman")
