"""LanguageModel, SentenceClassifier, SequenceTagger and sampling."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnn_research import models


def _lm(**kw):
  args = dict(vocab_size=30, cell="lstm", hidden_size=8, num_layers=2, init_scale=0.1)
  args.update(kw)
  return models.LanguageModel(**args)


def _init(model, batch=2, length=5):
  tokens = jnp.zeros((batch, length), jnp.int32)
  return model.init(jax.random.key(0), tokens, model.initial_carries(batch))["params"]


def test_language_model_parameter_shapes():
  params = _init(_lm())
  shapes = jax.tree.map(jnp.shape, params)
  assert shapes["embed"]["embedding"] == (30, 8)
  assert shapes["rnn"]["layer_0"]["cell"]["input"]["kernel"] == (8, 32)
  assert shapes["rnn"]["layer_1"]["cell"]["recurrent_kernel"] == (8, 32)
  assert shapes["softmax"]["kernel"] == (8, 30)


def test_tied_weights_have_no_softmax_matrix_and_use_the_embedding():
  model = _lm(tie_weights=True)
  params = _init(model)
  assert "softmax" not in params
  tokens = jnp.array([[1, 2, 3]])
  logits, _ = model.apply({"params": params}, tokens, model.initial_carries(1))
  h = model.apply({"params": params}, tokens, model.initial_carries(1),
                  method=lambda m, t, c: m.rnn(m.embed(t), c)[0])
  np.testing.assert_allclose(logits, h @ params["embed"]["embedding"].T, rtol=1e-5, atol=1e-6)


def test_tied_weights_need_matching_sizes():
  with pytest.raises(ValueError, match="tie_weights needs embed_size == hidden_size"):
    _init(_lm(tie_weights=True, embed_size=6))


def test_bidirectional_language_model_is_refused():
  with pytest.raises(ValueError, match="cannot be bidirectional"):
    _init(_lm(bidirectional=True))


def test_carry_makes_windows_equal_one_long_sequence():
  """Truncated BPTT's forward pass: two windows with the carry passed on give
  the logits of one pass over the concatenation."""
  model = _lm(cell="gru")
  params = _init(model)
  tokens = jax.random.randint(jax.random.key(1), (2, 8), 0, 30)
  whole, _ = model.apply({"params": params}, tokens, model.initial_carries(2))
  first, carry = model.apply({"params": params}, tokens[:, :5], model.initial_carries(2))
  second, _ = model.apply({"params": params}, tokens[:, 5:], carry)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_one_sgd_step_changes_every_parameter(cell):
  model = _lm(cell=cell, dropout_rate=0.2)
  params = _init(model)
  tokens = jax.random.randint(jax.random.key(1), (2, 6), 0, 30)

  def loss(p):
    logits, _ = model.apply({"params": p}, tokens[:, :-1], model.initial_carries(2),
                            deterministic=False, rngs={"dropout": jax.random.key(2)})
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  grads = jax.grad(loss)(params)
  new = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params, new)
  assert all(jax.tree.leaves(changed)), changed


def _loop_states(cell_name, cell_params, xs, reverse=False):
  """Hidden states of one layer by a plain Python loop over the real steps
  ``xs`` (L, E), in reading order; returned in position order (L, H)."""
  from rnn_research import cells as cells_lib
  hidden = cell_params["recurrent_kernel"].shape[0]
  cell = cells_lib.get_cell(cell_name, hidden_size=hidden)
  carry = cell.initialize_carry(jax.random.key(0), (1, xs.shape[-1]))
  order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
  out = [None] * len(xs)
  for t in order:
    carry, y = cell.apply({"params": cell_params}, carry, xs[t][None])
    out[t] = np.asarray(y[0])
  return np.stack(out)


def _encoder_by_loop(params, cell, token_rows, bidirectional):
  """Per sequence: the top layer's states (L, F) of a one-layer stack."""
  layer = params["StackedRNN_0"]["layer_0"]
  out = []
  for row in token_rows:
    xs = params["Embed_0"]["embedding"][np.asarray(row)]  # (L, E)
    if bidirectional:
      f = _loop_states(cell, layer["forward_layer"]["cell"], xs)
      b = _loop_states(cell, layer["backward_layer"]["cell"], xs, reverse=True)
      out.append(np.concatenate([f, b], axis=-1))
    else:
      out.append(_loop_states(cell, layer["cell"], xs))
  return out


