"""Subject-verb agreement data: readers for the published formats, synthetic
sets, and encoded prefixes (padded and batched by :mod:`~.batching`).

The study asks whether a network picks the verb's number by the subject or by
the nearest noun ("The writer of the books ___"). An item is a prefix (the
words before the verb) with the verb's number and, where the source says, the
number of *attractors*: nouns between subject and verb whose number differs
from the subject's (Linzen, Dupoux & Goldberg 2016).

Formats (each reader raises :class:`DataError` naming ``file:line`` for a
malformed line):

* :func:`read_linzen_tsv`: the full dependency TSV of Linzen et al. (a header
  row, 18 columns), split 9% / 1% / 90% by :func:`split_linzen`;
* :func:`read_simple`: the authors' simplified release, ``LABEL<TAB>PREFIX``
  with LABEL ``VBZ`` (singular) or ``VBP`` (plural), files ``numpred.train``,
  ``numpred.val``, ``numpred.test`` and ``numpred.test.N`` (N attractors);
* :func:`read_gulordava`: Gulordava et al. 2018, a ``.text`` file of
  sentences and a line-aligned ``.gold`` file
  ``target_index<TAB>correct_form<TAB>wrong_form<TAB>n_attractors``;
  :func:`read_generated_tab`: their ``generated.tab`` nonce-sentence table;
* :func:`read_minimal_pairs`: ``condition<TAB>grammatical<TAB>ungrammatical``
  (Marvin & Linzen 2018 style), scored by whole-sentence probability.

Line numbers are 1-based. Tokens are whitespace-separated everywhere.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib
import re
from typing import Iterable, Sequence

import numpy as np

from rnn_research.data.corpus import DataError, Vocab, numbered_lines

PAD = "<pad>"
SINGULAR, PLURAL = "VBZ", "VBP"
LABELS = (SINGULAR, PLURAL)

# Columns of the Linzen et al. dependency TSV (their ``utils.dependency_fields``).
LINZEN_COLUMNS = (
    "sentence", "orig_sentence", "pos_sentence", "subj", "verb", "subj_pos",
    "has_rel", "has_nsubj", "verb_pos", "subj_index", "verb_index",
    "n_intervening", "last_intervening", "n_diff_intervening", "distance",
    "max_depth", "all_nouns", "nouns_up_to_verb")
_LINZEN_INTS = ("subj_index", "verb_index", "n_intervening",
                "n_diff_intervening", "distance")

# Columns of Gulordava et al.'s generated.tab.
GENERATED_COLUMNS = (
    "pattern", "constr_id", "sent_id", "correct_number", "form", "class",
    "type", "prefix", "n_attr", "punct", "freq", "len_context", "len_prefix",
    "sent")

SIMPLE_FILE = re.compile(r"numpred\.(train|val|valid|test)(?:\.(\d+))?$")


@dataclasses.dataclass(frozen=True)
class AgreementItem:
  """One agreement dependency, cut at the verb.

  Attributes:
    prefix: the words before the verb.
    plural: the verb's number (True = plural, ``VBP``); None where the source
      does not say (Gulordava's ``.gold`` lists forms, not numbers).
    n_attractors: intervening nouns of the other number than the subject.
      None where the paper would not count them: Linzen et al. report error by
      attractors only for *homogeneous intervention* (every intervening noun
      of one number), so a dependency with nouns of both numbers between
      subject and verb has None.
    correct, wrong: the verb form that agrees and the one that does not (for
      language-model scoring); None in the number-prediction formats.
    distance: words from subject to verb, where known.
    condition: a finer grouping where the source has one (Gulordava's
      construction pattern).
    source: ``file:line`` the item came from, for error messages and audits.
  """

  prefix: tuple[str, ...]
  plural: bool | None
  n_attractors: int | None = None
  correct: str | None = None
  wrong: str | None = None
  distance: int | None = None
  condition: str | None = None
  source: str = ""


@dataclasses.dataclass(frozen=True)
class MinimalPair:
  """A grammatical sentence and its ungrammatical twin, and their condition."""

  condition: str
  grammatical: tuple[str, ...]
  ungrammatical: tuple[str, ...]
  source: str = ""


# ---------------------------------------------------------------------------
# Reading lines.


_lines = numbered_lines


def _fields(path, lineno: int, line: str, expected: Sequence[str]) -> list[str]:
  fields = line.split("\t")
  if len(fields) != len(expected):
    raise DataError(
        f"{path}:{lineno}: expected {len(expected)} tab-separated fields "
        f"({', '.join(expected)}), got {len(fields)}: {_show(line)}")
  return fields


def _show(line: str, width: int = 60) -> str:
  line = line.replace("\t", "\\t")
  return repr(line if len(line) <= width else line[:width] + "...")


def _int(path, lineno: int, name: str, value: str, minimum: int = 0) -> int:
  try:
    n = int(value)
  except ValueError:
    raise DataError(f"{path}:{lineno}: {name} must be an integer, got "
                    f"{value!r}") from None
  if n < minimum:
    raise DataError(f"{path}:{lineno}: {name} must be >= {minimum}, got {n}")
  return n


def _label(path, lineno: int, value: str) -> bool:
  if value not in LABELS:
    raise DataError(f"{path}:{lineno}: label must be {SINGULAR} (singular) or "
                    f"{PLURAL} (plural), got {value!r}")
  return value == PLURAL


# ---------------------------------------------------------------------------
# Linzen et al. 2016.


def read_simple(path: str | pathlib.Path,
                n_attractors: int | None = None) -> list[AgreementItem]:
  """The simplified release: ``LABEL<TAB>PREFIX`` per line.

  ``n_attractors`` defaults to N for a file named ``numpred.test.N`` (the
  release's files by attractor count) and None otherwise. Blank lines are
  skipped; an empty prefix is malformed (there is nothing to read).
  """
  path = pathlib.Path(path)
  if n_attractors is None:
    m = SIMPLE_FILE.search(path.name)
    if m and m.group(2) is not None:
      n_attractors = int(m.group(2))
  items = []
  for lineno, line in _lines(path):
    if not line.strip():
      continue
    label, prefix = _fields(path, lineno, line, ("label", "prefix"))
    plural = _label(path, lineno, label.strip())
    words = tuple(prefix.split())
    if not words:
      raise DataError(f"{path}:{lineno}: empty prefix")
    items.append(AgreementItem(words, plural, n_attractors,
                               source=f"{path}:{lineno}"))
  return items


def simple_test_files(directory: str | pathlib.Path) -> dict[int, pathlib.Path]:
  """``numpred.test.N`` files of a simplified-release directory, by N."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise DataError(f"agreement data directory {directory} does not exist")
  files = {}
  for p in directory.iterdir():
    m = SIMPLE_FILE.fullmatch(p.name)
    if m and m.group(1) == "test" and m.group(2) is not None:
      files[int(m.group(2))] = p
  return dict(sorted(files.items()))


def read_linzen_tsv(path: str | pathlib.Path,
                    max_length: int = 0) -> list[AgreementItem]:
  """The full dependency TSV of Linzen et al. (their ``deps_to_tsv``).

  The prefix is ``sentence`` (rare words already replaced by their POS tag) up
  to the verb; ``verb_index`` and ``subj_index`` are 1-based, as in the CoNLL
  parse they come from. The label is ``verb_pos``. Attractors are
  ``n_diff_intervening`` (intervening NN/NNS nouns of the other number than
  the subject), counted only under homogeneous intervention
  (``n_diff_intervening`` is 0 or equals ``n_intervening``); otherwise None.

  ``max_length`` > 0 drops dependencies whose whole sentence is longer (the
  reference code keeps sentences of at most 50 words).

  The file is read with ``csv`` (tab-delimited, ``"`` quoting), the module
  their writer used, so quoted fields round-trip.
  """
  path = pathlib.Path(path)
  lines = ((lineno, line) for lineno, line in _lines(path))
  first = next(lines, None)
  if first is None:
    raise DataError(f"{path} is empty; expected a header row with "
                    f"{', '.join(LINZEN_COLUMNS)}")
  header = first[1].split("\t")
  missing = [c for c in LINZEN_COLUMNS if c not in header]
  if missing:
    raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)} "
                    f"(got {', '.join(header[:20])})")
  col = {name: header.index(name) for name in LINZEN_COLUMNS}
  items = []
  for lineno, line in lines:
    if not line.strip():
      continue
    try:
      row = next(csv.reader([line], delimiter="\t", strict=True))
    except csv.Error as e:
      raise DataError(f"{path}:{lineno}: {e}") from None
    if len(row) != len(header):
      raise DataError(f"{path}:{lineno}: expected {len(header)} tab-separated "
                      f"fields as in the header, got {len(row)}: {_show(line)}")
    get = lambda name: row[col[name]]
    ints = {n: _int(path, lineno, n, get(n)) for n in _LINZEN_INTS}
    plural = _label(path, lineno, get("verb_pos"))
    words = get("sentence").split()
    v = ints["verb_index"] - 1  # 0-based position of the verb
    if not 1 <= v < len(words):
      raise DataError(f"{path}:{lineno}: verb_index {ints['verb_index']} is "
                      f"outside the sentence's {len(words)} words (or leaves "
                      "no prefix)")
    if ints["n_diff_intervening"] > ints["n_intervening"]:
      raise DataError(f"{path}:{lineno}: n_diff_intervening "
                      f"{ints['n_diff_intervening']} > n_intervening "
                      f"{ints['n_intervening']}")
    if max_length and len(words) > max_length:
      continue
    n_diff = ints["n_diff_intervening"]
    homogeneous = n_diff in (0, ints["n_intervening"])
    items.append(AgreementItem(
        tuple(words[:v]), plural, n_diff if homogeneous else None,
        distance=ints["distance"], source=f"{path}:{lineno}"))
  return items


