r"""The encoder study: an RNN reads a sentence to tag its words or classify it,
left to right against both ways, by cell and depth.

Tasks (``config.data``):

* tagging: a :class:`~rnn_research.models.SequenceTagger` (word embeddings,
  optionally a character BiLSTM per word) on a CoNLL-U treebank (UD UPOS or
  XPOS, ``source='conllu'``) or on the embedded grammar (``synthetic``,
  ``task='tagging'``), whose determiner and adjective tags are decided by the
  noun to their right: the best left-to-right tagger's expected accuracy on
  the test sentences is computed exactly
  (:func:`~rnn_research.data.grammar.left_to_right_tag_cap`) and reported
  beside the taggers;
* classification: a :class:`~rnn_research.models.SentenceClassifier` on SST
  trees (``sst``: trained on every labelled phrase of the training trees or on
  the sentences, tested on the test sentences; binary or fine), on
  ``LABEL<TAB>TEXT`` files (``tsv``) or on the grammar (``task='classification'``:
  the subject's number).

One run trains every combination of ``config.cells`` x ``config.directions`` x
``config.num_layers`` with the one supervised trainer
(:func:`~rnn_research.studies.supervised.fit`: early stopping on dev accuracy,
the best checkpoint used for test, exact resume). Each finished combination is
recorded in ``runs/<cell>-<direction>-<layers>.json``; a rerun in the same
workdir reuses those and resumes the one that was stopped from its checkpoint.
``results.json`` holds ``runs`` (a list of ``{"cell", "direction",
"num_layers", "dev_accuracy", "test_accuracy", "params", "train_seconds"}``),
the data's baselines (majority class or most-frequent tag, the left-to-right
cap) and the anchors; ``results.md`` the table; ``accuracy.png`` the figure.

Accuracy is over words (tagging) or sentences (classification); a dev or test
tag that training never saw counts as an error.
"""

from __future__ import annotations

import collections
import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from rnn_research import config_schema
from rnn_research import metrics as metrics_lib
from rnn_research import optim as optim_lib
from rnn_research.data import grammar as grammar_lib
from rnn_research.data import labelled
from rnn_research.data.corpus import DataError
from rnn_research.models import SentenceClassifier, SequenceTagger
from rnn_research.studies import lm
from rnn_research.studies import supervised

SOURCES = ("synthetic", "conllu", "sst", "tsv")
TASKS = ("tagging", "classification")
DIRECTIONS = ("uni", "bi")

# Published figures shown beside ours (docs/encoders.md and REFERENCES.md):
# (what, accuracy %).
ANCHORS = {
    "ud_en_ewt_upos": [
        ("Plank et al. 2016 bilty, BiLSTM 1 layer, words + chars (UD 1.3 English)", 94.6),
        ("Stanza 1.5.1, pretrained character LM (UD 2.12 EWT)", 96.2),
        ("most frequent tag per word, unseen -> NOUN (EWT test)", 86.2)],
    "sst2": [
        ("Tai et al. 2015 LSTM, GloVe, all phrases", 84.9),
        ("Tai et al. 2015 2-layer LSTM, GloVe, all phrases", 86.3),
        ("Flax examples/sst2 BiLSTM from scratch (dev set, GLUE phrases)", 85.2),
        ("majority class (test)", 50.1)],
    "sst5": [
        ("Tai et al. 2015 (Table 2) LSTM, GloVe, all phrases", 46.4),
        ("Tai et al. 2015 (Table 2) bidirectional LSTM, GloVe, all phrases", 49.1),
        ("Tai et al. 2015 Tree-LSTM (constituency), GloVe", 51.0)],
}


def _csv(value: str) -> list[str]:
  return [v.strip() for v in str(value).split(",") if v.strip()]


