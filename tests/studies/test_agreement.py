"""The agreement study's library: training steps, batched scoring against
unbatched recomputation, aggregation and the report layout."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import agreement as agreement_config
from rnn_research.studies import agreement
from rnn_research.studies import supervised
from rnn_research.data import agreement as data_lib
from rnn_research.data.corpus import DataError, Vocab
from rnn_research.models import LanguageModel


def tiny_config(**overrides):
  config = agreement_config.get_config("test")
  config.update(overrides)
  return config


def toy_data(n=24, seed=0):
  """Prefixes of 1..8 words whose label is set by the first word (one padded
  length, 8, so every step compiles once)."""
  rng = np.random.default_rng(seed)
  items = []
  for i in range(n):
    plural = bool(i % 2)
    words = ["dogs" if plural else "dog"] + list(
        rng.choice(["near", "the", "cat", "cats"], size=int(rng.integers(0, 8))))
    items.append(data_lib.AgreementItem(tuple(words), plural, i % 3))
  vocab = data_lib.build_vocab(items)
  return items, vocab, data_lib.encode(items, vocab)


@pytest.fixture(scope="module")
def classifier():
  """(model, params, vocab, encoded toy data), initialised once."""
  config = tiny_config()
  _, vocab, enc = toy_data()
  model = agreement.make_classifier(config.model, "lstm", len(vocab))
  params = jax.jit(model.init)(jax.random.key(0), enc.tokens[:8, :8],
                               enc.lengths[:8])["params"]
  return model, params, vocab, enc


# --- aggregation --------------------------------------------------------------


def test_error_by_group_counts_each_group_and_skips_uncounted_items():
  correct = np.array([1, 0, 1, 1, 0, 1], bool)
  groups = np.array([0, 0, 1, 1, -1, 2])
  assert agreement.error_by_group(correct, groups) == {
      0: {"error": 0.5, "count": 2}, 1: {"error": 0.0, "count": 2},
      2: {"error": 0.0, "count": 1}}


def test_markdown_puts_attractors_in_rows_and_cells_side_by_side():
  column = lambda e: {"error": e, "count": 30, "error_by_attractors": {
      1: {"error": e / 2, "count": 20}, 2: {"error": e, "count": 10}}}
  md = agreement.markdown_by_group({"lstm": column(0.1), "elman": column(0.3)},
                                   "T")
  lines = md.splitlines()
  assert lines[2] == "| attractors | items | lstm error | elman error |"
  assert lines[4] == "| 1 | 20 | 5.00% | 15.00% |"
  assert lines[6] == "| all | 30 | 10.00% | 30.00% |"


def test_cells_must_list_model_cell_first():
  config = tiny_config(cells="lstm,gru")
  assert agreement.cells_of(config) == ["lstm", "gru"]
  config.model.cell = "gru"
  with pytest.raises(ValueError, match="config.cells"):
    agreement.cells_of(config)


def test_config_variants_build_and_an_unknown_one_lists_them():
  for variant in agreement_config.VARIANTS:
    assert agreement_config.get_config(variant).model.hidden_size > 0
  with pytest.raises(ValueError, match="synthetic, linzen, lm, test"):
    agreement_config.get_config("nope")


# --- number prediction ----------------------------------------------------------


def test_train_step_changes_every_parameter_and_ignores_padding_rows(classifier):
  model, params, _, enc = classifier
  batch = agreement.make_batch(enc, np.arange(5), 8, "right")  # 3 padding rows
  assert batch.weights.tolist() == [1] * 5 + [0] * 3
  tx = optax.adam(1e-2)
  step = jax.jit(supervised.make_train_step(
      functools.partial(agreement.classifier_loss, model), tx))
  state = supervised.init_state(params, tx)
  new_state, m = step(state, batch, jax.random.key(1))
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params,
                         new_state.params)
  assert all(jax.tree.leaves(changed))
  assert float(m["sums"]["count"]) == 5.0
  # What the padding rows hold changes nothing.
  other = batch._replace(tokens=batch.tokens.copy(), labels=batch.labels.copy())
  other.tokens[5:] = 3
  other.labels[5:] = 1 - other.labels[5:]
  _, m2 = step(state, other, jax.random.key(1))
  np.testing.assert_allclose(m["sums"]["loss"], m2["sums"]["loss"], rtol=1e-6)
  np.testing.assert_allclose(m["norms"]["l2_grads"], m2["norms"]["l2_grads"], rtol=1e-6)


def test_batched_prediction_equals_each_item_alone(classifier):
  model, params, _, enc = classifier
  batched = agreement.predict_logits(model, params, enc, batch_size=8)
  # Items shorter than the longest in their batch, so padding and masking are
  # exercised; all of one length, so the unbatched reference compiles once.
  length = int(np.median(enc.lengths))
  picks = np.flatnonzero(enc.lengths == length)[:3]
  alone = jax.jit(model.apply)({"params": params}, enc.tokens[picks, :length],
                               enc.lengths[picks])
  np.testing.assert_allclose(batched[picks], alone, rtol=1e-5, atol=1e-6)


def test_training_learns_a_number_cue_and_keeps_the_best_dev_params(classifier,
                                                                     tmp_path):
  config = tiny_config(max_steps=60, num_epochs=20, eval_every_steps=20,
                       patience=0)
  config.optim.learning_rate = 0.03
  _, vocab, enc = toy_data()
  model, params, summary, _ = agreement.train_classifier(
      config, "lstm", len(vocab), {"train": enc, "valid": enc}, tmp_path)
  dev = agreement.evaluate_classifier(model, params, enc, 16, "right")
  assert summary["train_steps"] == 60
  assert dev["error"] == summary["valid_error"] == 0.0


# --- language-model agreement -----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm():
  vocab = Vocab.build("<eos> the dog dogs runs run near cat cats is are".split())
  model = LanguageModel(vocab_size=len(vocab), cell="lstm", hidden_size=8,
                        num_layers=1)
  params = jax.jit(model.init)(jax.random.key(0),
                               jnp.zeros((1, 3), jnp.int32))["params"]
  return model, params, vocab


def next_word_logprobs(model, params, vocab, words):
  """log p(word t+1 | words up to t) for every t: (T, V), from one unpadded,
  unbatched pass (the model is causal)."""
  ids = jnp.asarray(vocab.encode(words))[None]  # (1, T)
  logits, _ = model.apply({"params": params}, ids)
  return np.asarray(jax.nn.log_softmax(logits[0]))


def test_lm_agreement_matches_unbatched_log_probs_and_skips_unknown_forms(tiny_lm):
  model, params, vocab = tiny_lm
  items = [
      data_lib.AgreementItem(("the", "dog"), False, 0, "runs", "run"),
      data_lib.AgreementItem(("the", "dogs", "near", "the", "cat"), True, 1,
                             "are", "is"),
      data_lib.AgreementItem(("the", "dog"), False, 0, "sleeps", "sleep"),
  ]
  scores = agreement.lm_agreement(model, params, vocab, items, batch_size=8)
  assert scores["scored"].tolist() == [True, True, False]
  for i in (0, 1):
    lp = next_word_logprobs(model, params, vocab, ["<eos>", *items[i].prefix])[-1]
    expected = [lp[vocab.index(items[i].correct)], lp[vocab.index(items[i].wrong)]]
    np.testing.assert_allclose(
        [scores["logp_correct"][i], scores["logp_wrong"][i]], expected,
        rtol=1e-5)
    assert scores["correct"][i] == (expected[0] > expected[1])
  assert not scores["correct"][2]


def test_sentence_logprobs_sum_every_word_and_the_end(tiny_lm):
  model, params, vocab = tiny_lm
  sentences = [("the", "dog", "runs"), ("the", "cats", "near", "the", "dog", "are")]
  got = agreement.sentence_logprobs(model, params, vocab, sentences, batch_size=8)
  for s, value in zip(sentences, got):
    seq = ["<eos>", *s, "<eos>"]
    lp = next_word_logprobs(model, params, vocab, seq[:-1])  # (T, V)
    expected = sum(lp[t, vocab.index(w)] for t, w in enumerate(seq[1:]))
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_minimal_pairs_accuracy_by_condition(tiny_lm):
  model, params, vocab = tiny_lm
  pairs = [data_lib.MinimalPair("simple", ("the", "dog", "runs"), ("the", "dog", "run")),
           data_lib.MinimalPair("pp", ("the", "dog", "near", "the", "cats", "runs"),
                                ("the", "dog", "near", "the", "cats", "run")),
           data_lib.MinimalPair("oov", ("a", "wug", "runs"), ("a", "wug", "run")),
           data_lib.MinimalPair("oov", ("the", "wug"), ("the", "blick"))]
  result = agreement.score_minimal_pairs(model, params, vocab, pairs, batch_size=8)
  good, bad = result["logp_grammatical"], result["logp_ungrammatical"]
  expected = (good > bad) & np.array([True, True, True, False])
  assert result["unresolvable"] == 1
  assert result["accuracy"] == pytest.approx(expected.mean())
  assert result["by_condition"]["oov"]["count"] == 2
  assert result["by_condition"]["simple"]["accuracy"] == float(expected[0])


def test_lm_agreement_refuses_a_start_token_outside_the_vocabulary(tiny_lm):
  model, params, vocab = tiny_lm
  item = data_lib.AgreementItem(("the",), False, 0, "runs", "run")
  with pytest.raises(DataError, match="<s>"):
    agreement.lm_agreement(model, params, vocab, [item], bos="<s>")


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "lru"])
def test_linear_recurrence_cells_train_and_read_only_the_real_prefix(cell, tmp_path):
  """The agreement study's classifier by cell name: training runs, and batched
  (padded) predictions equal each item alone, so lengths masking holds."""
  config = tiny_config(max_steps=3, num_epochs=1, eval_every_steps=0, patience=0)
  _, vocab, enc = toy_data()
  model, params, summary, _ = agreement.train_classifier(
      config, cell, len(vocab), {"train": enc, "valid": enc}, tmp_path)
  assert summary["train_steps"] == 3
  batched = agreement.predict_logits(model, params, enc, batch_size=8)
  length = int(np.median(enc.lengths))
  picks = np.flatnonzero(enc.lengths == length)[:3]
  alone = jax.jit(model.apply)({"params": params}, enc.tokens[picks, :length],
                               enc.lengths[picks])
  np.testing.assert_allclose(batched[picks], alone, rtol=1e-5, atol=1e-5)
