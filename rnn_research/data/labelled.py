r"""Labelled text for the encoder study: tagged sentences and labelled sentences.

Three readers, each naming the file and 1-based line of a malformed line:

* :func:`read_conllu`: a CoNLL-U treebank (Universal Dependencies). Comment
  lines (``#``), multiword-token ranges (ID ``3-4``) and empty nodes (ID
  ``8.1``) are skipped; a blank line ends a sentence; the tag is the UPOS
  (column 4) or XPOS (column 5) column, by name (``TAG_COLUMNS``).
* :func:`read_sst_trees`: the Stanford Sentiment Treebank's PTB-style trees,
  ``(3 (2 It) (4 (2 's) ...))``, a label 0-4 on every node. Each tree gives its
  sentence with the root label and every labelled phrase (the leaves under a
  node) with the node's label; ``binary`` maps 0-1 to 0 and 3-4 to 1 and drops
  the neutral 2, ``fine`` keeps the five classes.
* :func:`read_labelled_text`: ``LABEL<TAB>TEXT`` lines of any classification
  corpus (the text split on whitespace).

:class:`Encoder` turns examples into ids: words that occur at least
``min_count`` times in training (others become ``<unk>``; ``<pad>`` is id 0),
the characters of training words, the tags or labels of training. A tag or
label that training never saw is kept as id -1: it is scored as an error (no
prediction equals it), and one warning per split says how many there were.

:func:`batches` gives length-bucketed batches (:func:`~.batching.batch_indices`):
the rows of a batch have similar lengths, the width is rounded up on a short
ladder of sizes (``WIDTHS``) so that ``jax.jit`` compiles a handful of shapes,
and the rows are padded to ``batch_size`` with weight 0.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import re
from typing import Iterable, Sequence

from absl import logging
import numpy as np

from rnn_research.data.batching import batch_indices
from rnn_research.data.corpus import DataError, UNK, Vocab, numbered_lines

PAD = "<pad>"
TAG_COLUMNS = {"upos": 3, "xpos": 4}  # 0-based CoNLL-U columns
SST_MODES = ("binary", "fine")
_CONLLU_FIELDS = 10
_TREE_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclasses.dataclass(frozen=True)
class Example:
  """One sentence: its words and either a tag per word or one label."""

  words: tuple[str, ...]
  tags: tuple[str, ...] | None = None
  label: str | None = None


def _show(line: str, width: int = 60) -> str:
  line = line.replace("\t", "\\t")
  return repr(line if len(line) <= width else line[:width] + "...")


def _nonempty(path, examples: list[Example], what: str) -> list[Example]:
  if not examples:
    raise DataError(f"{path}: no {what}")
  return examples


# ---------------------------------------------------------------------------
# CoNLL-U.


def read_conllu(path: str | pathlib.Path, column: str = "upos") -> list[Example]:
  """Tagged sentences of a CoNLL-U file; ``column`` is ``upos`` or ``xpos``.

  Raises:
    DataError: an unknown column; a token line without 10 tab-separated
      fields, with a malformed ID or with no tag ('_') in ``column``; a file
      without sentences; naming file and line.
  """
  if column not in TAG_COLUMNS:
    raise DataError(f"unknown tag column {column!r}; valid: {', '.join(TAG_COLUMNS)}")
  col = TAG_COLUMNS[column]
  out: list[Example] = []
  words: list[str] = []
  tags: list[str] = []

  def end_sentence():
    if words:
      out.append(Example(tuple(words), tuple(tags)))
    words.clear()
    tags.clear()

  for lineno, line in numbered_lines(path):
    if not line.strip():
      end_sentence()
      continue
    if line.startswith("#"):
      continue
    fields = line.split("\t")
    if len(fields) != _CONLLU_FIELDS:
      raise DataError(f"{path}:{lineno}: expected {_CONLLU_FIELDS} tab-separated "
                      f"CoNLL-U fields, got {len(fields)}: {_show(line)}")
    ident = fields[0]
    if re.fullmatch(r"\d+-\d+|\d+\.\d+", ident):  # multiword range, empty node
      continue
    if not re.fullmatch(r"[1-9]\d*", ident):
      raise DataError(f"{path}:{lineno}: ID must be an integer, a range 3-4 or "
                      f"an empty node 8.1, got {ident!r}")
    if fields[col] == "_" or not fields[col]:
      raise DataError(f"{path}:{lineno}: no {column.upper()} tag (column "
                      f"{col + 1} is {fields[col]!r}); choose another "
                      "config.data.tag_column")
    words.append(fields[1])
    tags.append(fields[col])
  end_sentence()
  return _nonempty(path, out, "sentences")


def find_treebank_files(directory: str | pathlib.Path) -> dict[str, pathlib.Path]:
  """{'train', 'valid', 'test'}: the ``*-ud-{train,dev,test}.conllu`` files of
  a Universal Dependencies treebank directory (any language)."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise DataError(f"treebank directory {directory} does not exist")
  out = {}
  for split, name in (("train", "train"), ("valid", "dev"), ("test", "test")):
    found = sorted(directory.glob(f"*-ud-{name}.conllu"))
    if len(found) != 1:
      raise DataError(f"{directory}: expected one *-ud-{name}.conllu file, found "
                      f"{len(found)}{': ' + ', '.join(p.name for p in found) if found else ''}")
    out[split] = found[0]
  return out