def grid(config: ml_collections.ConfigDict) -> list[tuple[str, str, int]]:
  """(cell, direction, num_layers) of every run, in table order."""
  cells, directions = _csv(config.cells), _csv(config.directions)
  depths = [int(d) for d in _csv(config.num_layers)]
  if not (cells and directions and depths):
    raise ValueError("config.cells, config.directions and config.num_layers must "
                     "each name at least one value")
  return [(c, d, n) for c in cells for n in depths for d in directions]


def run_name(cell: str, direction: str, num_layers: int) -> str:
  return f"{cell}-{direction}-{num_layers}"


# ---------------------------------------------------------------------------
# Data.


def task_of(config: ml_collections.ConfigDict) -> str:
  source = config.data.source
  if source == "synthetic":
    return config.data.task
  return "tagging" if source == "conllu" else "classification"


def _file(directory: pathlib.Path, name: str) -> pathlib.Path:
  path = directory / name
  if not path.is_file():
    raise DataError(f"{path} does not exist (config.data.dir = {str(directory)!r})")
  return path


def load_examples(config: ml_collections.ConfigDict
                  ) -> tuple[dict[str, list[labelled.Example]], dict[str, Any]]:
  """{'train', 'valid', 'test'}: examples, and facts about the data (the
  left-to-right cap of synthetic tagging)."""
  d = config.data
  info: dict[str, Any] = {}
  if d.source == "synthetic":
    if d.task == "tagging":
      sets = grammar_lib.tagging_sentences(d.grammar_seed, d.num_train, d.num_valid,
                                           d.num_test)
      splits = {k: [labelled.Example(w, tags=t) for w, t in v] for k, v in sets.items()}
      info["left_to_right_cap"] = grammar_lib.left_to_right_tag_cap(
          [w for w, _ in sets["test"]])
    else:
      sets = grammar_lib.classification_sentences(d.grammar_seed, d.num_train,
                                                  d.num_valid, d.num_test)
      splits = {k: [labelled.Example(w, label=y) for w, y in v] for k, v in sets.items()}
    return splits, info
  directory = pathlib.Path(d.dir)
  if not directory.is_dir():
    raise DataError(f"config.data.dir = {d.dir!r} is not a directory")
  if d.source == "conllu":
    files = labelled.find_treebank_files(directory)
    return {k: labelled.read_conllu(p, d.tag_column) for k, p in files.items()}, info
  if d.source == "sst":
    names = {"train": "train.txt", "valid": "dev.txt", "test": "test.txt"}
    return {k: labelled.read_sst_trees(
        _file(directory, n), d.sst_mode, phrases=(k == "train" and d.train_phrases),
        unique=d.unique_phrases) for k, n in names.items()}, info
  names = {"train": d.train, "valid": d.valid, "test": d.test}
  return {k: labelled.read_labelled_text(_file(directory, n))
          for k, n in names.items()}, info


def baselines(splits: dict[str, list[labelled.Example]], tagging: bool) -> dict:
  """Test accuracy of the data's floor: the most frequent training tag of each
  word (unseen words: the most frequent tag) or the majority training label."""
  counts = labelled.class_counts(splits["train"])
  top = counts.most_common(1)[0][0]
  test = splits["test"]
  if not tagging:
    return {"majority_test_accuracy": float(np.mean([ex.label == top for ex in test]))}
  by_word: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for ex in splits["train"]:
    for w, t in zip(ex.words, ex.tags):
      by_word[w][t] += 1
  best = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
  right = sum(best.get(w, top) == t for ex in test for w, t in zip(ex.words, ex.tags))
  return {"most_frequent_tag_test_accuracy": right / sum(len(ex.words) for ex in test)}


# ---------------------------------------------------------------------------
# Models and losses.