def split_linzen(items: Sequence[AgreementItem], seed: int,
                 fractions: tuple[float, float, float] = (0.09, 0.01, 0.90)
                 ) -> tuple[list[AgreementItem], list[AgreementItem],
                            list[AgreementItem]]:
  """(train, valid, test) as in the paper: 9% / 1% / 90% of a seeded shuffle.

  The reference code shuffles with a fixed seed, takes 10% for training and
  lets Keras hold out the last tenth of that for validation; the fractions
  here give the same sizes.
  """
  if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
    raise DataError(f"split fractions must be three non-negative numbers "
                    f"summing to 1, got {fractions}")
  order = np.random.default_rng(seed).permutation(len(items))
  n_train = int(round(fractions[0] * len(items)))
  n_valid = int(round(fractions[1] * len(items)))
  pick = lambda idx: [items[i] for i in idx]
  return (pick(order[:n_train]), pick(order[n_train:n_train + n_valid]),
          pick(order[n_train + n_valid:]))


def split_off(items: Sequence[AgreementItem], fraction: float, seed: int
              ) -> tuple[list[AgreementItem], list[AgreementItem]]:
  """(rest, held_out): a seeded ``fraction`` held out, e.g. a dev set for early
  stopping when a single file is all the training data there is."""
  if not 0 < fraction < 1:
    raise DataError(f"held-out fraction must be in (0, 1), got {fraction}")
  order = np.random.default_rng(seed).permutation(len(items))
  n = max(1, int(round(fraction * len(items))))
  return [items[i] for i in order[n:]], [items[i] for i in order[:n]]