# ---------------------------------------------------------------------------
# SST trees.


def parse_sst_tree(path, lineno: int, line: str):
  """(label, words, phrases) of one bracketed tree; phrases (label, words)
  for every node, the root first. ``path`` and ``lineno`` name the line in
  the :class:`DataError` of a malformed tree."""
  tokens = _TREE_TOKEN.findall(line)
  pos = 0

  def fail(what: str):
    raise DataError(f"{path}:{lineno}: malformed tree ({what}) at token {pos + 1}: "
                    f"{_show(line)}")

  def node():
    nonlocal pos
    if pos >= len(tokens) or tokens[pos] != "(":
      fail("expected '('")
    pos += 1
    if pos >= len(tokens) or tokens[pos] not in ("0", "1", "2", "3", "4"):
      fail("expected a label 0-4")
    label = int(tokens[pos])
    pos += 1
    phrases, words = [], []
    if pos < len(tokens) and tokens[pos] not in ("(", ")"):
      while pos < len(tokens) and tokens[pos] not in ("(", ")"):
        words.append(tokens[pos])  # a leaf; '(2 8 1\/2)' holds two words
        pos += 1
    else:
      while pos < len(tokens) and tokens[pos] == "(":
        _, child_words, child_phrases = node()
        words.extend(child_words)
        phrases.extend(child_phrases)
      if not words:
        fail("a node without words")
    if pos >= len(tokens) or tokens[pos] != ")":
      fail("expected ')'")
    pos += 1
    return label, words, [(label, tuple(words))] + phrases

  label, words, phrases = node()
  if pos != len(tokens):
    fail("text after the tree")
  return label, tuple(words), phrases


def sst_label(label: int, mode: str) -> str | None:
  """The class of SST label 0-4 in ``mode`` (None: neutral, dropped in binary)."""
  if mode == "fine":
    return str(label)
  return None if label == 2 else str(int(label > 2))


def read_sst_trees(path: str | pathlib.Path, mode: str = "binary",
                   phrases: bool = False, unique: bool = True) -> list[Example]:
  """Labelled sentences (or phrases) of an SST tree file.

  Args:
    mode: ``binary`` (0-1 -> '0', 3-4 -> '1', neutral dropped) or ``fine``
      (labels '0'..'4').
    phrases: every labelled node of every tree (the all-phrases training
      protocol of Socher et al. 2013 and Tai et al. 2015) instead of the root
      sentences only.
    unique: with ``phrases``, each (words, label) once (the single words and
      short phrases repeat thousands of times).
  """
  if mode not in SST_MODES:
    raise DataError(f"unknown SST mode {mode!r}; valid: {', '.join(SST_MODES)}")
  out: list[Example] = []
  seen: set = set()
  for lineno, line in numbered_lines(path):
    if not line.strip():
      continue
    root, words, nodes = parse_sst_tree(path, lineno, line)
    for label, span in (nodes if phrases else [(root, words)]):
      y = sst_label(label, mode)
      if y is None or (phrases and unique and (span, y) in seen):
        continue
      seen.add((span, y))
      out.append(Example(span, label=y))
  return _nonempty(path, out, "trees with a label" if mode == "binary" else "trees")