def _pad(rows, width, fill=0):
  return jnp.array([list(r) + [fill] * (width - len(r)) for r in rows])


ROWS = ([3, 4, 5], [6, 7, 8, 9, 2], [1])


@pytest.mark.parametrize("pooling", models.POOLINGS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_sentence_classifier_pooling_matches_a_python_loop(pooling, bidirectional):
  cell = "gru"
  model = models.SentenceClassifier(vocab_size=12, num_classes=3, cell=cell, hidden_size=5,
                                    embed_size=4, bidirectional=bidirectional,
                                    pooling=pooling)
  tokens, lengths = _pad(ROWS, 6), jnp.array([len(r) for r in ROWS])
  params = model.init(jax.random.key(0), tokens, lengths)["params"]
  logits = model.apply({"params": params}, tokens, lengths)
  assert logits.shape == (3, 3)
  hs = 5
  for i, h in enumerate(_encoder_by_loop(params, cell, ROWS, bidirectional)):
    if pooling == "final":  # forward after the last word, backward after the first
      pooled = np.concatenate([h[-1, :hs], h[0, hs:]]) if bidirectional else h[-1]
    elif pooling == "mean":
      pooled = h.mean(0)
    elif pooling == "max":
      pooled = h.max(0)
    else:
      a = params["attention_proj"]
      scores = np.tanh(h @ a["kernel"] + a["bias"]) @ params["attention_score"]["kernel"]
      w = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
      pooled = (w * h).sum(0)
    expected = pooled @ params["output"]["kernel"] + params["output"]["bias"]
    np.testing.assert_allclose(logits[i], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["final", "max"])  # every pooling: the loop test pads
def test_sentence_classifier_ignores_padding(pooling):
  model = models.SentenceClassifier(vocab_size=12, num_classes=2, hidden_size=6, embed_size=4,
                                    bidirectional=True, num_layers=2, pooling=pooling)
  lengths = jnp.array([len(r) for r in ROWS])
  params = model.init(jax.random.key(0), _pad(ROWS, 5), lengths)
  short = model.apply(params, _pad(ROWS, 5), lengths)
  long = model.apply(params, _pad(ROWS, 9, fill=11), lengths)  # other pad id, wider
  np.testing.assert_allclose(short, long, rtol=1e-5, atol=1e-6)


def test_number_prediction_classifier_gives_one_logit_per_prefix():
  """configs/agreement.py's model: final pooling, one output, shape (B,)."""
  import ml_collections
  from rnn_research.studies import agreement
  config = ml_collections.ConfigDict(dict(hidden_size=6, embed_size=4, num_layers=1,
                                          bidirectional=True, dropout_rate=0.0))
  model = agreement.make_classifier(config, "lstm", vocab_size=12)
  lengths = jnp.array([len(r) for r in ROWS])
  params = model.init(jax.random.key(0), _pad(ROWS, 5), lengths)
  logits = model.apply(params, _pad(ROWS, 5), lengths)
  assert logits.shape == (3,)
  np.testing.assert_allclose(logits, model.apply(params, _pad(ROWS, 7, fill=3), lengths),
                             rtol=1e-5, atol=1e-6)


def test_bidirectional_final_state_is_forward_last_and_backward_first():
  h = jnp.arange(2 * 4 * 6, dtype=jnp.float32).reshape(2, 4, 6)  # (B, T, 2H), H = 3
  got = models.final_states(h, jnp.array([2, 4]), 3, bidirectional=True)
  np.testing.assert_array_equal(got[0], jnp.concatenate([h[0, 1, :3], h[0, 0, 3:]]))
  np.testing.assert_array_equal(got[1], jnp.concatenate([h[1, 3, :3], h[1, 0, 3:]]))
  np.testing.assert_array_equal(models.final_states(h, jnp.array([2, 4]), 3, False),
                                jnp.stack([h[0, 1], h[1, 3]]))


def test_sequence_tagger_matches_a_python_loop_at_every_token():
  model = models.SequenceTagger(vocab_size=12, num_tags=4, cell="lstm", hidden_size=5,
                                embed_size=4, bidirectional=True)
  tokens, lengths = _pad(ROWS, 6), jnp.array([len(r) for r in ROWS])
  params = model.init(jax.random.key(0), tokens, lengths)["params"]
  logits = model.apply({"params": params}, tokens, lengths)
  assert logits.shape == (3, 6, 4)
  for i, h in enumerate(_encoder_by_loop(params, "lstm", ROWS, True)):
    expected = h @ params["output"]["kernel"] + params["output"]["bias"]
    np.testing.assert_allclose(logits[i, :len(ROWS[i])], expected, rtol=1e-5, atol=1e-5)


def test_char_word_encoder_is_a_bilstm_over_each_words_characters():
  enc = models.CharWordEncoder(char_vocab_size=9, embed_size=3, hidden_size=4)
  words = [[1, 2, 3], [4, 5], [6, 7, 8, 2]]
  chars = _pad(words, 5)[None]  # (1, 3, 5)
  char_lengths = jnp.array([[len(w) for w in words]])
  params = enc.init(jax.random.key(0), chars, char_lengths)["params"]
  got = enc.apply({"params": params}, chars, char_lengths)  # (1, 3, 8)
  for j, h in enumerate(_encoder_by_loop(params, "lstm", words, True)):
    np.testing.assert_allclose(got[0, j], np.concatenate([h[-1, :4], h[0, 4:]]),
                               rtol=1e-5, atol=1e-5)


def test_sequence_tagger_with_characters_ignores_padding():
  model = models.SequenceTagger(vocab_size=12, num_tags=4, hidden_size=5, embed_size=4,
                                num_layers=2, char_vocab_size=9, char_embed_size=3,
                                char_hidden_size=2)
  lengths = jnp.array([len(r) for r in ROWS])
  def batch(width, word_width, fill):
    chars = np.full((3, width, word_width), fill)
    char_lengths = np.zeros((3, width), int)
    for i, r in enumerate(ROWS):
      for j, w in enumerate(r):
        chars[i, j, :w % 3 + 1] = (np.arange(w % 3 + 1) + w) % 8 + 1
        char_lengths[i, j] = w % 3 + 1
    return _pad(ROWS, width, fill), jnp.array(chars), jnp.array(char_lengths)

  params = model.init(jax.random.key(0), *batch(5, 4, 0)[:1], lengths, *batch(5, 4, 0)[1:])
  a = model.apply(params, batch(5, 4, 0)[0], lengths, *batch(5, 4, 0)[1:])
  b = model.apply(params, batch(8, 6, 7)[0], lengths, *batch(8, 6, 7)[1:])
  for i, r in enumerate(ROWS):
    np.testing.assert_allclose(a[i, :len(r)], b[i, :len(r)], rtol=1e-5, atol=1e-6)


def test_generate_greedy_is_deterministic_and_top1_equals_greedy():
  model = _lm()
  params = _init(model)
  prompt = jnp.array([[1, 2], [3, 4]])
  greedy = models.generate(model, params, prompt, 6, jax.random.key(0), temperature=0.0)
  assert greedy.shape == (2, 6)
  again = models.generate(model, params, prompt, 6, jax.random.key(9), temperature=0.0)
  np.testing.assert_array_equal(greedy, again)
  top1 = models.generate(model, params, prompt, 6, jax.random.key(5), top_k=1)
  np.testing.assert_array_equal(top1, greedy)


def test_generate_greedy_follows_the_models_argmax():
  model = _lm()
  params = _init(model)
  prompt = jnp.array([[1, 2, 3]])
  out = models.generate(model, params, prompt, 3, jax.random.key(0), temperature=0.0)
  seq = prompt
  for _ in range(3):  # recompute each next word from scratch on the growing sequence
    logits, _ = model.apply({"params": params}, seq, model.initial_carries(1))
    seq = jnp.concatenate([seq, jnp.argmax(logits[:, -1], -1)[:, None]], axis=1)
  np.testing.assert_array_equal(out, seq[:, 3:])


def test_bfloat16_model_keeps_float32_products_and_logits():
  """bf16 compute must not round the products: logits and U x + b come back
  in float32 with bits below bfloat16's precision."""
  model = _lm(dtype=jnp.bfloat16)
  params = _init(model)
  tokens = jax.random.randint(jax.random.key(1), (2, 5), 0, 30)
  logits, _ = model.apply({"params": params}, tokens, model.initial_carries(2))
  px = model.apply({"params": params}, jnp.ones((2, 5, 8)),
                   method=lambda m, x: m.rnn.layers[0].cell.project_inputs(x))
  for x in (logits, px):
    assert x.dtype == jnp.float32
    assert bool(jnp.any(x != x.astype(jnp.bfloat16).astype(jnp.float32)))


def _autodiff_projection(x, kernel, dtype=None):
  """``cells.projection`` with autodiff's gradient, the reference."""
  return models.cells_lib._dot(x, kernel, dtype or jnp.float32)


def _lm_loss_and_grads(model, params, tokens):
  def loss(params):
    logits, _ = model.apply({"params": params}, tokens, model.initial_carries(tokens.shape[0]))
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens).mean()
  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16])