# ---------------------------------------------------------------------------
# Gulordava et al. 2018.


def read_gulordava(text_path: str | pathlib.Path,
                   gold_path: str | pathlib.Path) -> list[AgreementItem]:
  """Sentences (``.text``) and targets (``.gold``), line-aligned.

  A ``.gold`` line is ``target_index<TAB>correct_form<TAB>wrong_form<TAB>
  n_attractors`` with the 0-based index of the verb among the whitespace
  tokens of the same line of ``.text``. The prefix is the tokens before it.
  The sentence's own token at that index is not checked against the correct
  form: in the nonce sentences it is a different verb on purpose.
  """
  text_path, gold_path = pathlib.Path(text_path), pathlib.Path(gold_path)
  sentences = list(_lines(text_path))
  golds = list(_lines(gold_path))
  if len(sentences) != len(golds):
    raise DataError(f"{text_path} has {len(sentences)} lines but {gold_path} "
                    f"has {len(golds)}; they must be line-aligned")
  columns = ("target_index", "correct_form", "wrong_form", "n_attractors")
  items = []
  for (lineno, sentence), (_, gold) in zip(sentences, golds):
    index, correct, wrong, n_attr = _fields(gold_path, lineno, gold, columns)
    index = _int(gold_path, lineno, "target_index", index)
    n_attr = _int(gold_path, lineno, "n_attractors", n_attr)
    correct, wrong = correct.strip(), wrong.strip()
    if not correct or not wrong or " " in correct or " " in wrong:
      raise DataError(f"{gold_path}:{lineno}: correct_form and wrong_form must "
                      f"be single words, got {correct!r} and {wrong!r}")
    words = sentence.split()
    if not words:
      raise DataError(f"{text_path}:{lineno}: empty sentence")
    if not 1 <= index < len(words):
      raise DataError(
          f"{gold_path}:{lineno}: target_index {index} is outside the "
          f"{len(words)} tokens of {text_path.name}:{lineno} (or leaves no "
          "prefix)")
    items.append(AgreementItem(tuple(words[:index]), None, n_attr, correct,
                               wrong, source=f"{gold_path}:{lineno}"))
  return items


