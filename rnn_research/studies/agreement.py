"""The agreement study: number prediction and language-model agreement,
error by number of attractors (Linzen, Dupoux & Goldberg 2016).

Two tasks, chosen by ``config.task``:

* ``number_prediction``: a :class:`~rnn_research.models.SentenceClassifier`
  (final pooling, one logit) reads the words before the verb and predicts the
  verb's number; binary
  cross-entropy, the optax chain of :mod:`rnn_research.optim`, early stopping
  on dev error. Several cells (``config.cells``) are trained on the same data
  and reported side by side.
* ``lm``: a trained :class:`~rnn_research.models.LanguageModel` (restored from
  a language-model workdir) passes an item when it gives the correct verb form
  a higher probability than the wrong one after the prefix (Linzen et al.'s
  language-model objective; Gulordava et al. 2018), and a minimal pair when it
  gives the grammatical sentence the higher probability (Marvin & Linzen 2018).

Everything is summarised by :func:`error_by_group`: for each number of
attractors, the error rate and the item count. :func:`train_and_evaluate`
writes ``results.json``, ``results.md`` (the paper's layout: rows by number of
attractors, a column per cell) and ``error_by_attractors.png``.

Each cell is trained by :func:`rnn_research.studies.supervised.fit`, with
its checkpoints in ``checkpoints/<cell>/{latest,best}``, and its figures are
written to ``cells/<cell>.json`` as soon as it is tested. Rerunning the same
command with the same workdir reuses every cell finished there, resumes a
stopped cell from its newest checkpoint (ending with the parameters and
figures of a run that never stopped) and trains the others; SIGTERM/SIGINT
save a checkpoint and end the run. A workdir that holds another run's config
or vocabulary is refused.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from rnn_research import checkpoint as ckpt_lib
from rnn_research import config_schema
from rnn_research import metrics as metrics_lib
from rnn_research import optim as optim_lib
from rnn_research.studies import lm
from rnn_research.studies import supervised
from rnn_research.data import agreement as data_lib
from rnn_research.data import batching
from rnn_research.data import fetch
from rnn_research.data.corpus import DataError, Vocab
from rnn_research.models import LanguageModel, SentenceClassifier

Array = jax.Array
TASKS = ("number_prediction", "lm")
SOURCES = ("linzen_simple", "linzen_tsv", "synthetic")


# ---------------------------------------------------------------------------
# Aggregation.


def error_by_group(correct: np.ndarray, groups: np.ndarray,
                   ignore: int = -1) -> dict[int, dict[str, float | int]]:
  """{group: {"error": rate, "count": items}} over items whose group is not
  ``ignore`` (e.g. attractors not counted under mixed intervention)."""
  correct, groups = np.asarray(correct, bool), np.asarray(groups)
  out = {}
  for g in np.unique(groups):
    if g == ignore:
      continue
    sel = groups == g
    out[int(g)] = {"error": float(1.0 - correct[sel].mean()),
                   "count": int(sel.sum())}
  return out


def accuracy_by_condition(correct: np.ndarray, conditions: Sequence[str]
                          ) -> dict[str, dict[str, float | int]]:
  """{condition: {"accuracy": rate, "count": items}}, conditions in first-seen
  order."""
  correct = np.asarray(correct, bool)
  conditions = np.asarray(conditions, dtype=object)
  out = {}
  for c in dict.fromkeys(conditions.tolist()):
    sel = conditions == c
    out[str(c)] = {"accuracy": float(correct[sel].mean()),
                   "count": int(sel.sum())}
  return out


def summarize(correct: np.ndarray, n_attractors: np.ndarray,
              distance: np.ndarray | None = None) -> dict[str, Any]:
  """Overall error, error by attractors and (where known) by distance."""
  correct = np.asarray(correct, bool)
  out = {"error": float(1.0 - correct.mean()) if correct.size else float("nan"),
         "count": int(correct.size),
         "error_by_attractors": error_by_group(correct, n_attractors)}
  if distance is not None and (np.asarray(distance) >= 0).any():
    out["error_by_distance"] = error_by_group(correct, distance)
  return out


# ---------------------------------------------------------------------------
# Number prediction.


def make_classifier(model_config: ml_collections.ConfigDict, cell: str,
                    vocab_size: int) -> SentenceClassifier:
  """The classifier of ``config.model`` with ``cell`` (one of ``config.cells``):
  the state after the prefix's last word (``final`` pooling) -> one logit of
  'plural'."""
  return SentenceClassifier(
      vocab_size=vocab_size, num_classes=1, pooling="final", cell=cell,
      hidden_size=model_config.hidden_size,
      embed_size=model_config.embed_size,
      num_layers=model_config.num_layers,
      bidirectional=model_config.bidirectional,
      dropout_rate=model_config.dropout_rate,
      connection=model_config.get("connection", "none"),
      init_scale=model_config.get("init_scale", 0.0),
      unroll=model_config.get("unroll", 1))


class Batch(NamedTuple):
  """A fixed-size batch: rows past the real items have weight 0."""

  tokens: np.ndarray  # (B, T) int32
  lengths: np.ndarray  # (B,) int32
  labels: np.ndarray  # (B,) float32, 1 = plural
  weights: np.ndarray  # (B,) float32


def make_batch(data: data_lib.EncodedItems, idx: np.ndarray, batch_size: int,
               padding: str) -> Batch:
  """Rows ``idx`` of ``data``, padded to ``batch_size`` rows so that every
  batch has one shape per prefix-length bucket (``jax.jit`` compiles once per
  bucket, not once per batch)."""
  n = len(idx)
  idx = np.concatenate([idx, np.full(batch_size - n, idx[0])])  # (B,)
  tokens, lengths = batching.pad_batch(data.tokens[idx], data.lengths[idx],
                                       padding)
  weights = (np.arange(batch_size) < n).astype(np.float32)
  labels = np.maximum(data.labels[idx], 0).astype(np.float32)
  return Batch(tokens, lengths, labels, weights)


def classifier_loss(model, params, batch: Batch, rng: Array,
                    train: bool) -> tuple[Array, dict[str, Array]]:
  """The weighted binary cross-entropy of one batch, as ``supervised.fit`` asks.

  Returns the objective (the mean over real items) and metric *sums* (loss,
  errors) with their denominator (count), so that averages over many steps
  are exact.
  """
  logits = model.apply({"params": params}, batch.tokens, batch.lengths,
                       deterministic=not train, rngs={"dropout": rng})
  losses = optax.sigmoid_binary_cross_entropy(logits, batch.labels)  # (B,)
  count = batch.weights.sum()
  loss = (losses * batch.weights).sum() / jnp.maximum(count, 1.0)
  errors = ((logits > 0) != (batch.labels > 0.5)) * batch.weights
  return loss, {"loss": loss * count, "error": errors.sum(), "count": count}


_JITTED: dict[tuple[int, Callable], tuple[Any, Callable]] = {}


def jit_for(fn: Callable, model: Any) -> Callable:
  """``jax.jit(partial(fn, model))``, built once per model instance.

  A model cannot be a static argument of ``jax.jit``: a restored one may hold
  unhashable fields (e.g. a ``cell_options`` dict). The cache keeps the model
  alive, so its ``id`` is never reused by another object.
  """
  key = (id(model), fn)
  if key not in _JITTED:
    _JITTED[key] = (model, jax.jit(functools.partial(fn, model)))
  return _JITTED[key][1]


def _logits(model: SentenceClassifier, params, tokens: Array, lengths: Array
            ) -> Array:
  return model.apply({"params": params}, tokens, lengths, deterministic=True)


def predict_logits(model: SentenceClassifier, params,
                   data: data_lib.EncodedItems, batch_size: int,
                   padding: str = "right") -> np.ndarray:
  """Plural logits (N,) for every item, in the items' order."""
  out = np.zeros(len(data), np.float32)
  logits_fn = jit_for(_logits, model)
  for idx in batching.batch_indices(data.lengths, batch_size):
    b = make_batch(data, idx, batch_size, padding)
    out[idx] = np.asarray(logits_fn(params, b.tokens, b.lengths))[:len(idx)]
  return out