def test_projection_gradients_match_autodiff(dtype, monkeypatch):
  """cells.projection's own VJP (the output layer, the input projections, the
  recurrent products, W's gradient after the loop) gives the LM loss's
  gradient: to float32 rounding in float32, to bfloat16 rounding in bfloat16
  (there against both plain autodiff in bfloat16 and the float32 gradient)."""
  model = _lm(vocab_size=300, hidden_size=16, dtype=dtype)
  params = _init(model, batch=4)
  tokens = jax.random.randint(jax.random.key(1), (4, 5), 0, 300)
  loss, grads = _lm_loss_and_grads(model, params, tokens)
  monkeypatch.setattr(models.cells_lib, "projection", _autodiff_projection)
  want_loss, want = _lm_loss_and_grads(model, params, tokens)
  _, want_f32 = _lm_loss_and_grads(_lm(vocab_size=300, hidden_size=16), params, tokens)
  tol = 1e-5 if dtype is None else 3e-2  # of each gradient's largest entry
  assert float(loss) == pytest.approx(float(want_loss), rel=1e-5 if dtype is None else 1e-3)
  references = [want] if dtype is None else [want, want_f32]
  for ref in references:
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
      r = ref
      for k in path:
        r = r[k.key]
      assert g.dtype == jnp.float32
      err = float(jnp.max(jnp.abs(g - r)) / jnp.max(jnp.abs(r)))
      assert err <= tol, (jax.tree_util.keystr(path), err)