def read_generated_tab(path: str | pathlib.Path) -> list[AgreementItem]:
  """Gulordava et al.'s ``generated.tab``: a ``class=correct`` row and a
  ``class=wrong`` row per item, adjacent, with the same pattern, constr_id,
  sent_id and prefix. ``condition`` is the pattern; ``type`` (``original`` or
  ``generated``) is kept in it as ``pattern/type``.

  Fields are read with ``csv`` (the file quotes sentences that contain ``"``).
  """
  path = pathlib.Path(path)
  try:
    handle = open(path, newline="", encoding="utf-8-sig")
  except OSError as e:
    raise DataError(f"cannot read {path}: {e.strerror or e}") from None
  items = []
  with handle:
    reader = csv.reader(handle, delimiter="\t", strict=True)
    try:
      header = next(reader, None)
      if header is None:
        raise DataError(f"{path} is empty; expected a header row with "
                        f"{', '.join(GENERATED_COLUMNS)}")
      missing = [c for c in GENERATED_COLUMNS if c not in header]
      if missing:
        raise DataError(f"{path}:1: header lacks column(s) "
                        f"{', '.join(missing)}")
      col = {name: header.index(name) for name in GENERATED_COLUMNS}
      pending = None  # (lineno, row) waiting for its partner
      for row in reader:
        lineno = reader.line_num
        if not any(f.strip() for f in row):
          continue
        if len(row) != len(header):
          raise DataError(f"{path}:{lineno}: expected {len(header)} "
                          f"tab-separated fields as in the header, got "
                          f"{len(row)}")
        get = lambda name, r=row: r[col[name]]
        if get("class") not in ("correct", "wrong"):
          raise DataError(f"{path}:{lineno}: class must be 'correct' or "
                          f"'wrong', got {get('class')!r}")
        if get("correct_number") not in ("sing", "plur"):
          raise DataError(f"{path}:{lineno}: correct_number must be 'sing' or "
                          f"'plur', got {get('correct_number')!r}")
        _int(path, lineno, "n_attr", get("n_attr"))
        if pending is None:
          pending = (lineno, row)
          continue
        first_line, first = pending
        pending = None
        key = lambda r: tuple(r[col[c]] for c in ("pattern", "constr_id",
                                                  "sent_id", "prefix"))
        classes = {first[col["class"]], get("class")}
        if key(first) != key(row) or classes != {"correct", "wrong"}:
          raise DataError(
              f"{path}:{lineno}: row does not pair with line {first_line}: "
              "rows come in pairs (class correct and wrong) with the same "
              "pattern, constr_id, sent_id and prefix")
        correct, wrong = ((first, row) if first[col["class"]] == "correct"
                          else (row, first))
        words = tuple(get("prefix").split())
        if not words:
          raise DataError(f"{path}:{lineno}: empty prefix")
        items.append(AgreementItem(
            words, get("correct_number") == "plur", int(get("n_attr")),
            correct[col["form"]].strip(), wrong[col["form"]].strip(),
            condition=f"{get('pattern')}/{get('type')}",
            source=f"{path}:{first_line}"))
    except csv.Error as e:
      raise DataError(f"{path}:{reader.line_num}: {e}") from None
    if pending is not None:
      raise DataError(f"{path}:{pending[0]}: row has no partner (rows come in "
                      "pairs, class correct and wrong)")
  return items


# ---------------------------------------------------------------------------
# Minimal pairs (Marvin & Linzen 2018 style).


