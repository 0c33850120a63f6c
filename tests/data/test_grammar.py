"""The synthetic grammar: determinism, exact probabilities, agreement items."""

import collections
import dataclasses
import math

import numpy as np
import pytest

from rnn_research.data import grammar as grammar_lib
from rnn_research.data.corpus import DataError
from rnn_research.data.grammar import Grammar

# Every rule, a shared determiner, adjectives, both verb kinds, one level of
# nesting; 14,520 derivations.
TINY = Grammar(
    nouns=(("dog", "dogs"),), adjectives=("big",),
    intransitive_verbs=(("walks", "walk"),),
    transitive_verbs=(("sees", "see"),), prepositions=("near",),
    singular_determiners=(("the", 0.6), ("a", 0.4)),
    plural_determiners=(("the", 1.0),), adjective_count_probs=(0.6, 0.4),
    modifier_probs=(0.5,), p_transitive=0.3, p_subject_plural=0.4,
    p_embedded_plural=0.7)


def test_tiny_grammar_probabilities_sum_to_one_with_one_derivation_each():
  derivations = list(TINY.enumerate_derivations())
  assert len(derivations) == 14_520
  # Distinct token sequences: no sentence has two derivations.
  assert len({d.tokens for d in derivations}) == len(derivations)
  assert math.isclose(math.fsum(math.exp(d.log_prob) for d in derivations),
                      1.0, abs_tol=1e-9)
  for d in derivations[::7]:
    assert math.isclose(TINY.log_prob(d.tokens), d.log_prob, abs_tol=1e-9)


def test_log_prob_matches_sampler_on_default_grammar():
  g = Grammar()
  for s in g.sample_many(np.random.default_rng(0), 2000):
    assert math.isclose(g.log_prob(s.tokens), s.log_prob, abs_tol=1e-9)
    assert g.log_prob(s.tokens[:-1]) == g.log_prob(s.tokens)  # <eos> optional


def test_log_prob_is_minus_inf_outside_the_language():
  g = Grammar()
  assert g.log_prob("the dogs walks <eos>".split()) == -math.inf  # agreement
  assert g.log_prob("the dog walks".split()) > -math.inf
  assert g.log_prob("the dog sees <eos>".split()) == -math.inf  # no object
  assert g.log_prob("the dog".split()) == -math.inf
  assert g.log_prob("the dog walks the cat".split()) == -math.inf
  assert g.log_prob("a dogs walk".split()) == -math.inf  # determiner number
  assert g.log_prob("the unicorn walks".split()) == -math.inf
  # Modifiers at depth 1 are allowed by default, beyond max_depth they are not.
  shallow = dataclasses.replace(g, modifier_probs=(0.5,))
  nested = "the dog near the cat near the boy walks".split()
  assert g.log_prob(nested) > -math.inf
  assert shallow.log_prob(nested) == -math.inf


def test_log_prob_of_simplest_sentence_by_hand():
  g = Grammar()
  # plural subject, 'the', no adjective, 'dogs', no modifier, intransitive
  # 'walk' (1 of 6 verbs).
  expected = (math.log(0.5) + math.log(0.6) + math.log(0.7) - math.log(14) +
              math.log(0.5) + math.log(0.5) - math.log(6))
  assert math.isclose(g.log_prob("the dogs walk <eos>".split()), expected)


def test_same_seed_same_corpus_and_splits_independent():
  a = grammar_lib.generate_corpus(7, 200, 50, 50)
  b = grammar_lib.generate_corpus(7, 200, 50, 50)
  c = grammar_lib.generate_corpus(8, 200, 50, 50)
  assert a == b
  assert a["train"] != c["train"]
  # More training sentences leave valid and test as they were.
  d = grammar_lib.generate_corpus(7, 400, 50, 50)
  assert d["valid"] == a["valid"] and d["test"] == a["test"]
  assert a["train"][-1] == "<eos>" and a["train"].count("<eos>") == 200


def test_default_grammar_size_and_sentence_length():
  g = Grammar()
  assert 30 <= len(g.words()) <= 100
  sentences = g.sample_many(np.random.default_rng(1), 5000)
  mean_length = np.mean([len(s.tokens) for s in sentences])
  assert 8 <= mean_length <= 12
  assert {w for s in sentences for w in s.tokens} <= set(g.words())


def test_entropy_per_token_is_mean_negative_log_prob_per_token():
  g = Grammar()
  sentences = g.sample_many(np.random.default_rng(2), 300)
  expected = -sum(s.log_prob for s in sentences) / sum(
      len(s.tokens) for s in sentences)
  tokens = [t for s in sentences for t in s.tokens]
  got = grammar_lib.entropy_per_token(grammar_lib.split_sentences(tokens))
  assert math.isclose(got, expected, rel_tol=1e-12)
  with pytest.raises(DataError, match="not in the grammar"):
    grammar_lib.entropy_per_token([["the", "dogs", "walks", "<eos>"]])


def test_sentence_agreement_info_is_consistent():
  g = Grammar()
  for s in g.sample_many(np.random.default_rng(3), 500):
    assert s.tokens[s.verb_index] == s.correct_verb
    assert s.tokens[s.subject_index] in {w for p in g.nouns for w in p}
    assert s.distance == s.verb_index - s.subject_index >= 1
    wrong = list(s.tokens)
    wrong[s.verb_index] = s.wrong_verb
    assert g.log_prob(wrong) == -math.inf