def dot_operands(hlo: str) -> list[tuple[str, str, str, str]]:
  """Every dot of a compiled HLO module's text: (result shape, lhs type,
  rhs type, contracting dims), the types as 'bf16[20,300]'."""
  types = {}
  for m in re.finditer(r"%(\S+) = (\w+\[[\d,]*\])", hlo):
    types[m.group(1)] = m.group(2)
  dots = []
  for m in re.finditer(r"= (\w+\[[\d,]*\])\S* dot\(%([^,\s]+), %([^,\s)]+)\)(.*)", hlo):
    dims = " ".join(re.findall(r"\w+_contracting_dims=\{[\d,]*\}", m.group(4)))
    dots.append((m.group(1), types[m.group(2)], types[m.group(3)], dims))
  return dots


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16])
def test_compiled_training_products_run_in_the_compute_dtype(dtype):
  """Every dot of the compiled LM training gradient takes both operands in
  the compute dtype, returns float32, and none contracts a transposed left
  operand (lhs dim 0), the form jaxlib 0.10.2 sends to a float32 Eigen dot;
  so in bfloat16 each cotangent is cast before its products. Among them the
  output layer's three (logits, dh, dW: the vocabulary's 300 in a shape).
  Fails when a jax upgrade (or plain autodiff) brings the slow forms back."""
  model = _lm(vocab_size=300, hidden_size=16, dtype=dtype)
  params = _init(model, batch=4)
  tokens = jnp.zeros((4, 5), jnp.int32)
  grad = jax.jit(lambda p, t: _lm_loss_and_grads(model, p, t)[1])
  dots = dot_operands(grad.lower(params, tokens).compile().as_text())
  want = "bf16[" if dtype is not None else "f32["
  assert len([d for d in dots if "300" in d[0] + d[1] + d[2]]) == 3, dots
  # per layer: input projection and its 2 gradients, the loop's product
  # forward and backward, W's gradient after the loop
  assert len(dots) >= 3 + 2 * 6, dots
  for result, lhs, rhs, dims in dots:
    assert lhs.startswith(want) and rhs.startswith(want), dots
    assert result.startswith("f32["), dots  # float32 accumulation
    assert "lhs_contracting_dims={0}" not in dims, dots