def build_model(config: ml_collections.ConfigDict, tagging: bool, cell: str,
                direction: str, num_layers: int, encoder: labelled.Encoder):
  m = config.model
  common = dict(vocab_size=len(encoder.words), cell=cell, hidden_size=m.hidden_size,
                num_layers=num_layers, embed_size=m.embed_size,
                bidirectional=direction == "bi", dropout_rate=m.dropout_rate,
                connection=m.connection, init_scale=m.init_scale, unroll=m.unroll)
  if tagging:
    return SequenceTagger(
        num_tags=len(encoder.classes),
        char_vocab_size=len(encoder.chars) if m.char_encoder else 0,
        char_embed_size=m.char_embed_size, char_hidden_size=m.char_hidden_size,
        **common)
  return SentenceClassifier(num_classes=len(encoder.classes), pooling=m.pooling, **common)


def _apply(model, params, batch, deterministic: bool, rng=None):
  rngs = None if rng is None else {"dropout": rng}
  if isinstance(model, SequenceTagger):
    return model.apply({"params": params}, batch["tokens"], batch["lengths"],
                       batch.get("chars"), batch.get("char_lengths"),
                       deterministic=deterministic, rngs=rngs)
  return model.apply({"params": params}, batch["tokens"], batch["lengths"],
                     deterministic=deterministic, rngs=rngs)


def make_loss_fn(model):
  """``(params, batch, rng, train) -> (mean loss, sums)`` for the trainer.

  The sums are over the real words (tagging) or rows (classification):
  ``loss``, ``error`` and ``count``. A target of -1 (a tag training never saw)
  adds no loss and one error.
  """

  def loss_fn(params, batch, rng, train):
    logits = _apply(model, params, batch, not train, rng if train else None)
    targets = batch["targets"]
    if targets.ndim == 2:  # tagging: (B, T)
      t = jnp.arange(targets.shape[1])[None, :]
      live = (t < batch["lengths"][:, None]) * batch["weights"][:, None]  # (B, T)
    else:
      live = batch["weights"]  # (B,)
    known = live * (targets >= 0)
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.maximum(targets, 0))
    errors = (logits.argmax(-1) != targets) * live
    count = live.sum()
    loss = (losses * known).sum() / jnp.maximum(known.sum(), 1.0)
    return loss, {"loss": (losses * known).sum(), "error": errors.sum(), "count": count}

  return loss_fn


def make_evaluate(loss_fn, split_batches: dict[str, list]):
  """``(params, split) -> {"accuracy", "error", "loss"}`` over a split's batches."""
  step = jax.jit(lambda params, batch: loss_fn(params, batch, jax.random.key(0), False)[1])

  def evaluate(params, split):
    sums = collections.Counter()
    for batch in split_batches[split]:
      for k, v in step(params, batch).items():
        sums[k] += float(v)
    n = max(sums["count"], 1.0)
    return {"accuracy": 1.0 - sums["error"] / n, "error": sums["error"] / n,
            "loss": sums["loss"] / n, "count": int(sums["count"])}

  return evaluate


# ---------------------------------------------------------------------------
# Tables and figures.


def _pct(x: float | None) -> str:
  return "" if x is None else f"{100 * x:.2f}"