def read_minimal_pairs(path: str | pathlib.Path) -> list[MinimalPair]:
  """``condition<TAB>grammatical sentence<TAB>ungrammatical sentence`` lines.

  A first line ``condition<TAB>grammatical<TAB>ungrammatical`` is taken as a
  header; blank lines and lines starting with ``#`` are skipped.
  """
  path = pathlib.Path(path)
  pairs = []
  columns = ("condition", "grammatical", "ungrammatical")
  for lineno, line in _lines(path):
    if not line.strip() or line.startswith("#"):
      continue
    fields = _fields(path, lineno, line, columns)
    if not pairs and [f.strip().lower() for f in fields] == list(columns):
      continue
    condition, good, bad = (f.strip() for f in fields)
    good, bad = tuple(good.split()), tuple(bad.split())
    if not condition or not good or not bad:
      raise DataError(f"{path}:{lineno}: condition and both sentences must be "
                      f"non-empty: {_show(line)}")
    pairs.append(MinimalPair(condition, good, bad, source=f"{path}:{lineno}"))
  return pairs


# ---------------------------------------------------------------------------
# Synthetic sets from the embedded grammar.


def synthetic_items(seed: int, n_attractors: int | None, num_items: int,
                    distance: int | None = None) -> list[AgreementItem]:
  """Items of the embedded grammar (:func:`grammar.agreement_items`).

  With ``n_attractors`` = k every intervening noun is an attractor, as in the
  ``numpred.test.k`` files (k = 0: no intervening noun). With ``n_attractors``
  None and a ``distance``, any structure whose verb is ``distance`` words
  after the subject's noun; its attractors are counted only under homogeneous
  intervention, as for the real data.
  """
  from rnn_research.data import grammar  # pylint: disable=g-import-not-at-top
  raw = grammar.agreement_items(seed, n_attractors, num_items,
                                distance=distance,
                                only_attractors=n_attractors is not None)
  return [AgreementItem(
      tuple(it.prefix), it.label == "plural",
      it.n_attractors if it.n_attractors in (0, it.n_intervening_nouns)
      else None, it.correct_verb, it.wrong_verb, distance=it.distance,
      source=f"grammar(seed={seed}, n_attractors={n_attractors}, "
             f"distance={distance})") for it in raw]


# ---------------------------------------------------------------------------
# Batches.


def build_vocab(items: Iterable[AgreementItem]) -> Vocab:
  """Vocabulary of the training prefixes, ``<pad>`` first (id 0).

  A dedicated padding id lets left-padded batches be read as the reference
  Keras model read them (padding is a word it learns to ignore).
  """
  return Vocab.build(
      (w for words in ([PAD],) + tuple(i.prefix for i in items) for w in words))


@dataclasses.dataclass
class EncodedItems:
  """Items as arrays, right-padded with ``<pad>`` (id 0 of :func:`build_vocab`).

  Attributes:
    tokens: int32 (N, T), T the longest prefix (after ``max_length``).
    lengths: int32 (N,), real prefix lengths.
    labels: int32 (N,), 1 = plural; -1 where unknown.
    n_attractors: int32 (N,), -1 where not counted.
    distance: int32 (N,), -1 where unknown.
    num_oov: prefix words not in the vocabulary (mapped to ``<unk>``).
  """

  tokens: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  n_attractors: np.ndarray
  distance: np.ndarray
  num_oov: int

  def __len__(self) -> int:
    return len(self.lengths)


def encode(items: Sequence[AgreementItem], vocab: Vocab,
           max_length: int = 0) -> EncodedItems:
  """Encodes prefixes; ``max_length`` > 0 keeps only the *last* that many
  words of a longer prefix (the words nearest the verb)."""
  if not items:
    raise DataError("no agreement items to encode")
  prefixes = [it.prefix[-max_length:] if max_length else it.prefix
              for it in items]
  lengths = np.array([len(p) for p in prefixes], np.int32)
  if lengths.min() < 1:
    raise DataError(f"empty prefix in {items[int(lengths.argmin())].source}")
  tokens = np.full((len(items), int(lengths.max())), vocab.index(PAD)
                   if PAD in vocab else 0, np.int32)  # (N, T)
  num_oov = 0
  for row, words in enumerate(prefixes):
    ids, oov = vocab.encode_with_oov(words)
    tokens[row, :len(ids)] = ids
    num_oov += oov
  as_int = lambda v: -1 if v is None else int(v)
  return EncodedItems(
      tokens=tokens, lengths=lengths,
      labels=np.array([as_int(it.plural) for it in items], np.int32),
      n_attractors=np.array([as_int(it.n_attractors) for it in items], np.int32),
      distance=np.array([as_int(it.distance) for it in items], np.int32),
      num_oov=num_oov)
