"""Gradient-flow probes against the closed form of Pascanu et al. 2013."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_research import models, probes

VOCAB, HIDDEN, BATCH, SEQ = 11, 8, 3, 16


def _tokens(seed=0, batch=BATCH, seq=SEQ):
  tokens = jax.random.randint(jax.random.key(seed), (batch, seq + 1), 0, VOCAB)
  return tokens[:, :-1], tokens[:, 1:]


def _identity_elman(rho):
  """Identity-activation Elman LM whose W_h is a non-normal Gaussian matrix
  rescaled to spectral radius ``rho`` (so ||W^l|| is not simply rho^l)."""
  model = models.LanguageModel(VOCAB, cell="elman", hidden_size=HIDDEN, num_layers=1,
                               cell_options={"activation": "identity"})
  inputs, targets = _tokens()
  variables = model.init(jax.random.key(1), inputs)
  kernel = np.array(jax.random.normal(jax.random.key(2), (HIDDEN, HIDDEN)))
  kernel *= rho / np.max(np.abs(np.linalg.eigvals(kernel)))
  params = jax.tree.map(lambda x: x, variables["params"])
  params["rnn"]["layer_0"]["cell"]["recurrent_kernel"] = jnp.asarray(kernel, jnp.float32)
  return model, {"params": params}, inputs, targets


@pytest.mark.parametrize("rho", [0.7, 1.3])
def test_identity_elman_probe_equals_g_times_power_of_w(rho):
  model, variables, inputs, targets = _identity_elman(rho)
  step_losses, zeros = probes.language_model_losses(model, variables, inputs, targets)
  pairs = np.asarray(jax.jit(lambda z: probes.pairwise_gradient_norms(
      step_losses, z, chunk_size=5))(zeros))  # (B, I, T)

  # g_i = dJ(i)/dh(i) by hand: (softmax - onehot) through the readout.
  params = variables["params"]
  _, _, hidden = model.apply(variables, inputs, return_hidden=True)
  h = np.asarray(hidden[0], np.float64)  # (B, T, H)
  w_out = np.asarray(params["softmax"]["kernel"], np.float64)  # (H, V)
  logits = h @ w_out + np.asarray(params["softmax"]["bias"], np.float64)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  g = (p - np.eye(VOCAB)[np.asarray(targets)]) @ w_out.T  # (B, T, H)
  # Stored kernels act on row vectors (h_t = h_{t-1} K), so the lecture's W_h = K^T.
  w_h = np.asarray(params["rnn"]["layer_0"]["cell"]["recurrent_kernel"], np.float64).T
  expected = np.zeros_like(pairs, dtype=np.float64)
  for i in range(SEQ):
    row = g[:, i]  # (B, H)
    for l in range(i + 1):
      expected[:, i, i - l] = np.linalg.norm(row, axis=-1)
      row = row @ w_h  # g W_h^(l+1)
  np.testing.assert_allclose(pairs, expected, rtol=2e-5, atol=0)

  got, want = probes.average_by_distance(pairs), probes.average_by_distance(expected)
  np.testing.assert_allclose(got["mean_norm"], want["mean_norm"], rtol=2e-5)  # every l
  np.testing.assert_allclose(got["mean_log_gain"], want["mean_log_gain"], atol=2e-5)
  np.testing.assert_array_equal(got["count"], BATCH * (SEQ - np.arange(SEQ)))


def test_probe_is_causal_in_every_layer_and_matches_per_step_training_norms():
  """Two LSTM layers: (c, h) carries, and a layer whose gradient also arrives
  from the layer above."""
  model = models.LanguageModel(VOCAB, cell="lstm", hidden_size=4, num_layers=2)
  inputs, targets = _tokens(seq=5)
  variables = model.init(jax.random.key(1), inputs)
  step_losses, zeros = probes.language_model_losses(model, variables, inputs, targets)

  @jax.jit
  def everything(z):
    pairs = probes.pairwise_gradient_norms(step_losses, z, layer=None)  # (L, B, T, T)
    carry_grads = jax.grad(lambda p: jnp.mean(step_losses(p)))(z)
    return pairs, [probes.state_norms(g) for g in carry_grads], carry_grads

  pairs, norms, carry_grads = everything(zeros)
  assert pairs.shape == (2, BATCH, 5, 5)
  future = np.triu(np.ones((5, 5), bool), k=1)  # j > i: no path from the future
  for layer_pairs in map(np.asarray, pairs):
    assert np.all(layer_pairs[:, future] == 0)
    assert np.all(layer_pairs[:, ~future] > 0)
  # The gradient of the mean loss is the mean over i of the per-position ones,
  # so its norm at the last step (one loss position only) is pairs / (B T).
  assert [n.shape for n in norms] == [(BATCH, 5)] * 2
  np.testing.assert_allclose(np.asarray(norms[1])[:, -1],
                             np.asarray(pairs[1])[:, -1, -1] / (BATCH * 5), rtol=1e-5)
  per_step = probes.per_step_gradient_norms(carry_grads)  # (L, T)
  np.testing.assert_allclose(per_step, np.stack([n.mean(0) for n in norms]), rtol=1e-6)
  # The LSTM's state is (c, h): both leaves count.
  c_only = np.asarray(probes.state_norms(carry_grads[0][0]))
  assert np.all(np.asarray(norms[0]) > c_only)


def test_recurrent_spectra_split_gates_and_read_known_matrices():
  model = models.LanguageModel(VOCAB, cell="lstm", hidden_size=HIDDEN, num_layers=1)
  variables = model.init(jax.random.key(0), _tokens()[0])
  rows = probes.recurrent_spectra(variables["params"])
  assert [r["gate"] for r in rows] == ["i", "f", "c", "o"]
  for r in rows:  # orthogonal per gate at initialisation
    assert r["spectral_radius"] == pytest.approx(1.0, abs=1e-5)
    assert r["max_singular_value"] == pytest.approx(1.0, abs=1e-5)
  # A nilpotent matrix: spectral radius 0, largest singular value 3.
  kernel = np.zeros((2, 2)); kernel[0, 1] = 3.0
  (row,) = probes.recurrent_spectra({"cell": {"recurrent_kernel": kernel}})
  assert row["spectral_radius"] == pytest.approx(0.0, abs=1e-12)
  assert row["max_singular_value"] == pytest.approx(3.0)


def test_fit_slope_reads_a_line_and_skips_missing_values():
  d = np.arange(20)
  log_norm = np.log(2.0) + d * np.log(0.9)
  log_norm[15:] = np.nan  # distances with no pairs
  assert probes.fit_slope(d, log_norm) == pytest.approx(np.log(0.9))