def results_markdown(config, results: dict) -> str:
  task = results["task"]
  rows = [[r["cell"], r["direction"], r["num_layers"], _pct(r["dev_accuracy"]),
           _pct(r["test_accuracy"]), f"{r['params']:,}", f"{r['train_seconds']:.0f}"]
          for r in results["runs"]]
  table = metrics_lib.markdown_table(
      ["cell", "direction", "layers", "dev acc %", "test acc %", "params",
       "train s"], rows)
  d = results["data"]
  lines = [f"## Encoders: {task}, {d['source']} data\n", table, ""]
  train = (f"{d['train']:,} training words ({d['train_examples']:,} sentences)"
           if task == "tagging" else f"{d['train_examples']:,} training examples")
  facts = [f"{train}, dev {d['valid']:,}, test {d['test']:,} {d['unit']}; "
           f"{d['classes']} classes; vocabulary {d['vocab_size']:,} words"]
  if "left_to_right_cap" in results:
    facts.append(f"best left-to-right tagger (exact, on these test sentences): "
                 f"{_pct(results['left_to_right_cap'])}%")
  if "most_frequent_tag_test_accuracy" in results:
    facts.append(f"most frequent training tag per word (unseen: most frequent tag): "
                 f"{_pct(results['most_frequent_tag_test_accuracy'])}% on test")
  if "majority_test_accuracy" in results:
    facts.append(f"majority training label: {_pct(results['majority_test_accuracy'])}% on test")
  lines.append("\n".join(f"- {f}" for f in facts))
  if results.get("anchors"):
    lines += ["", "Published figures (test accuracy %, other setups: see docs/encoders.md):", ""]
    lines.append(metrics_lib.markdown_table(
        ["anchor", "accuracy %"], [[a["what"], f"{a['accuracy']:.1f}"]
                                    for a in results["anchors"]]))
  m = config.model
  lines += ["", f"Model: {m.embed_size}-dim word embeddings"
            + (f" + a character BiLSTM ({m.char_hidden_size} units per direction)"
               if task == "tagging" and m.char_encoder else "")
            + f", {m.hidden_size} units per direction and layer"
            + (f", {m.pooling} pooling" if task == "classification" else "")
            + f", dropout {m.dropout_rate}; {config.optim.name} lr "
            f"{config.optim.learning_rate}, batch {config.batch_size}, at most "
            f"{config.num_epochs} epochs, early stopping on dev accuracy (patience "
            f"{config.patience}); test figures from the best dev checkpoint."]
  return "\n".join(lines)