def test_output_layer_has_dense_parameters_and_initialisation():
  """OutputLayer creates nn.Dense's tree with the same values from the same
  key, so checkpoints and interop are unchanged."""
  from flax import linen as nn
  h = jnp.ones((2, 3, 8))
  ours = models.OutputLayer(11, kernel_init=models.cells_lib.uniform_init(0.1)).init(
      jax.random.key(0), h)
  dense = nn.Dense(11, kernel_init=models.cells_lib.uniform_init(0.1)).init(
      jax.random.key(0), h)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, dense)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(dense)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "lru"])
def test_linear_recurrence_language_model_generates_from_its_parallel_pass(cell):
  """Generation feeds one token at a time with the carry; the logits of one
  parallel pass over the whole sequence must pick the same greedy words, and
  every parameter (init_scale applied where the cell has kernels) gets a gradient."""
  model = _lm(cell=cell)
  params = _init(model)
  prompt = jnp.array([[1, 2, 3], [4, 5, 6]])
  out = models.generate(model, params, prompt, 4, jax.random.key(0), temperature=0.0)
  seq = jnp.concatenate([prompt, out], axis=1)
  logits, _ = model.apply({"params": params}, seq, model.initial_carries(2))
  np.testing.assert_array_equal(jnp.argmax(logits[:, 2:-1], -1), out)
  grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, seq,
                                                 model.initial_carries(2))[0] ** 2))(params)
  assert all(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))


def test_top_p_keeps_the_smallest_nucleus_and_renormalises():
  probs = jnp.array([[0.05, 0.5, 0.15, 0.3]])
  logits = jnp.log(probs)
  kept = lambda p: np.isfinite(np.asarray(models.filter_logits(logits, top_p=p)))[0].tolist()
  assert kept(0.45) == [False, True, False, False]  # the top token alone holds 0.5
  assert kept(0.75) == [False, True, False, True]  # 0.5 + 0.3 >= 0.75
  assert kept(0.9) == [False, True, True, True]
  assert kept(1.0) == [True, True, True, True]
  # Sampling from the nucleus: excluded tokens never come, the rest in proportion.
  draws = np.asarray(jax.random.categorical(
      jax.random.key(0), models.filter_logits(logits, top_p=0.75), shape=(4000, 1)))
  counts = np.bincount(draws.ravel(), minlength=4)
  assert counts[0] == counts[2] == 0
  np.testing.assert_allclose(counts[1] / counts.sum(), 0.5 / 0.8, atol=0.03)


def test_top_p_after_top_k_and_temperature():
  logits = jnp.log(jnp.array([[0.4, 0.3, 0.2, 0.1]]))
  # top_k=3 drops 0.1; renormalised 0.44, 0.33, 0.22: top_p=0.7 keeps two.
  out = models.filter_logits(logits, top_k=3, top_p=0.7)
  assert np.isfinite(np.asarray(out))[0].tolist() == [True, True, False, False]
  # A high temperature flattens the distribution, so the nucleus grows.
  hot = models.filter_logits(logits, temperature=100.0, top_p=0.7)
  assert int(np.isfinite(np.asarray(hot)).sum()) == 3


def test_generate_top_p_is_seeded_and_a_tiny_nucleus_is_greedy():
  model = _lm()
  params = _init(model)
  prompt = jnp.array([[1, 2], [3, 4]])
  a = models.generate(model, params, prompt, 20, jax.random.key(7), top_p=0.9)
  b = models.generate(model, params, prompt, 20, jax.random.key(7), top_p=0.9)
  c = models.generate(model, params, prompt, 20, jax.random.key(8), top_p=0.9)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  greedy = models.generate(model, params, prompt, 20, jax.random.key(0), temperature=0.0)
  tiny = models.generate(model, params, prompt, 20, jax.random.key(3), top_p=1e-6)
  np.testing.assert_array_equal(tiny, greedy)


@pytest.mark.parametrize("kwargs, message", [
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.01}, r"top_p must be in \(0, 1\]"),
    ({"temperature": -0.5}, "temperature must be >= 0"),
    ({"top_k": -1}, "top_k must be an integer >= 0"),
])
def test_generate_refuses_bad_sampling_settings(kwargs, message):
  model = _lm()
  with pytest.raises(ValueError, match=message):
    models.generate(model, _init(model), jnp.array([[1]]), 3, jax.random.key(0), **kwargs)