# ---------------------------------------------------------------------------
# LABEL<TAB>TEXT.


def read_labelled_text(path: str | pathlib.Path) -> list[Example]:
  """``LABEL<TAB>TEXT`` lines; blank lines are skipped."""
  out = []
  for lineno, line in numbered_lines(path):
    if not line.strip():
      continue
    fields = line.split("\t")
    if len(fields) != 2 or not fields[0].strip() or not fields[1].split():
      raise DataError(f"{path}:{lineno}: expected LABEL<TAB>TEXT (2 tab-separated "
                      f"fields, both non-empty), got {len(fields)} field"
                      f"{'s' if len(fields) != 1 else ''}: {_show(line)}")
    out.append(Example(tuple(fields[1].split()), label=fields[0].strip()))
  return _nonempty(path, out, "lines")


# ---------------------------------------------------------------------------
# Ids.


@dataclasses.dataclass
class Encoded:
  """A split as ids: ragged rows, one per sentence.

  ``words[i]`` (L_i,) word ids; ``forms[i]`` (L_i,) ids of the exact word forms
  in :attr:`Encoder.spellings` (for the character encoder); ``targets`` a tag id
  per word (ragged, ``tags``) or a label id per sentence (N,) (``labels``); -1
  where training never saw it.
  """

  words: list[np.ndarray]
  forms: list[np.ndarray]
  targets: list[np.ndarray] | np.ndarray
  tagging: bool

  def __len__(self) -> int:
    return len(self.words)

  @property
  def lengths(self) -> np.ndarray:
    return np.array([len(w) for w in self.words], np.int32)


class Encoder:
  """Word, character and tag/label ids fixed by the training examples.

  Attributes:
    words: ``<pad>`` (0), ``<unk>`` (1), then training words with at least
      ``min_count`` occurrences (after ``lowercase``) in first-seen order.
    chars: ``<pad>``, ``<unk>``, then the characters of training words.
    classes: the tags (tagging) or labels, sorted.
    spellings: every word form met so far (any split), as character ids
      (F, max_word_chars), 0-padded; ``forms`` of :class:`Encoded` index it.
  """

  def __init__(self, train: Sequence[Example], min_count: int = 1,
               lowercase: bool = False, max_word_chars: int = 20):
    if min_count < 1:
      raise DataError(f"min_count must be >= 1, got {min_count}")
    self.tagging = train[0].tags is not None
    self.lowercase = lowercase
    self.max_word_chars = max_word_chars
    counts = collections.Counter(self._norm(w) for ex in train for w in ex.words)
    self.words = Vocab([PAD, UNK] + [w for w, c in counts.items()
                                     if c >= min_count and w not in (PAD, UNK)])
    chars = dict.fromkeys(c for ex in train for w in ex.words for c in w)
    self.chars = Vocab([PAD, UNK] + [c for c in chars if c not in (PAD, UNK)])
    if self.tagging:
      self.classes = sorted({t for ex in train for t in ex.tags})
    else:
      self.classes = sorted({ex.label for ex in train})
    self._class_id = {c: i for i, c in enumerate(self.classes)}
    self._form_id: dict[str, int] = {}
    self._spellings: list[np.ndarray] = []

  def _norm(self, word: str) -> str:
    return word.lower() if self.lowercase else word

  def _form(self, word: str) -> int:
    i = self._form_id.get(word)
    if i is None:
      i = self._form_id[word] = len(self._spellings)
      self._spellings.append(self.chars.encode(list(word[:self.max_word_chars])))
    return i

  @property
  def spellings(self) -> np.ndarray:
    """(F, max_word_chars) int32 character ids of every form, 0-padded."""
    out = np.zeros((max(len(self._spellings), 1), self.max_word_chars), np.int32)
    for i, ids in enumerate(self._spellings):
      out[i, :len(ids)] = ids
    return out

  def encode(self, examples: Sequence[Example], split: str) -> Encoded:
    """Ids of ``examples``; warns once when the split has unseen tags/labels."""
    unseen: collections.Counter = collections.Counter()

    def target(t: str) -> int:
      i = self._class_id.get(t, -1)
      if i < 0:
        unseen[t] += 1
      return i

    words, forms, targets = [], [], []
    for ex in examples:
      if (ex.tags is not None) != self.tagging:
        raise DataError(f"{split}: a mix of tagged and labelled examples")
      words.append(self.words.encode([self._norm(w) for w in ex.words]))
      forms.append(np.array([self._form(w) for w in ex.words], np.int32))
      if self.tagging:
        targets.append(np.array([target(t) for t in ex.tags], np.int32))
      else:
        targets.append(target(ex.label))
    if unseen:
      logging.warning("%s: %d %s that training never saw (%s); they count as errors",
                      split, sum(unseen.values()),
                      "tokens carry tags" if self.tagging else "examples carry labels",
                      ", ".join(sorted(unseen)[:10]))
    if not self.tagging:
      targets = np.array(targets, np.int32)
    return Encoded(words, forms, targets, self.tagging)