def plot_accuracy(results: dict, path: pathlib.Path) -> None:
  """Test accuracy by run, bars grouped by cell and depth, uni beside bi."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  runs = results["runs"]
  groups = list(dict.fromkeys((r["cell"], r["num_layers"]) for r in runs))
  directions = list(dict.fromkeys(r["direction"] for r in runs))
  fig, ax = plt.subplots(figsize=(max(4.0, 1.5 + 1.2 * len(groups)), 3.5))
  width = 0.8 / len(directions)
  for j, direction in enumerate(directions):
    xs, ys = [], []
    for i, g in enumerate(groups):
      for r in runs:
        if (r["cell"], r["num_layers"]) == g and r["direction"] == direction:
          xs.append(i + (j - (len(directions) - 1) / 2) * width)
          ys.append(100 * r["test_accuracy"])
    ax.bar(xs, ys, width, label=direction)
  lows = [100 * r["test_accuracy"] for r in runs]
  if "left_to_right_cap" in results:
    cap = 100 * results["left_to_right_cap"]
    ax.axhline(cap, color="k", ls="--", lw=1, label="left-to-right cap")
    lows.append(cap)
  ax.set_ylim(max(0.0, min(lows) - 5), 100)
  ax.set_xticks(range(len(groups)))
  ax.set_xticklabels([f"{c}\n{n} layer{'s' if n > 1 else ''}" for c, n in groups])
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(f"{results['task']}, {results['data']['source']} data")
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
  fig.tight_layout()
  tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  tmp.replace(path)


# ---------------------------------------------------------------------------
# The study.


def _fingerprint(config) -> dict:
  """What makes two configs one run: all but the logging cadence."""
  d = config.to_dict()
  d.pop("log_every_steps", None)
  return d


def _run_record(workdir: pathlib.Path, name: str) -> pathlib.Path:
  return workdir / "runs" / f"{name}.json"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the grid; writes config.json, metrics.jsonl, checkpoints/,
  runs/*.json, results.json, results.md and accuracy.png."""
  config_schema.validate(config, config_schema.encoders_schema())
  combos = grid(config)
  workdir = pathlib.Path(workdir)
  lm.check_workdir(workdir, config, _fingerprint)
  splits, info = load_examples(config)
  tagging = task_of(config) == "tagging"
  encoder = labelled.Encoder(splits["train"], config.data.min_count, config.data.lowercase,
                             config.data.max_word_chars)
  enc = {k: encoder.encode(v, k) for k, v in splits.items()}
  spellings = encoder.spellings if tagging and config.model.char_encoder else None
  min_width = config.data.min_width
  eval_batches = {k: labelled.batches(enc[k], config.eval_batch_size, spellings=spellings,
                                      min_width=min_width) for k in ("valid", "test")}
  unit = "words" if tagging else "sentences"
  data_info = {
      "source": config.data.source, "unit": unit, "classes": len(encoder.classes),
      "vocab_size": len(encoder.words), "train_examples": len(enc["train"]),
      **{k: int(enc[k].lengths.sum()) if tagging else len(enc[k]) for k in enc}}
  logging.info("encoders data: %s", data_info)
  workdir.mkdir(parents=True, exist_ok=True)
  metrics_lib.write_config(workdir, config)
  (workdir / "runs").mkdir(exist_ok=True)

  def train_batches(epoch: int):
    rng = np.random.default_rng([config.seed, epoch])
    return labelled.batches(enc["train"], config.batch_size, rng, spellings, min_width)

  # Epoch 0's batches, built once for the grid: the first shapes every
  # model's initialisation, their count sets every schedule.
  first_epoch = train_batches(0)
  steps_per_epoch = len(first_epoch)
  runs = []
  for cell, direction, num_layers in combos:
    name = run_name(cell, direction, num_layers)
    record = _run_record(workdir, name)
    if record.exists():
      runs.append(json.loads(record.read_text()))
      logging.info("%s: finished by an earlier run in this workdir; reused", name)
      continue
    model = build_model(config, tagging, cell, direction, num_layers, encoder)
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    params = jax.jit(lambda k, b: model.init(k, **_init_inputs(model, b)))(
        init_key, first_epoch[0])["params"]
    loss_fn = make_loss_fn(model)
    options = supervised.Options.from_config(config, monitor=("error", "loss"))
    result = supervised.fit(
        workdir, params=params,
        tx=optim_lib.make_optimizer(config.optim, steps_per_epoch,
                                    options.total_steps(steps_per_epoch)),
        loss_fn=loss_fn, train_batches=train_batches,
        evaluate=make_evaluate(loss_fn, eval_batches),
        options=options,
        rng=dropout_key, checkpoint_dir=workdir / "checkpoints" / name,
        identity={"run": name, "vocab_size": len(encoder.words),
                  "classes": encoder.classes},
        log_fields={"run": name}, split_prefix=f"{name}/")
    if result.preempted:  # checkpointed; as the other studies, not an error
      logging.warning("stopped by a signal during %s; rerun the same command to "
                      "resume", name)
      return {"preempted": True, "run": name}
    row = {"cell": cell, "direction": direction, "num_layers": num_layers,
           "dev_accuracy": float(result.best["accuracy"]),
           "test_accuracy": float(result.figures["test"]["accuracy"]),
           "params": int(result.num_params),
           "train_seconds": float(result.train_seconds),
           "steps": int(result.steps), "best_step": int(result.best.get("step", -1))}
    logging.info("%s: dev %.4f, test %.4f, %d params, %.0f s", name,
                 row["dev_accuracy"], row["test_accuracy"], row["params"],
                 row["train_seconds"])
    metrics_lib.write_json(record, row)
    runs.append(row)
  results = {"task": task_of(config), "runs": runs, "data": data_info,
             "classes": encoder.classes, **info, **baselines(splits, tagging),
             "anchors": [{"what": w, "accuracy": a}
                         for w, a in ANCHORS.get(config.anchors, [])]}
  metrics_lib.write_results(workdir, results, results_markdown(config, results))
  plot_accuracy(results, workdir / "accuracy.png")
  return results


def _init_inputs(model, batch) -> dict:
  inputs = {"tokens": batch["tokens"], "lengths": batch["lengths"]}
  if isinstance(model, SequenceTagger) and model.char_vocab_size:
    inputs.update(chars=batch["chars"], char_lengths=batch["char_lengths"])
  return inputs

