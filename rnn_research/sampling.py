"""Text from a language model: prompts, seeded samples, and what they show.

A word model reads its prompt as whitespace-separated words (a word it never
saw becomes ``<unk>``) and writes words, a line break for each ``<eos>``. A
character model reads its prompt as raw text, character by character, and
writes characters; a prompt character absent from its vocabulary is refused
with an error naming it (mapping it to ``<unk>`` would condition the model
on a token it has only seen for characters that did not occur in training).

``samples_markdown`` is the samples section a finished run writes into its
results.md; ``grammar_report`` samples sentences from a model of the
synthetic grammar and asks the grammar (:mod:`rnn_research.data.grammar`)
which of them it can generate and whether their verbs agree.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnn_research import metrics as metrics_lib
from rnn_research import models
from rnn_research.data import corpus as corpus_lib

# Sample lengths when the config says 0: a few lines of text either way.
DEFAULT_LENGTH = {"char": 300, "word": 30}


def encode_prompt(vocab: corpus_lib.Vocab, unit: str, prompt: str) -> np.ndarray:
  """Token ids (P,) of ``prompt``; an empty prompt is one start token.

  The start token is ``<eos>`` for words (a sentence begins) and a newline for
  characters (a line begins), when the vocabulary has one.

  Raises:
    ValueError: for a character model, prompt characters not in the
      vocabulary (all of them are named).
  """
  if unit == "char":
    chars = list(prompt) or (["\n"] if "\n" in vocab else [vocab.tokens[0]])
    unseen = sorted({c for c in chars if c not in vocab or c == vocab.unk})
    if unseen:
      raise ValueError(
          f"prompt characters not in the model's vocabulary of {len(vocab)}: "
          f"{', '.join(repr(c) for c in unseen)}")
    return vocab.encode(chars)
  words = prompt.split() or [vocab.tokens[vocab.eos_id] if vocab.eos_id >= 0
                             else vocab.tokens[0]]
  return vocab.encode(words)


def decode(vocab: corpus_lib.Vocab, unit: str, ids: Sequence[int]) -> str:
  """Text of token ids: characters joined, or words with ``<eos>`` as a line break."""
  tokens = vocab.decode(ids)
  if unit == "char":
    return "".join(tokens)
  lines, line = [], []
  for t in tokens:
    if t == vocab.eos:
      lines.append(" ".join(line))
      line = []
    else:
      line.append(t)
  return "\n".join(lines + [" ".join(line)])


def check_request(num_tokens: int, num_samples: int, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0) -> None:
  """Raises ValueError for a sampling request that cannot be served."""
  if num_samples <= 0:
    raise ValueError(f"num_samples must be positive, got {num_samples}")
  if num_tokens <= 0:
    raise ValueError(f"num_tokens must be positive, got {num_tokens}")
  models.check_sampling(temperature, top_k, top_p)


def sample_ids(model, params, prompt_ids: np.ndarray, num_tokens: int,
               num_samples: int, seed: int, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
  """``num_samples`` continuations (S, num_tokens) of one prompt, seeded."""
  check_request(num_tokens, num_samples, temperature, top_k, top_p)
  prompt = jnp.asarray(prompt_ids, jnp.int32)[None].repeat(num_samples, axis=0)  # (S, P)
  sample = jax.jit(lambda params, prompt, rng: models.generate(
      model, params, prompt, num_tokens, rng, temperature, top_k, top_p))
  return np.asarray(sample(params, prompt, jax.random.key(seed)))


def sample_texts(model, params, vocab: corpus_lib.Vocab, unit: str, prompt: str,
                 num_tokens: int, num_samples: int = 1, seed: int = 0,
                 temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0) -> list[str]:
  """The sampled continuations of ``prompt``, as text (without the prompt)."""
  ids = encode_prompt(vocab, unit, prompt)
  rows = sample_ids(model, params, ids, num_tokens, num_samples, seed,
                    temperature, top_k, top_p)
  return [decode(vocab, unit, row) for row in rows.tolist()]


def samples_markdown(model, params, vocab: corpus_lib.Vocab, unit: str,
                     samples_config: Any) -> str:
  """results.md's samples: ``num`` seeded samples per temperature, no prompt.

  ``samples_config`` has ``temperatures`` (empty: no section), ``num``,
  ``length`` (0: :data:`DEFAULT_LENGTH`) and ``seed``.
  """
  temperatures = tuple(samples_config.get("temperatures", ()) or ())
  num = int(samples_config.get("num", 0) or 0)
  if not temperatures or num <= 0:
    return ""
  length = int(samples_config.get("length", 0) or 0) or DEFAULT_LENGTH[unit]
  seed = int(samples_config.get("seed", 0) or 0)
  what = "characters" if unit == "char" else "words"
  lines = ["## Samples", "",
           f"From the best checkpoint, starting from a "
           f"{'newline' if unit == 'char' else 'sentence start'}; {num} per "
           f"temperature, {length} {what} each, seed {seed}. Rerun with "
           f"`python -m experiments.generate --workdir=<this run> --temperature=T "
           f"--num_tokens={length} --num_samples={num} --seed={seed}`.", ""]
  for t in temperatures:
    lines.append(f"Temperature {t:g}:")
    lines.append("")
    for text in sample_texts(model, params, vocab, unit, "", length, num, seed,
                             float(t)):
      lines += ["```", text.rstrip("\n"), "```", ""]
  return "\n".join(lines)


def grammar_report(model, params, vocab: corpus_lib.Vocab, num_sentences: int = 1000,
                   num_shown: int = 3, seed: int = 0, max_tokens: int = 60,
                   grammar=None) -> tuple[str, dict]:
  """(markdown, figures): what a model of the synthetic grammar generates.

  ``num_sentences`` sentences are sampled at temperature 1 from a sentence
  start, each up to its first ``<eos>`` (one that has none within
  ``max_tokens`` is unfinished, so not generable). The grammar says which it
  can generate and whether their verbs agree with their subjects
  (:meth:`Grammar.analyse`).
  """
  from rnn_research.data import grammar as grammar_lib  # pylint: disable=g-import-not-at-top
  g = grammar or grammar_lib.Grammar()
  rows = sample_ids(model, params, encode_prompt(vocab, "word", ""), max_tokens,
                    num_sentences, seed)
  sentences = []
  for row in rows.tolist():
    tokens = vocab.decode(row)
    sentences.append(tokens[:tokens.index(vocab.eos) + 1] if vocab.eos in tokens
                     else tokens)
  verdicts = [g.analyse(s) if s and s[-1] == vocab.eos else (False, None)
              for s in sentences]
  generable = sum(ok for ok, _ in verdicts)
  parsed = [agrees for _, agrees in verdicts if agrees is not None]
  figures = {"sampled_sentences": num_sentences, "generable": generable,
             "generable_share": generable / num_sentences,
             "agreement_parsed": len(parsed), "agreeing": sum(parsed),
             "agreement_share": sum(parsed) / len(parsed) if parsed else None}
  table = metrics_lib.markdown_table(
      ["sampled sentences", "the grammar can generate", "verbs parse",
       "all verbs agree with their subjects"],
      [[num_sentences, f"{generable} ({100 * figures['generable_share']:.1f}%)",
        len(parsed), f"{sum(parsed)} ({100 * figures['agreement_share']:.1f}%)"
        if parsed else "-"]])
  shown = [" ".join(t for t in s if t != vocab.eos) for s in sentences[:num_shown]]
  lines = ["## What the model generates", "",
           f"Sentences sampled at temperature 1 (seed {seed}), each from a "
           "sentence start to its first `<eos>`:", ""]
  lines += [f"{i + 1}. {s}" for i, s in enumerate(shown)]
  lines += ["", f"Of {num_sentences} such sentences, checked by the grammar "
            "itself: 'can generate' is a nonzero probability under the true "
            "process; 'verbs parse' counts the sentences that form a sentence "
            "when verb number is ignored, and of those, how many have every "
            "verb in the number of its subject.", "", table]
  return "\n".join(lines), figures