# Batch widths: each batch is padded to the first of these that fits.
WIDTHS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def bucket_width(length: int) -> int:
  """The smallest ``WIDTHS`` entry >= length (multiples of 256 beyond)."""
  for w in WIDTHS:
    if length <= w:
      return w
  return -(-length // 256) * 256


def make_batch(data: Encoded, idx: np.ndarray, batch_size: int,
               spellings: np.ndarray | None = None, min_width: int = 0
               ) -> dict[str, np.ndarray]:
  """Rows ``idx`` of ``data`` as a padded batch of ``batch_size`` rows, at
  least ``min_width`` wide (one width for every batch of short sentences:
  ``jax.jit`` then compiles once, which outweighs the padded steps on a CPU
  where a compilation takes longer than an epoch).

  Keys: ``tokens`` (B, T) int32, ``lengths`` (B,), ``targets`` (B, T) for
  tagging (-1 past a sentence's end) or (B,), ``weights`` (B,) 1 for real rows;
  with ``spellings`` also ``chars`` (B, T, W) and ``char_lengths`` (B, T).
  """
  n = len(idx)
  if not 0 < n <= batch_size:
    raise DataError(f"a batch needs 1 to batch_size={batch_size} rows, got {n}")
  lengths = np.zeros(batch_size, np.int32)
  lengths[:n] = [len(data.words[i]) for i in idx]
  lengths[n:] = 1  # filler rows: one pad token, weight 0
  width = max(min_width, bucket_width(int(lengths.max())))
  tokens = np.zeros((batch_size, width), np.int32)
  forms = np.zeros((batch_size, width), np.int32)
  targets = (np.full((batch_size, width), -1, np.int32) if data.tagging
             else np.zeros(batch_size, np.int32))
  for row, i in enumerate(idx):
    length = lengths[row]
    tokens[row, :length] = data.words[i]
    forms[row, :length] = data.forms[i]
    if data.tagging:
      targets[row, :length] = data.targets[i]
    else:
      targets[row] = data.targets[i]
  batch = {"tokens": tokens, "lengths": lengths, "targets": targets,
           "weights": (np.arange(batch_size) < n).astype(np.float32)}
  if spellings is not None:
    chars = spellings[forms]  # (B, T, W)
    live = np.arange(width)[None, :] < lengths[:, None]  # (B, T)
    chars = np.where(live[..., None], chars, 0)
    batch["chars"] = chars
    batch["char_lengths"] = (chars > 0).sum(-1).astype(np.int32)  # (B, T)
  return batch


def batches(data: Encoded, batch_size: int, rng: np.random.Generator | None = None,
            spellings: np.ndarray | None = None, min_width: int = 0
            ) -> list[dict[str, np.ndarray]]:
  """An epoch's batches: shuffled and length-bucketed with ``rng`` (training),
  in length order without it (evaluation); every example once."""
  return [make_batch(data, idx, batch_size, spellings, min_width)
          for idx in batch_indices(data.lengths, batch_size, rng)]


def class_counts(examples: Iterable[Example]) -> collections.Counter:
  """How often each tag (tagged sentences) or label occurs."""
  counts: collections.Counter = collections.Counter()
  for ex in examples:
    counts.update(ex.tags if ex.tags is not None else [ex.label])
  return counts