def count_attractors(g, item):
  """Recounts, from the words alone, the nouns of the other number."""
  number = {w: n for pair in g.nouns for n, w in enumerate(pair)}
  subject = item.prefix[len(item.prefix) - item.distance]
  between = [number[w] for w in item.prefix[len(item.prefix) - item.distance + 1:]
             if w in number]
  return sum(n != number[subject] for n in between), len(between)


@pytest.mark.parametrize("k", range(5))
def test_agreement_items_have_exactly_k_attractors(k):
  g = Grammar()
  items = grammar_lib.agreement_items(0, k, 60)
  transitive = {w for pair in g.transitive_verbs for w in pair}
  singular_verbs = {p[0] for p in g.transitive_verbs + g.intransitive_verbs}
  assert len(items) == 60
  assert collections.Counter(i.label for i in items) == {"singular": 30,
                                                         "plural": 30}
  for item in items:
    assert (item.n_attractors, item.n_intervening_nouns) == (k, k)
    assert count_attractors(g, item) == (k, k)
    # Completed with the correct verb the prefix is a sentence of the
    # grammar (the items come from its support); with the wrong verb not.
    object_np = ("the", "dog") if item.correct_verb in transitive else ()
    for verb, ok in ((item.correct_verb, True), (item.wrong_verb, False)):
      lp = g.log_prob(item.prefix + (verb,) + object_np)
      assert (lp > -math.inf) == ok
    assert item.label == ("singular" if item.correct_verb in singular_verbs
                          else "plural")


def test_agreement_items_by_distance_and_determinism():
  items = grammar_lib.agreement_items(1, None, 40, distance=6)
  assert all(i.distance == 6 for i in items)
  assert items == grammar_lib.agreement_items(1, None, 40, distance=6)
  assert items != grammar_lib.agreement_items(2, None, 40, distance=6)


def test_agreement_items_reject_impossible_requests():
  with pytest.raises(DataError, match="outside 0..4"):
    grammar_lib.agreement_items(0, 5, 10)
  with pytest.raises(DataError, match="could not generate"):
    grammar_lib.agreement_items(0, 0, 3, distance=12, max_tries_per_item=20)


def test_analyse_accepts_every_sampled_sentence_and_its_agreement():
  g = Grammar()
  for s in g.sample_many(np.random.default_rng(3), 300):
    assert g.analyse(s.tokens) == (True, True)


def test_analyse_rejects_corrupted_sentences_and_tells_agreement_apart():
  g = Grammar()
  checked = 0
  for s in g.sample_many(np.random.default_rng(4), 200):
    toks = list(s.tokens)
    wrong_verb = toks[:s.verb_index] + [s.wrong_verb] + toks[s.verb_index + 1:]
    # Only the main verb's number is wrong: not generable, parses, disagrees.
    assert g.analyse(wrong_verb) == (False, False)
    no_noun = toks[:s.subject_index] + toks[s.subject_index + 1:]
    assert g.analyse(no_noun) == (False, None)
    assert g.analyse(toks[:s.verb_index]) == (False, None)  # no verb
    assert g.analyse(toks[:-1] + ["dog", "<eos>"])[0] is False  # trailing word
    checked += 1
  assert checked == 200


def test_left_to_right_tag_posteriors_equal_brute_force_over_every_derivation():
  """The exact cap: for every prefix of every TINY sentence, the probability of
  the most probable tag of its last word, summed over all derivations that
  start with that prefix, equals the closed form."""
  tag_mass = collections.defaultdict(lambda: collections.defaultdict(float))
  derivations = list(TINY.enumerate_derivations())
  for d in derivations:
    words, tags = d.tokens[:-1], grammar_lib.sentence_tags(d.tokens, TINY)
    for t in range(len(words)):
      tag_mass[words[:t + 1]][tags[t]] += math.exp(d.log_prob)
  uncertain = 0
  for d in derivations[::3]:
    words = d.tokens[:-1]
    closed = grammar_lib.left_to_right_tag_posteriors(d.tokens, TINY)
    for t in range(len(words)):
      mass = tag_mass[words[:t + 1]]
      brute = max(mass.values()) / math.fsum(mass.values())
      assert math.isclose(closed[t], brute, abs_tol=1e-9), (words[:t + 1], dict(mass))
      uncertain += brute < 1
  assert uncertain > 1000  # 'the' and the adjectives after it


def test_tags_of_determiners_and_adjectives_come_from_the_noun_to_their_right():
  tags = grammar_lib.sentence_tags(
      "the big dogs near a cat see the dog <eos>".split())
  assert tags == ("DET.PL", "ADJ.PL", "NOUN.PL", "PREP", "DET.SG", "NOUN.SG",
                  "VERB.PL", "DET.SG", "NOUN.SG")
  with pytest.raises(DataError, match="inside a noun phrase"):
    grammar_lib.sentence_tags("the dogs see the".split())


def test_left_to_right_cap_is_below_one_and_the_tasks_are_deterministic():
  a = grammar_lib.tagging_sentences(3, 5, 5, 400)
  assert a == grammar_lib.tagging_sentences(3, 5, 5, 400)
  cap = grammar_lib.left_to_right_tag_cap([w for w, _ in a["test"]])
  assert 0.8 < cap < 0.95  # about one word in four is 'the' or its adjectives
  c = grammar_lib.classification_sentences(3, 5, 5, 40)
  assert {label for _, label in c["test"]} == {"singular", "plural"}