def evaluate_classifier(model, params, data: data_lib.EncodedItems,
                        batch_size: int, padding: str) -> dict[str, float]:
  logits = predict_logits(model, params, data, batch_size, padding)
  labels = data.labels.astype(np.float32)
  loss = optax.sigmoid_binary_cross_entropy(logits, labels)
  return {"error": float(((logits > 0) != (labels > 0.5)).mean()),
          "loss": float(np.mean(loss))}


def train_classifier(config: ml_collections.ConfigDict, cell: str, vocab_size: int,
                     sets: Mapping[str, data_lib.EncodedItems], workdir: str | pathlib.Path,
                     split_prefix: str = "") -> tuple[Any, Any, dict, dict]:
  """Trains (or resumes) one classifier with ``supervised.fit``.

  ``sets`` holds ``train`` and ``valid`` and may hold ``test`` and
  ``distance``, which are scored with the best parameters at the end. The
  checkpoints are in ``workdir/checkpoints/<cell>``, so a stopped cell
  resumes where it stopped. Dev error is measured every
  ``config.eval_every_steps`` steps (0: once per epoch); training stops after
  ``config.patience`` measurements without a lower dev error (ties broken by
  dev loss), after ``config.num_epochs``, or at ``config.max_steps``.

  Returns (model, best params, training summary, {set: figures}): the test
  set's figures are :func:`summarize`'s, the distance set's its
  ``error_by_distance``.
  """
  train = sets["train"]
  model = make_classifier(config.model, cell, vocab_size)
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))
  padding, batch_size = config.data.padding, config.batch_size
  example = make_batch(train, np.arange(min(len(train), batch_size)), batch_size, padding)
  # Jitted: an eager init runs the scan op by op (several times slower).
  params = jax.jit(model.init)(init_rng, example.tokens, example.lengths)["params"]
  steps_per_epoch = -(-len(train) // batch_size)
  options = supervised.Options.from_config(config, monitor=("error", "loss"))
  tx = optim_lib.make_optimizer(config.optim, steps_per_epoch,
                                options.total_steps(steps_per_epoch))
  logging.info("%s: %d parameters, %d training items, %d steps per epoch", cell,
               sum(x.size for x in jax.tree.leaves(params)), len(train), steps_per_epoch)

  def train_batches(epoch):  # the order of an epoch depends on (seed, epoch) only
    rng = np.random.default_rng([config.seed, epoch])
    return [make_batch(train, idx, batch_size, padding)
            for idx in batching.batch_indices(train.lengths, batch_size, rng)]

  def evaluate(params, split):
    data = sets[split]
    if split == "valid":
      return evaluate_classifier(model, params, data, config.eval_batch_size, padding)
    logits = predict_logits(model, params, data, config.eval_batch_size, padding)
    correct = (logits > 0) == (data.labels == 1)
    if split == "distance":
      return {"error": float(1.0 - correct.mean()), "count": int(correct.size),
              "error_by_distance": error_by_group(correct, data.distance)}
    return summarize(correct, data.n_attractors,
                     None if "distance" in sets else data.distance)

  workdir = pathlib.Path(workdir)
  result = supervised.fit(
      workdir, params=params, tx=tx, loss_fn=functools.partial(classifier_loss, model),
      train_batches=train_batches, evaluate=evaluate, options=options, rng=dropout_rng,
      checkpoint_dir=workdir / "checkpoints" / cell,
      identity={"cell": cell, "vocab_size": vocab_size, "train_items": len(train)},
      log_fields={"cell": cell}, split_prefix=split_prefix,
      final_splits=[s for s in ("test", "distance") if s in sets])
  if result.preempted:
    return model, None, {"preempted": True, "train_steps": result.steps}, {}
  summary = {"valid_error": result.best["error"], "valid_loss": result.best["loss"],
             "best_step": result.best["step"], "train_steps": result.steps,
             "stopped_early": result.stopped_early,
             "train_seconds": result.train_seconds, "num_params": result.num_params,
             "skipped_updates": result.skipped}
  return model, result.params, summary, result.figures


# ---------------------------------------------------------------------------
# Language-model agreement.


def _variables(params) -> dict:
  """Accepts either the 'params' collection or a full variables dict."""
  if isinstance(params, Mapping) and "params" in params:
    return params
  return {"params": params}


def _candidate_logprobs(model: LanguageModel, variables, tokens: Array,
                        positions: Array, candidates: Array) -> Array:
  """log p(candidate | tokens[:position + 1]) for each row: (B, K)."""
  batch = tokens.shape[0]
  logits, _ = model.apply(variables, tokens, model.initial_carries(batch),
                          deterministic=True)  # (B, T, V)
  last = logits[jnp.arange(batch), positions]  # (B, V): after the prefix
  logp = jax.nn.log_softmax(last.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, candidates, axis=1)  # (B, K)


def _sequence_logprobs(model: LanguageModel, variables, inputs: Array,
                       targets: Array, mask: Array) -> Array:
  """Sum over t of log p(targets[t] | inputs[:t + 1]) where mask: (B,)."""
  logits, _ = model.apply(variables, inputs,
                          model.initial_carries(inputs.shape[0]),
                          deterministic=True)  # (B, T, V)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  tok = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (B, T)
  return (tok * mask).sum(axis=1)


def _context(words: Sequence[str], bos: str, lowercase: bool) -> list[str]:
  words = [w.lower() for w in words] if lowercase else list(words)
  return ([bos] if bos else []) + words


def _pad_rows(rows: Sequence[np.ndarray], batch_size: int, multiple: int = 8
              ) -> np.ndarray:
  width = -(-max(len(r) for r in rows) // multiple) * multiple
  out = np.zeros((batch_size, width), np.int32)  # (B, T)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return out


def lm_agreement(model: LanguageModel, params, vocab: Vocab,
                 items: Sequence[data_lib.AgreementItem], batch_size: int = 64,
                 bos: str | None = None, lowercase: bool = False
                 ) -> dict[str, np.ndarray]:
  """Scores every item: does the LM prefer the correct verb form?

  The model reads ``bos`` (default the vocabulary's ``<eos>``: a language
  model trained on lines sees every sentence right after one) and the prefix,
  from a zero state. Items whose correct or wrong form is not in the
  vocabulary cannot be judged (both would be ``<unk>``) and are marked
  ``scored=False``, as Gulordava et al. filtered their set to known forms.

  Returns arrays over the items: ``correct`` (bool), ``scored`` (bool),
  ``logp_correct`` and ``logp_wrong`` (nan where not scored).
  """
  bos = vocab.eos if bos is None else bos
  if bos and bos not in vocab:
    raise DataError(f"start token {bos!r} is not in the language model's "
                    "vocabulary")
  variables = _variables(params)
  n = len(items)
  logp = np.full((n, 2), np.nan, np.float32)
  forms = [(it.correct.lower(), it.wrong.lower()) if lowercase else
           (it.correct, it.wrong) for it in items]
  if any(c is None or w is None for c, w in forms):
    raise DataError("language-model agreement needs items with a correct and a "
                    "wrong verb form")
  scored = np.array([c in vocab and w in vocab for c, w in forms], bool)
  todo = np.flatnonzero(scored)
  seqs = {i: vocab.encode(_context(items[i].prefix, bos, lowercase))
          for i in todo}
  order = sorted(todo, key=lambda i: len(seqs[i]))  # little padding per batch
  for start in range(0, len(order), batch_size):
    idx = order[start:start + batch_size]
    rows = [seqs[i] for i in idx]
    tokens = _pad_rows(rows, batch_size)
    positions = np.zeros(batch_size, np.int32)
    positions[:len(idx)] = [len(r) - 1 for r in rows]
    cands = np.zeros((batch_size, 2), np.int32)
    cands[:len(idx)] = [[vocab.index(f) for f in forms[i]] for i in idx]
    out = jit_for(_candidate_logprobs, model)(variables, tokens, positions,
                                              cands)
    logp[idx] = np.asarray(out)[:len(idx)]
  with np.errstate(invalid="ignore"):
    correct = logp[:, 0] > logp[:, 1]
  return {"correct": correct & scored, "scored": scored,
          "logp_correct": logp[:, 0], "logp_wrong": logp[:, 1]}


def sentence_logprobs(model: LanguageModel, params, vocab: Vocab,
                      sentences: Sequence[Sequence[str]], batch_size: int = 64,
                      bos: str | None = None, eos: str | None = None,
                      lowercase: bool = False) -> np.ndarray:
  """log p(sentence) for each sentence, (N,) float64.

  The model reads ``bos`` (default ``<eos>``) and predicts every word and
  then ``eos`` (default ``<eos>``; '' for none), so a pair is compared as
  whole sentences, ending included (Marvin & Linzen 2018).
  """
  bos = vocab.eos if bos is None else bos
  eos = vocab.eos if eos is None else eos
  for t in (bos, eos):
    if t and t not in vocab:
      raise DataError(f"token {t!r} is not in the language model's vocabulary")
  variables = _variables(params)
  seqs = [vocab.encode(_context(s, bos, lowercase) + ([eos] if eos else []))
          for s in sentences]
  if any(len(s) < 2 for s in seqs):
    raise DataError("a sentence needs at least one token to predict")
  out = np.zeros(len(seqs), np.float64)
  order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
  for start in range(0, len(order), batch_size):
    idx = order[start:start + batch_size]
    inputs = _pad_rows([seqs[i][:-1] for i in idx], batch_size)
    targets = _pad_rows([seqs[i][1:] for i in idx], batch_size)
    mask = np.zeros(inputs.shape, np.float32)
    for row, i in enumerate(idx):
      mask[row, :len(seqs[i]) - 1] = 1.0
    lp = jit_for(_sequence_logprobs, model)(variables, inputs, targets, mask)
    out[idx] = np.asarray(lp, np.float64)[:len(idx)]
  return out


def score_minimal_pairs(model: LanguageModel, params, vocab: Vocab,
                        pairs: Sequence[data_lib.MinimalPair],
                        batch_size: int = 64, lowercase: bool = False,
                        bos: str | None = None, eos: str | None = None
                        ) -> dict[str, Any]:
  """Accuracy overall and by condition: a pair passes when the grammatical
  sentence is strictly more probable. Pairs identical after ``<unk>``
  replacement cannot be told apart; they count as failures and are reported
  as ``unresolvable``."""
  if not pairs:
    raise DataError("no minimal pairs to score")
  sentences = [p.grammatical for p in pairs] + [p.ungrammatical for p in pairs]
  lp = sentence_logprobs(model, params, vocab, sentences, batch_size, bos, eos,
                         lowercase)
  good, bad = lp[:len(pairs)], lp[len(pairs):]
  encode = lambda s: tuple(vocab.encode([w.lower() if lowercase else w for w in s]))
  same = np.array([encode(p.grammatical) == encode(p.ungrammatical)
                   for p in pairs])
  correct = (good > bad) & ~same
  return {"accuracy": float(correct.mean()), "count": len(pairs),
          "unresolvable": int(same.sum()),
          "by_condition": accuracy_by_condition(correct,
                                                [p.condition for p in pairs]),
          "logp_grammatical": good, "logp_ungrammatical": bad}


def load_language_model(workdir: str) -> tuple[LanguageModel, Any, Vocab]:
  """(model, params, vocab) of a language-model workdir's best checkpoint."""
  if not workdir:
    raise ValueError("config.lm_workdir is required for config.task='lm': a "
                     "workdir of the language-model study")
  if not pathlib.Path(workdir).is_dir():
    raise ValueError(f"config.lm_workdir {workdir} is not a directory")
  return lm.restore_language_model(workdir)


# ---------------------------------------------------------------------------
# Data for the study.


def _csv(value: str | Iterable) -> list[str]:
  if isinstance(value, str):
    return [v.strip() for v in value.split(",") if v.strip()]
  return [str(v) for v in value]


def _ints(value: str | Iterable) -> list[int]:
  try:
    return [int(v) for v in _csv(value)]
  except ValueError:
    raise ValueError(f"expected comma-separated integers, got {value!r}") from None


def _data_path(data: ml_collections.ConfigDict, name: str) -> pathlib.Path:
  path = pathlib.Path(name)
  if not path.is_absolute() and data.get("dir"):
    path = pathlib.Path(data.dir) / path
  return path


def synthetic_sets(seed: int, counts: Sequence[int], num_per_count: int
                   ) -> list[data_lib.AgreementItem]:
  """``num_per_count`` grammar items for each number of attractors."""
  return [it for k in counts
          for it in data_lib.synthetic_items(seed, k, num_per_count)]


def synthetic_distance_set(seed: int, distances: Sequence[int],
                           num_per_distance: int) -> list[data_lib.AgreementItem]:
  """``num_per_distance`` grammar items for each subject-verb distance, any
  structure. In this grammar distance and attractors go together (a longer
  distance needs more intervening nouns), so this set shows their joint
  effect; distance 2 cannot occur."""
  return [it for d in distances
          for it in data_lib.synthetic_items(seed, None, num_per_distance, d)]


def load_number_prediction_data(config: ml_collections.ConfigDict
                                ) -> dict[str, list[data_lib.AgreementItem]]:
  """{'train', 'valid', 'test'} items for ``config.data.source``, and for
  the synthetic source a 'distance' test set (by subject-verb distance)."""
  data = config.data
  if data.source == "linzen_simple":
    directory = pathlib.Path(data.dir)
    if not directory.is_dir():
      raise DataError(
          f"config.data.dir {directory} does not exist; it should hold the "
          "Linzen et al. simplified release (numpred.val, numpred.test.N); "
          f"{fetch.fetch_hint(directory)}")
    train = data_lib.read_simple(_data_path(data, data.train))
    if data.valid:
      valid = data_lib.read_simple(_data_path(data, data.valid))
    else:
      train, valid = data_lib.split_off(train, data.valid_fraction, config.seed)
    if data.test:
      test = [it for name in _csv(data.test)
              for it in data_lib.read_simple(_data_path(data, name))]
    else:
      files = data_lib.simple_test_files(directory)
      if not files:
        raise DataError(f"no numpred.test.N files in {directory}")
      test = [it for f in files.values() for it in data_lib.read_simple(f)]
  elif data.source == "linzen_tsv":
    if not data.path:
      raise DataError("config.data.path (the Linzen et al. dependency TSV) is "
                      "required for config.data.source='linzen_tsv'")
    items = data_lib.read_linzen_tsv(data.path, max_length=data.max_length)
    train, valid, test = data_lib.split_linzen(items, config.seed)
  elif data.source == "synthetic":
    train = synthetic_sets(data.grammar_seed, _ints(data.train_attractors),
                           data.num_train)
    valid = synthetic_sets(data.grammar_seed + 1, _ints(data.train_attractors),
                           data.num_valid)
    test = synthetic_sets(data.grammar_seed + 2, _ints(data.test_attractors),
                          data.num_test)
  else:
    raise DataError(f"unknown config.data.source {data.source!r}; valid: "
                    f"{', '.join(SOURCES)}")
  if data.max_train_items:
    train = train[:data.max_train_items]
  for name, items in (("train", train), ("valid", valid), ("test", test)):
    if not items:
      raise DataError(f"the {name} set of config.data.source={data.source!r} "
                      "is empty")
  sets = {"train": train, "valid": valid, "test": test}
  if data.source == "synthetic" and _ints(data.test_distances):
    sets["distance"] = synthetic_distance_set(
        data.grammar_seed + 3, _ints(data.test_distances), data.num_test_distance)
  return sets


# ---------------------------------------------------------------------------
# Reports.


def _pct(x: float) -> str:
  return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def markdown_by_group(columns: Mapping[str, Mapping[str, Any]], title: str,
                      key: str = "error_by_attractors", group: str = "attractors",
                      note: str = "", overall: bool = True) -> str:
  """The paper's layout: a row per group (number of attractors), a column per
  model or data set with its error in %, and the overall error last.

  ``columns[name][key]`` is ``{group: {"error", "count"}}`` and, with
  ``overall``, ``columns[name]`` has ``error`` and ``count``. When every column
  has the same items (cells on one test set) the count gets its own column;
  otherwise each cell shows ``error (items)``.
  """
  names = list(columns)
  keys = sorted({int(k) for c in columns.values() for k in c[key]})
  count_of = lambda c, k: c[key][k]["count"] if k in c[key] else None
  same = all(len({count_of(c, k) for c in columns.values()}) == 1 for k in keys)
  if overall:
    same = same and len({c["count"] for c in columns.values()}) == 1
  cell = lambda err, n: _pct(err) if same else f"{_pct(err)} ({n})"
  rows = []
  for k in keys:
    row = [k] + ([count_of(columns[names[0]], k)] if same else [])
    row += [cell(c[key][k]["error"], c[key][k]["count"]) if k in c[key] else ""
            for c in columns.values()]
    rows.append(row)
  if overall:
    rows.append(["all"] + ([columns[names[0]]["count"]] if same else []) +
                [cell(c["error"], c["count"]) for c in columns.values()])
  header = [group] + (["items"] if same else []) + [f"{n} error" for n in names]
  table = metrics_lib.markdown_table(header, rows)
  return f"## {title}\n\n{table}\n" + (f"\n{note}\n" if note else "")


def plot_error_by_attractors(columns: Mapping[str, Mapping[str, Any]],
                             path: str | pathlib.Path, title: str) -> None:
  """Error (%) against the number of attractors, a line per model."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for name, c in columns.items():
    by = c["error_by_attractors"]
    ks = sorted(int(k) for k in by)
    ax.plot(ks, [100 * by[k]["error"] for k in ks], marker="o", label=name)
  ax.set_xlabel("number of attractors")
  ax.set_ylabel("error (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  tmp.replace(path)


# ---------------------------------------------------------------------------
# The study.


def cells_of(config: ml_collections.ConfigDict) -> list[str]:
  """``config.cells`` (comma-separated) or else ``[config.model.cell]``.

  With ``cells`` set, ``model.cell`` must be its first entry (the cell whose
  figures are the run's headline), so an override of ``model.cell`` alone is
  not silently ignored.
  """
  cells = _csv(config.get("cells", ""))
  if not cells:
    return [config.model.cell]
  if config.model.cell != cells[0]:
    raise ValueError(
        f"config.model.cell={config.model.cell!r} but config.cells="
        f"{','.join(cells)!r}: set --config.cells={config.model.cell} (or "
        f"--config.cells='' ) to train one cell, or list it first in cells")
  return cells


def run_number_prediction(config: ml_collections.ConfigDict, workdir: pathlib.Path
                          ) -> tuple[dict, str] | None:
  """Trains and tests every cell of ``config``; None when a signal stopped it."""
  cells = cells_of(config)
  sets = load_number_prediction_data(config)
  vocab = data_lib.build_vocab(sets["train"])
  vocab_path = workdir / "vocab.json"
  if vocab_path.exists() and Vocab.from_json(vocab_path) != vocab:
    raise ckpt_lib.CheckpointError(
        f"vocabulary mismatch: {vocab_path} has {len(Vocab.from_json(vocab_path))} "
        f"types, the data gives {len(vocab)}; use a new --workdir for other data")
  # Only now, with the data known to be this workdir's, does the run describe itself.
  metrics_lib.write_config(workdir, config)
  vocab.to_json(vocab_path)
  enc = {k: data_lib.encode(v, vocab, config.data.max_length)
         for k, v in sets.items()}
  test_tokens = int(enc["test"].lengths.sum())
  logging.info("agreement data: train %d, valid %d, test %d items; vocabulary "
               "%d; test words not in the vocabulary: %.2f%%",
               len(enc["train"]), len(enc["valid"]), len(enc["test"]),
               len(vocab), 100 * enc["test"].num_oov / max(test_tokens, 1))
  by_cell = {}
  for cell in cells:
    record = _cell_record_path(workdir, cell)
    if record.exists():
      by_cell[cell] = _read_cell_record(record)
      logging.info("%s: finished by an earlier run in this workdir (%s); its "
                   "results are reused", cell, record)
      continue
    prefix = "" if len(cells) == 1 else f"{cell}/"
    _, _, summary, figures = train_classifier(config, cell, len(vocab), enc, workdir,
                                              prefix)
    if summary.get("preempted"):
      return None
    by_cell[cell] = {**figures["test"], **summary}
    if "distance" in figures:
      by_cell[cell]["error_by_distance"] = figures["distance"]["error_by_distance"]
    logging.info("%s: test error %.4f over %d items", cell,
                 by_cell[cell]["error"], by_cell[cell]["count"])
    # Last: a run stopped before this line resumes the cell from its
    # checkpoints (and scores it again); after it, reruns reuse the figures.
    metrics_lib.write_json(record, by_cell[cell])
    by_cell[cell] = _read_cell_record(record)  # the same types as a reused one
  head = by_cell[cells[0]]
  results = {
      "task": "number_prediction", "source": config.data.source,
      "cell": cells[0], "error": head["error"], "count": head["count"],
      "error_by_attractors": head["error_by_attractors"],
      "cells": by_cell, "vocab_size": len(vocab),
      "train_items": len(enc["train"]), "valid_items": len(enc["valid"]),
      "test_items": len(enc["test"]),
      "test_oov_rate": enc["test"].num_oov / max(test_tokens, 1)}
  if "error_by_distance" in head:
    results["error_by_distance"] = head["error_by_distance"]
  note = (f"Number prediction, {config.data.source} data: trained on "
          f"{len(enc['train'])} items (dev {len(enc['valid'])}), "
          f"{config.model.hidden_size} hidden units, "
          f"{config.model.embed_size}-dim embeddings, {config.optim.name}. "
          "Attractors: intervening nouns of the other number than the subject "
          "(homogeneous intervention only). Error = wrong number predicted.")
  md = markdown_by_group(by_cell, "Agreement error by number of attractors",
                         note=note)
  if "error_by_distance" in head:
    md += "\n" + markdown_by_group(
        by_cell, "Error by distance (words from subject's noun to verb)",
        key="error_by_distance", group="distance", overall="distance" not in enc)
  plot_error_by_attractors(by_cell, workdir / "error_by_attractors.png",
                           "Number prediction")
  return results, md


def _cell_record_path(workdir: pathlib.Path, cell: str) -> pathlib.Path:
  return workdir / "cells" / f"{cell}.json"


def _read_cell_record(path: pathlib.Path) -> dict:
  """A finished cell's figures, with the group keys and non-finite numbers
  that JSON turned into strings made numbers again."""
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ValueError(f"unreadable {path}: {e}; delete it to train that cell "
                     "again") from None

  def number(v):
    return float(v) if v in ("nan", "inf", "-inf") else v

  def restore(d):
    return {k: ({int(g): {kk: number(vv) for kk, vv in by.items()}
                 for g, by in v.items()} if k.startswith("error_by_") else
                restore(v) if isinstance(v, dict) else number(v))
            for k, v in d.items()}

  return restore(record)


# Config fields that change how a run is shown, not what it computes: a rerun
# may change them and still resume. ``cells`` may change too: each finished
# cell is reused, new ones are trained.
_NOT_IDENTITY_FIELDS = ("cells", "log_every_steps", "eval_batch_size",
                        "checkpoint_every_steps", "tensorboard", "nonfinite")


def _fingerprint(config) -> dict:
  return {k: v for k, v in config.to_dict().items() if k not in _NOT_IDENTITY_FIELDS}


def run_lm(config: ml_collections.ConfigDict, workdir: pathlib.Path,
           writer: metrics_lib.MetricWriter) -> tuple[dict, str]:
  data = config.data
  agreement_sets: dict[str, list[data_lib.AgreementItem]] = {}
  if data.text:
    agreement_sets["gulordava"] = data_lib.read_gulordava(data.text, data.gold)
  if data.generated:
    agreement_sets["generated"] = data_lib.read_generated_tab(data.generated)
  pairs = data_lib.read_minimal_pairs(data.minimal_pairs) if data.minimal_pairs else []
  if not agreement_sets and not pairs:  # the grammar's sets (config_schema checks)
    agreement_sets["synthetic"] = synthetic_sets(
        data.grammar_seed + 2, _ints(data.test_attractors), data.num_test)
  model, params, vocab = load_language_model(config.lm_workdir)
  bos = data.get("bos", None) or None
  results: dict[str, Any] = {"task": "lm", "lm_workdir": str(config.lm_workdir),
                             "sets": {}}
  md_parts, columns = [], {}
  for name, items in agreement_sets.items():
    scores = lm_agreement(model, params, vocab, items, config.eval_batch_size,
                          bos=bos, lowercase=data.lowercase)
    keep = scores["scored"]
    n_attr = np.array([-1 if it.n_attractors is None else it.n_attractors
                       for it in items], np.int32)
    dist = np.array([-1 if it.distance is None else it.distance
                     for it in items], np.int32)
    entry = summarize(scores["correct"][keep], n_attr[keep], dist[keep])
    entry["skipped_oov"] = int((~keep).sum())
    entry["accuracy"] = 1.0 - entry["error"]
    conditions = [it.condition for it in items]
    if any(c is not None for c in conditions):
      entry["accuracy_by_condition"] = accuracy_by_condition(
          scores["correct"][keep], [str(c) for c, k in zip(conditions, keep) if k])
    results["sets"][name] = entry
    columns[name] = entry
    writer.write(0, f"test/{name}", error=entry["error"], count=entry["count"])
    logging.info("LM agreement on %s: error %.4f over %d items (%d skipped: "
                 "verb forms not in the vocabulary)", name, entry["error"],
                 entry["count"], entry["skipped_oov"])
  if columns:
    head = next(iter(columns))
    results.update(set=head, error=columns[head]["error"],
                   count=columns[head]["count"],
                   error_by_attractors=columns[head]["error_by_attractors"])
    md_parts.append(markdown_by_group(
        columns, "Language-model agreement: error by number of attractors",
        note="An item is an error when the LM gives the wrong verb form at least "
        "the probability of the correct one after the prefix; items whose "
        "forms are not in the vocabulary are skipped."))
    for name, entry in columns.items():
      if "accuracy_by_condition" in entry:
        rows = [[c, v["count"], _pct(v["accuracy"])]
                for c, v in entry["accuracy_by_condition"].items()]
        md_parts.append(f"## {name}: accuracy by condition\n\n" +
                        metrics_lib.markdown_table(["condition", "items",
                                                    "accuracy"], rows))
    plot_error_by_attractors(columns, workdir / "error_by_attractors.png",
                             "Language-model agreement")
  if pairs:
    mp = score_minimal_pairs(model, params, vocab, pairs, config.eval_batch_size,
                             lowercase=data.lowercase, bos=bos)
    del mp["logp_grammatical"], mp["logp_ungrammatical"]
    results["minimal_pairs"] = mp
    if not columns:
      results.update(error=1.0 - mp["accuracy"], count=mp["count"],
                     error_by_attractors={})
    writer.write(0, "test/minimal_pairs", accuracy=mp["accuracy"],
                 count=mp["count"])
    rows = [[c, v["count"], _pct(v["accuracy"])]
            for c, v in mp["by_condition"].items()]
    rows.append(["all", mp["count"], _pct(mp["accuracy"])])
    md_parts.append("## Minimal pairs: accuracy by condition\n\n" +
                    metrics_lib.markdown_table(["condition", "pairs",
                                                "accuracy"], rows) +
                    "\n\nA pair passes when the grammatical sentence has the "
                    "higher whole-sentence log-probability.")
  return results, "\n\n".join(part.strip() for part in md_parts)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the study that ``config.task`` names; writes config.json,
  metrics.jsonl, results.json, results.md and error_by_attractors.png."""
  config_schema.validate(config, config_schema.agreement_schema())
  workdir = pathlib.Path(workdir)
  lm.check_workdir(workdir, config, _fingerprint)
  workdir.mkdir(parents=True, exist_ok=True)
  if config.task == "number_prediction":
    out = run_number_prediction(config, workdir)
    if out is None:
      return {"preempted": True}
    results, md = out
  else:
    metrics_lib.write_config(workdir, config)
    writer = metrics_lib.MetricWriter(workdir)
    try:
      results, md = run_lm(config, workdir, writer)
    finally:
      writer.close()
  metrics_lib.write_results(workdir, results, md)
  return results
