r"""PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` weights <-> our ``StackedRNN``.

``from_torch`` turns a PyTorch state_dict into a :class:`StackedRNN` and its
variables whose outputs equal PyTorch's ``batch_first=True`` outputs;
``to_torch`` goes back, giving a state_dict that ``load_state_dict`` accepts.
``torch_final_states`` rearranges our carries into PyTorch's ``h_n`` (and
``c_n``).

Example::

    import torch
    from rnn_research import interop

    net = torch.nn.LSTM(16, 32, num_layers=2, bidirectional=True,
                        batch_first=True)
    module, variables = interop.from_torch(
        net.state_dict(), "lstm", input_size=16, hidden_size=32,
        num_layers=2, bidirectional=True)
    x = torch.randn(4, 10, 16)
    outputs, carries = module.apply(variables, x.numpy())  # (4, 10, 64)
    h_n, c_n = interop.torch_final_states(carries, "lstm")  # (4, 4, 32) each
    # outputs, h_n, c_n match net(x) = (output, (h_n, c_n)) to float32 rounding.

    state_dict = interop.to_torch(variables, "lstm", num_layers=2,
                                  bidirectional=True)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})

Mapping (G gates, H = hidden_size; ``_reverse`` keys are the backward layer):

* ``weight_ih_l{k}`` (G*H, in) -> ``input/kernel`` (in, G*H), transposed;
  ``weight_hh_l{k}`` (G*H, H) -> ``recurrent_kernel`` (H, G*H), transposed.
* Biases: PyTorch adds b_ih and b_hh inside every gate, so their sum is our
  ``input/bias``. The GRU's candidate is the exception: PyTorch computes
  ``r * (W_hn h + b_hn)``, our ``GRUCell(reset_after=True)`` with
  ``recurrent_bias`` = b_hn, and ``input/bias`` = b_ih + [b_hr, b_hz, 0].
* Gate order is PyTorch's in every cell (LSTM i, f, g, o; GRU r, z, n), but
  PyTorch's GRU keeps ``z * h_{t-1}`` (Cho et al. 2014) where our equation
  keeps ``(1 - u) * h_{t-1}``: u = 1 - z = sigmoid(-a_z), so the update-gate
  block of both kernels and of the bias changes sign. This is exact.
* ``to_torch`` puts every bias into b_ih and leaves b_hh zero, except the
  GRU's b_hn, so ``from_torch(to_torch(v))`` returns ``v`` exactly.

Carries: ``StackedRNN`` returns one carry per layer; a bidirectional layer's
is ``(forward, backward)``; an LSTM carry is ``(c, h)``, the others ``h``, each
(B, H). PyTorch's ``h_n`` stacks them (num_layers * num_directions, B, H) as
layer 0 forward, layer 0 backward, layer 1 forward, ...: that is what
``torch_final_states`` builds.

PyTorch is never imported here: a state_dict of torch tensors or of NumPy
arrays is accepted alike. ``bias=False`` and ``proj_size`` networks are not
supported (a clear error says so).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from rnn_research.cells import ElmanCell, GRUCell, LSTMCell
from rnn_research.recurrent import StackedRNN

NUM_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
"""PyTorch network kinds: ``nn.RNN(nonlinearity='tanh'|'relu')``, LSTM, GRU."""

_DIRECTIONS = (("", "forward_layer"), ("_reverse", "backward_layer"))


def _check_kind(kind: str) -> int:
  if kind not in NUM_GATES:
    raise ValueError(
        f"unknown kind {kind!r}; valid kinds: {', '.join(NUM_GATES)}")
  return NUM_GATES[kind]


def _cell_factory(kind: str, hidden_size: int):
  if kind in ("rnn_tanh", "rnn_relu"):
    return functools.partial(ElmanCell, hidden_size=hidden_size,
                             activation=kind[len("rnn_"):])
  if kind == "lstm":  # the bias comes from the state_dict, so no forget_bias
    return functools.partial(LSTMCell, hidden_size=hidden_size, forget_bias=0.0)
  return functools.partial(GRUCell, hidden_size=hidden_size, reset_after=True)


def _to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor; .float() also covers bfloat16
    value = value.detach().cpu().float().numpy()
  return np.asarray(value, dtype=np.float32)


def _gru_flip_update_gate(a: np.ndarray, hidden_size: int) -> np.ndarray:
  """Negates the update-gate block (the second H of the last axis): z <-> 1 - u."""
  a = a.copy()
  a[..., hidden_size:2 * hidden_size] *= -1.0
  return a


def _layer_paths(num_layers: int, bidirectional: bool):
  """(PyTorch key suffix, path of the cell's params in our tree) per layer/direction.

  In PyTorch's order: layer 0 forward, layer 0 backward, layer 1 forward, ...
  """
  for k in range(num_layers):
    if bidirectional:
      for suffix, direction in _DIRECTIONS:
        yield k, f"_l{k}{suffix}", (f"layer_{k}", direction, "cell")
    else:
      yield k, f"_l{k}", (f"layer_{k}", "cell")


def build(kind: str, hidden_size: int, num_layers: int = 1,
          bidirectional: bool = False) -> StackedRNN:
  """The ``StackedRNN`` that computes what PyTorch's network of ``kind`` does."""
  _check_kind(kind)
  return StackedRNN(_cell_factory(kind, hidden_size), num_layers=num_layers,
                    bidirectional=bidirectional, merge="concat")


def from_torch(state_dict: Mapping[str, Any], kind: str, input_size: int,
               hidden_size: int, num_layers: int = 1, bidirectional: bool = False
               ) -> tuple[StackedRNN, dict]:
  """A PyTorch RNN/LSTM/GRU state_dict -> ``(module, variables)``.

  ``module.apply(variables, x)`` on x (B, T, input_size) returns
  ``(outputs, carries)``; ``outputs`` is PyTorch's ``batch_first=True`` output
  (B, T, num_directions * H); see ``torch_final_states`` for h_n / c_n.

  Args:
    state_dict: ``net.state_dict()``; torch tensors or NumPy arrays.
    kind: ``rnn_tanh``, ``rnn_relu``, ``lstm`` or ``gru``.
    input_size, hidden_size, num_layers, bidirectional: as given to PyTorch.

  Raises:
    ValueError: unknown kind; a missing, unexpected or wrongly shaped key
      (naming the key and both shapes).
  """
  g = _check_kind(kind)
  h = hidden_size
  num_dirs = 2 if bidirectional else 1
  expected = {}
  for k, tag, _ in _layer_paths(num_layers, bidirectional):
    layer_in = input_size if k == 0 else num_dirs * h
    expected[f"weight_ih{tag}"] = (g * h, layer_in)
    expected[f"weight_hh{tag}"] = (g * h, h)
    expected[f"bias_ih{tag}"] = (g * h,)
    expected[f"bias_hh{tag}"] = (g * h,)
  missing = [key for key in expected if key not in state_dict]
  unexpected = [key for key in state_dict if key not in expected]
  if missing or unexpected:
    raise ValueError(
        f"state_dict does not fit a {num_layers}-layer "
        f"{'bidirectional ' if bidirectional else ''}{kind}: missing keys "
        f"{missing}, unexpected keys {unexpected} (bias=False and proj_size "
        "networks are not supported)")
  arrays = {}
  for key, shape in expected.items():
    arrays[key] = _to_numpy(state_dict[key])
    if arrays[key].shape != shape:
      raise ValueError(
          f"state_dict[{key!r}] has shape {tuple(arrays[key].shape)}, expected "
          f"{shape} for {kind} with input_size={input_size}, "
          f"hidden_size={hidden_size}")

  params: dict = {}
  for _, tag, path in _layer_paths(num_layers, bidirectional):
    kernel = arrays[f"weight_ih{tag}"].T  # (in, G*H)
    recurrent_kernel = arrays[f"weight_hh{tag}"].T  # (H, G*H)
    b_ih, b_hh = arrays[f"bias_ih{tag}"], arrays[f"bias_hh{tag}"]
    cell = {}
    if kind == "gru":
      bias = b_ih + np.concatenate([b_hh[:2 * h], np.zeros(h, np.float32)])
      kernel, recurrent_kernel, bias = (
          _gru_flip_update_gate(a, h) for a in (kernel, recurrent_kernel, bias))
      cell["recurrent_bias"] = jnp.asarray(b_hh[2 * h:])
    else:
      bias = b_ih + b_hh
    cell["input"] = {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}
    cell["recurrent_kernel"] = jnp.asarray(recurrent_kernel)
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = cell
  module = build(kind, hidden_size, num_layers, bidirectional)
  return module, {"params": params}


def to_torch(variables: Mapping[str, Any], kind: str, num_layers: int = 1,
             bidirectional: bool = False) -> dict[str, np.ndarray]:
  """Our variables (from ``from_torch`` or ``build(...).init``) -> a PyTorch state_dict.

  Keys and shapes are those of the PyTorch network of the same ``kind``,
  ``num_layers`` and ``bidirectional``; values are float32 NumPy arrays
  (``torch.from_numpy`` each before ``load_state_dict``). b_hh is zero except
  the GRU's b_hn block, so the network computes exactly what ours does.
  """
  _check_kind(kind)
  params = variables.get("params", variables)
  state_dict: dict[str, np.ndarray] = {}
  for _, tag, path in _layer_paths(num_layers, bidirectional):
    cell = params
    for name in path:
      cell = cell[name]
    # np.array copies: arrays viewed from JAX buffers are read-only, which
    # torch.from_numpy warns about.
    kernel = np.array(cell["input"]["kernel"], np.float32)  # (in, G*H)
    recurrent_kernel = np.array(cell["recurrent_kernel"], np.float32)  # (H, G*H)
    bias = np.array(cell["input"]["bias"], np.float32)
    h = recurrent_kernel.shape[0]
    b_hh = np.zeros_like(bias)
    if kind == "gru":
      kernel, recurrent_kernel, bias = (
          _gru_flip_update_gate(a, h) for a in (kernel, recurrent_kernel, bias))
      b_hh[2 * h:] = np.asarray(cell["recurrent_bias"], np.float32)
    state_dict[f"weight_ih{tag}"] = np.ascontiguousarray(kernel.T)  # (G*H, in)
    state_dict[f"weight_hh{tag}"] = np.ascontiguousarray(recurrent_kernel.T)
    state_dict[f"bias_ih{tag}"] = bias
    state_dict[f"bias_hh{tag}"] = b_hh
  return state_dict


def torch_final_states(carries, kind: str) -> tuple:
  """``StackedRNN`` carries -> PyTorch's ``(h_n,)`` or, for the LSTM, ``(h_n, c_n)``.

  Each is (num_layers * num_directions, B, H) in PyTorch's order: layer 0
  forward, layer 0 backward, layer 1 forward, ... Whether the stack is
  bidirectional is read from the carries' structure.
  """
  _check_kind(kind)
  hs, cs = [], []
  for layer_carry in carries:
    # an LSTM carry (c, h) is itself a pair, so a bidirectional layer's is a
    # pair of pairs; for the other cells a pair means two directions.
    if kind == "lstm":
      directions = layer_carry if isinstance(layer_carry[0], tuple) else (layer_carry,)
    else:
      directions = layer_carry if isinstance(layer_carry, tuple) else (layer_carry,)
    for carry in directions:
      if kind == "lstm":
        c, h = carry
        cs.append(c)
      else:
        h = carry
      hs.append(h)
  h_n = jnp.stack(hs)  # (L * num_directions, B, H)
  if kind == "lstm":
    return h_n, jnp.stack(cs)
  return (h_n,)
