"""Language-model corpora: reading tokens, the vocabulary, and the three splits.

A corpus is three 1-D int32 arrays (train, valid, test) over one vocabulary.
Text is read the way PyTorch's ``word_language_model`` example and the
TensorFlow PTB reader read it: split each line on whitespace and append one
``<eos>`` at every line end, blank lines included (a blank line is a lone
``<eos>``). With that convention Mikolov's PTB has exactly 10,000 word types
and the published perplexities are comparable.

Tokens are words or characters (``config.data.unit``). As characters
(``char``), a text is the sequence of its Unicode characters with newlines
kept as characters (char-rnn, nanoGPT's ``shakespeare_char``); the vocabulary
is the training split's characters and ``<unk>``, and a character that
training lacks becomes ``<unk>`` as an unseen word does.

Three sources, chosen by ``config.data.source``:

* ``local``: a directory of text files, named as Mikolov's PTB
  (``ptb.{train,valid,test}.txt``), WikiText (``wiki.{train,valid,test}.tokens``)
  or plainly (``{train,valid,test}.txt``); or one text file, or (characters
  only) a directory of ``*.txt`` files without split files, which are read as
  one text in name order. One text is cut by fractions (:func:`split_by_fractions`):
  the first part trains, the next ``valid_fraction`` validates, the last
  ``test_fraction`` tests;
* ``hf``: a Hugging Face hub data set (``ptb_text_only``, ``wikitext``), for
  machines with network access; ``datasets`` is imported only here, since the
  GPU machines do not have it;
* ``synthetic``: sentences of the embedded grammar (:mod:`.grammar`), which
  needs no download and whose exact entropy gives the best perplexity any model
  can reach.

Every problem with the input raises :class:`DataError` with a one-line message
naming the file, directory or field at fault.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Iterable, Iterator, Mapping, Sequence

from absl import logging
import numpy as np

from rnn_research.data import fetch

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")

# File-name schemes of a local corpus directory, in the order they are tried.
SPLIT_FILE_SCHEMES = (
    "ptb.{split}.txt",  # Mikolov's PTB
    "wiki.{split}.tokens",  # WikiText-2 / -103
    "{split}.txt",  # anything else
)

SOURCES = ("local", "hf", "synthetic")
UNITS = ("word", "char")


class DataError(ValueError):
  """Missing or malformed data; the message is one line naming the problem."""


# ---------------------------------------------------------------------------
# Reading files.


def read_tokens(path: str | pathlib.Path) -> list[str]:
  """Whitespace tokens of a text file, with ``<eos>`` at every line end.

  Blank lines give a lone ``<eos>`` (PyTorch's example and the TF PTB reader
  do the same), so WikiText's paragraph breaks stay visible to the model. A
  final line without a newline still ends with ``<eos>``. Lines are split on
  ``\\n`` only and a leading UTF-8 byte-order mark is dropped.

  Raises:
    DataError: the file is missing, or a line is not valid UTF-8 (the message
      names the file and the 1-based line number).
  """
  path = pathlib.Path(path)
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"cannot read {path}: {e.strerror or e}") from None
  tokens: list[str] = []
  lines = raw.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()  # the newline that ends the last line starts no new line
  if lines and lines[0].startswith(b"\xef\xbb\xbf"):
    lines[0] = lines[0][3:]
  for lineno, line in enumerate(lines, start=1):
    try:
      text = line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(
          f"{path}:{lineno}: not valid UTF-8 (byte 0x{line[e.start]:02x} at "
          f"column {e.start + 1})") from None
    tokens.extend(text.split())
    tokens.append(EOS)
  return tokens


def read_bytes_without_bom(path: pathlib.Path) -> bytes:
  """A file's bytes, less a leading UTF-8 byte-order mark; DataError if unreadable."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"cannot read {path}: {e.strerror or e}") from None
  return raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw


def numbered_lines(path: str | pathlib.Path) -> Iterator[tuple[int, str]]:
  """(1-based line number, line without its newline) of a UTF-8 text file.

  Splits on ``\\n`` only (a sentence may contain other Unicode line breaks)
  and drops a ``\\r`` before it and a leading byte-order mark.
  """
  path = pathlib.Path(path)
  lines = read_bytes_without_bom(path).split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  for lineno, line in enumerate(lines, start=1):
    try:
      text = line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte "
                      f"0x{line[e.start]:02x} at column {e.start + 1})") from None
    yield lineno, text.removesuffix("\r")


def read_chars(path: str | pathlib.Path) -> list[str]:
  """The characters of a UTF-8 text file, newlines included, as a list.

  Nothing is added or removed but a leading byte-order mark: the file's
  characters are the stream (``\\r`` too, where the file has it).

  Raises:
    DataError: the file is missing, or not valid UTF-8 (naming the file, the
      1-based line and the column).
  """
  path = pathlib.Path(path)
  raw = read_bytes_without_bom(path)
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    newline = b"\n"
    line_start = raw.rfind(newline, 0, e.start) + 1
    raise DataError(
        f"{path}:{raw.count(newline, 0, e.start) + 1}: not valid UTF-8 (byte "
        f"0x{raw[e.start]:02x} at column {e.start - line_start + 1})") from None
  return list(text)


def read_units(path: str | pathlib.Path, unit: str) -> list[str]:
  """Tokens of a text file: words with ``<eos>`` (:func:`read_tokens`) or characters."""
  if unit not in UNITS:
    raise DataError(f"unknown config.data.unit {unit!r}; valid: {', '.join(UNITS)}")
  return read_tokens(path) if unit == "word" else read_chars(path)


def split_by_fractions(tokens: Sequence[str], valid_fraction: float,
                       test_fraction: float) -> dict[str, Sequence[str]]:
  """Cuts one token stream into train, valid and test, in that order.

  Train is the first ``int(N * (1 - valid_fraction - test_fraction))`` tokens,
  and the rest is shared between valid and test in proportion to their
  fractions. So nanoGPT's ``shakespeare_char`` split is ``(0.1, 0.0)`` (first
  90% train, last 10% valid, no test) and TFDS's ``tiny_shakespeare`` split is
  ``(0.05, 0.05)`` (90/5/5); on Tiny Shakespeare both give exactly their
  published sizes (1,003,854 / 111,540 and 1,003,854 / 55,770 / 55,770).

  Raises:
    DataError: a fraction outside [0, 1) (valid_fraction must be > 0), or
      fractions summing to 1 or more.
  """
  for name, value in (("valid_fraction", valid_fraction),
                      ("test_fraction", test_fraction)):
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
      raise DataError(f"config.data.{name} must be in [0, 1), got {value!r}")
  if valid_fraction <= 0:
    raise DataError("config.data.valid_fraction must be > 0: the trainer "
                    "validates every epoch")
  held_out = valid_fraction + test_fraction
  if held_out >= 1:
    raise DataError(f"config.data.valid_fraction + test_fraction must be < 1, "
                    f"got {held_out}")
  n = len(tokens)
  train_end = int(n * (1 - held_out))
  valid_end = train_end + round((n - train_end) * valid_fraction / held_out)
  return {"train": tokens[:train_end], "valid": tokens[train_end:valid_end],
          "test": tokens[valid_end:]}


def has_split_files(directory: str | pathlib.Path) -> bool:
  """Whether ``directory`` has a training file of a :data:`SPLIT_FILE_SCHEMES` scheme."""
  directory = pathlib.Path(directory)
  return any((directory / s.format(split="train")).is_file()
             for s in SPLIT_FILE_SCHEMES)


def find_split_files(directory: str | pathlib.Path) -> dict[str, pathlib.Path]:
  """The train/valid/test files of a corpus directory.

  The first scheme of :data:`SPLIT_FILE_SCHEMES` whose training file exists is
  used, and its valid and test files must exist too (mixing schemes would
  silently pair files of different corpora).

  Raises:
    DataError: naming the directory and the file names it expected.
  """
  directory = pathlib.Path(directory)
  expected = ", ".join(s.format(split="train") for s in SPLIT_FILE_SCHEMES)
  if not directory.is_dir():
    what = "is not a directory" if directory.exists() else "does not exist"
    raise DataError(f"data directory {directory} {what}; expected a training "
                    f"file named one of {expected} (with valid and test beside "
                    f"it); {fetch.fetch_hint(directory)}")
  for scheme in SPLIT_FILE_SCHEMES:
    files = {s: directory / scheme.format(split=s) for s in SPLITS}
    if not files["train"].is_file():
      continue
    missing = [files[s].name for s in SPLITS if not files[s].is_file()]
    if missing:
      raise DataError(f"data directory {directory} has {files['train'].name} "
                      f"but no {' or '.join(missing)}")
    return files
  raise DataError(f"no training file in data directory {directory}; expected "
                  f"one of {expected} (with valid and test beside it); "
                  f"{fetch.fetch_hint(directory)}")


# ---------------------------------------------------------------------------
# Vocabulary.


class Vocab:
  """Token <-> id map, fixed by the training tokens alone.

  Ids follow the order of first occurrence in the training tokens, as in
  PyTorch's ``word_language_model`` (which is what makes the mapping
  deterministic without sorting). Unlike that example, valid and test never add
  words: a word absent from training maps to ``<unk>``, so the vocabulary (and
  the softmax size) does not depend on the evaluation splits. ``<unk>`` is
  appended at the end when training lacks it (PTB already contains it, so PTB
  ids equal PyTorch's).

  Save it with :meth:`to_json` beside a checkpoint so that evaluation and
  generation runs reload exactly the same ids.
  """

  def __init__(self, tokens: Sequence[str], unk: str = UNK, eos: str = EOS):
    self._itos = list(tokens)
    self._stoi = {t: i for i, t in enumerate(self._itos)}
    if len(self._stoi) != len(self._itos):
      raise DataError("vocabulary has duplicate tokens")
    if unk not in self._stoi:
      raise DataError(f"vocabulary lacks its unknown-word token {unk!r}")
    self.unk = unk
    self.eos = eos

  @classmethod
  def build(cls, train_tokens: Iterable[str], unk: str = UNK,
            eos: str = EOS) -> Vocab:
    """Types of ``train_tokens`` in first-occurrence order, plus ``unk``."""
    itos = list(dict.fromkeys(train_tokens))  # dicts keep insertion order
    if unk not in itos:
      itos.append(unk)
    return cls(itos, unk=unk, eos=eos)

  def __len__(self) -> int:
    return len(self._itos)

  def __contains__(self, token: str) -> bool:
    return token in self._stoi

  def __eq__(self, other: Any) -> bool:
    return (isinstance(other, Vocab) and self._itos == other._itos and
            self.unk == other.unk and self.eos == other.eos)

  def __repr__(self) -> str:
    return f"Vocab(size={len(self)}, unk={self.unk!r}, eos={self.eos!r})"

  @property
  def tokens(self) -> list[str]:
    """All tokens, index = id (a copy)."""
    return list(self._itos)

  @property
  def unk_id(self) -> int:
    return self._stoi[self.unk]

  @property
  def eos_id(self) -> int:
    """Id of ``eos``, or -1 when the vocabulary has none."""
    return self._stoi.get(self.eos, -1)

  def index(self, token: str) -> int:
    """Id of ``token``; the ``<unk>`` id when it is not in the vocabulary."""
    return self._stoi.get(token, self.unk_id)

  def encode_with_oov(self, tokens: Sequence[str]) -> tuple[np.ndarray, int]:
    """(ids, number of tokens not in the vocabulary, which became ``<unk>``)."""
    get = self._stoi.get
    ids = np.fromiter((get(t, -1) for t in tokens), np.int32, len(tokens))
    oov = ids < 0
    num_oov = int(oov.sum())
    ids[oov] = self.unk_id
    return ids, num_oov

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """Token ids, int32 (N,); unknown tokens map to ``<unk>``."""
    return self.encode_with_oov(tokens)[0]

  def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
    """Tokens of ``ids``; an id out of range raises DataError."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
      raise DataError(f"token id out of range for a vocabulary of {len(self)}: "
                      f"{int(ids.min() if ids.min() < 0 else ids.max())}")
    return [self._itos[i] for i in ids.tolist()]

  def to_dict(self) -> dict[str, Any]:
    return {"format": "rnn_research.vocab", "version": 1, "unk": self.unk,
            "eos": self.eos, "tokens": list(self._itos)}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> Vocab:
    if d.get("format") != "rnn_research.vocab" or not isinstance(
        d.get("tokens"), list):
      raise DataError("not an rnn_research vocabulary (missing 'format' or "
                      "'tokens')")
    return cls(d["tokens"], unk=d.get("unk", UNK), eos=d.get("eos", EOS))

  def to_json(self, path: str | pathlib.Path) -> None:
    """Writes the vocabulary (tokens in id order) as JSON, UTF-8."""
    pathlib.Path(path).write_text(
        json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

  @classmethod
  def from_json(cls, path: str | pathlib.Path) -> Vocab:
    """Reads a vocabulary written by :meth:`to_json`."""
    path = pathlib.Path(path)
    try:
      d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
      raise DataError(f"cannot read vocabulary {path}: {e.strerror or e}"
                      ) from None
    except (ValueError, UnicodeDecodeError) as e:
      raise DataError(f"vocabulary {path} is not valid JSON: {e}") from None
    try:
      return cls.from_dict(d)
    except DataError as e:
      raise DataError(f"vocabulary {path}: {e}") from None


# ---------------------------------------------------------------------------
# Corpus.


@dataclasses.dataclass(frozen=True)
class OOVStats:
  """Words of a split absent from the training vocabulary (mapped to <unk>)."""

  num_oov: int
  num_tokens: int

  @property
  def rate(self) -> float:
    return self.num_oov / self.num_tokens if self.num_tokens else 0.0


@dataclasses.dataclass
class Corpus:
  """Three splits as 1-D int32 id arrays over one vocabulary.

  Attributes:
    vocab: built from the training tokens.
    train, valid, test: token ids (N,), int32, ``<eos>`` included.
    oov: per split, the words mapped to ``<unk>`` because training lacks them
      (always zero for train).
    source: where the text came from, for logs and run summaries.
    optimal_ppl: for the synthetic grammar only, the perplexity of the true
      generating model on each split ('train', 'valid', 'test'): the best any
      model can reach. None for real text.
    unit: 'word' or 'char', what one token is.
    split_note: how the splits were made (files, or fractions of one text),
      for run summaries.
  """

  vocab: Vocab
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  oov: dict[str, OOVStats]
  source: str
  optimal_ppl: dict[str, float] | None = None
  unit: str = "word"
  split_note: str = ""

  def split(self, name: str) -> np.ndarray:
    if name not in SPLITS:
      raise DataError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
    return getattr(self, name)


def corpus_from_tokens(splits: Mapping[str, Sequence[str]], source: str,
                       optimal_ppl: dict[str, float] | None = None,
                       unit: str = "word", split_note: str = "") -> Corpus:
  """Builds the vocabulary from ``splits['train']`` and encodes all three."""
  if not splits["train"]:
    raise DataError(f"training split of {source} is empty")
  if len(splits["valid"]) < 2:
    raise DataError(f"validation split of {source} has {len(splits['valid'])} "
                    "tokens; it needs at least 2")
  vocab = Vocab.build(splits["train"])
  arrays, oov = {}, {}
  for name in SPLITS:
    arrays[name], num_oov = vocab.encode_with_oov(splits[name])
    oov[name] = OOVStats(num_oov, len(splits[name]))
  logging.info("%s: vocabulary %d; tokens train %d, valid %d, test %d", source,
               len(vocab), *(len(arrays[s]) for s in SPLITS))
  for name in ("valid", "test"):
    if oov[name].num_oov:
      logging.info("%s: %d of %d %s tokens (%.3f%%) are not in the training "
                   "vocabulary and became %s", source, oov[name].num_oov,
                   oov[name].num_tokens, name, 100 * oov[name].rate, vocab.unk)
  return Corpus(vocab=vocab, oov=oov, source=source, optimal_ppl=optimal_ppl,
                unit=unit, split_note=split_note, **arrays)


def _field(config: Any, name: str, default: Any = None) -> Any:
  """config.<name> for a ConfigDict or a dict, ``default`` where absent."""
  try:
    value = config.get(name, default)
  except AttributeError:
    value = getattr(config, name, default)
  return default if value is None else value


def _require(config: Any, name: str, source: str) -> Any:
  value = _field(config, name)
  if value in (None, ""):
    raise DataError(f"config.data.{name} is required for "
                    f"config.data.source={source!r}")
  return value


def local_splits(path: str | pathlib.Path, unit: str = "word",
                 valid_fraction: float = 0.05, test_fraction: float = 0.05
                 ) -> tuple[dict[str, Sequence[str]], str]:
  """(train/valid/test tokens, how they were split) of a local corpus.

  ``path`` is a directory with split files (:func:`find_split_files`), or one
  text file cut by the fractions, or, for characters, a directory of
  ``*.txt`` files read in name order as one text and cut the same way.

  Raises:
    DataError: a missing or empty text, a bad fraction, a directory without
      split files (words) or without ``*.txt`` files (characters).
  """
  path = pathlib.Path(path)
  if unit not in UNITS:
    raise DataError(f"unknown config.data.unit {unit!r}; valid: {', '.join(UNITS)}")
  if path.is_dir() and (unit == "word" or has_split_files(path)):
    files = find_split_files(path)
    splits = {name: read_units(f, unit) for name, f in files.items()}
    if not splits["train"]:
      raise DataError(f"training file {files['train']} is empty")
    return splits, f"split files {', '.join(f.name for f in files.values())}"
  if path.is_dir():
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files:
      raise DataError(f"data directory {path} has neither split files "
                      f"({SPLIT_FILE_SCHEMES[0].format(split='train')}, ...) nor "
                      "*.txt files to read as one text")
    tokens = [t for f in files for t in read_units(f, unit)]
    what = f"{len(files)} *.txt files of {path}" if len(files) > 1 else str(files[0])
  elif path.is_file():
    tokens, what = read_units(path, unit), str(path)
  else:
    raise DataError(f"data path {path} does not exist; expected a text file "
                    f"or a directory of text files; {fetch.fetch_hint(path)}")
  if not tokens:
    raise DataError(f"text file {what} is empty")
  splits = split_by_fractions(tokens, valid_fraction, test_fraction)
  pct = lambda f: f"{100 * f:g}%"
  note = (f"{what} cut in order: train the first "
          f"{pct(1 - valid_fraction - test_fraction)}, valid the next "
          f"{pct(valid_fraction)}, test the last {pct(test_fraction)}"
          f" (data.valid_fraction={valid_fraction:g}, "
          f"data.test_fraction={test_fraction:g})")
  return splits, note


def load_local(directory: str | pathlib.Path, unit: str = "word",
               valid_fraction: float = 0.05, test_fraction: float = 0.05
               ) -> Corpus:
  """A corpus from ``directory``'s split files, or one text cut by fractions."""
  splits, note = local_splits(directory, unit, valid_fraction, test_fraction)
  return corpus_from_tokens(splits, source=f"local:{pathlib.Path(directory)}",
                            unit=unit, split_note=note)


def load_hf(name: str, config_name: str = "") -> Corpus:
  """A corpus from a Hugging Face hub data set, e.g. ``ptb_text_only``.

  The text column is the data set's string column ('sentence' in
  ``ptb_text_only``, 'text' in ``wikitext``); each row is one line.
  """
  label = f"{name!r}" + (f" ({config_name})" if config_name else "")
  hint = ("use local files with --config.data.source=local "
          "--config.data.dir=DIR")
  try:
    import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError(f"cannot load {label}: the 'datasets' package is not "
                    f"installed; {hint}") from None
  try:
    dsets = datasets.load_dataset(name, config_name or None)
  except Exception as e:  # pylint: disable=broad-except
    # Offline it is a ConnectionError; a bad name is DatasetNotFoundError; a
    # bad config a ValueError. All end the run the same way.
    reason = " ".join(str(e).split())[:160]
    raise DataError(f"could not load {label} from the Hugging Face hub "
                    f"(offline? {type(e).__name__}: {reason}); {hint}"
                    ) from None
  hf_splits = {"train": "train", "valid": "validation", "test": "test"}
  missing = [s for s in hf_splits.values() if s not in dsets]
  if missing:
    raise DataError(f"Hugging Face data set {label} has no split "
                    f"{', '.join(missing)} (has {', '.join(dsets)})")
  column = _text_column(dsets["train"], label)
  splits = {}
  for ours, theirs in hf_splits.items():
    tokens: list[str] = []
    for line in dsets[theirs][column]:
      tokens.extend(line.split())
      tokens.append(EOS)
    splits[ours] = tokens
  return corpus_from_tokens(splits, source=f"hf:{name}" +
                            (f"/{config_name}" if config_name else ""))


def _text_column(dset: Any, label: str) -> str:
  strings = [c for c, f in dset.features.items()
             if getattr(f, "dtype", None) in ("string", "large_string")]
  for preferred in ("text", "sentence"):
    if preferred in strings:
      return preferred
  if len(strings) == 1:
    return strings[0]
  raise DataError(f"Hugging Face data set {label}: cannot tell the text column "
                  f"among {', '.join(dset.features) or 'no columns'}")


def load_synthetic(grammar_seed: int, num_train_sentences: int,
                   num_valid_sentences: int, num_test_sentences: int) -> Corpus:
  """Sentences of the default grammar, with the optimal perplexity per split."""
  from rnn_research.data import grammar as grammar_lib  # pylint: disable=g-import-not-at-top
  g = grammar_lib.Grammar()
  splits = grammar_lib.generate_corpus(grammar_seed, num_train_sentences,
                                       num_valid_sentences, num_test_sentences,
                                       grammar=g)
  optimal_ppl = {
      name: math.exp(grammar_lib.entropy_per_token(
          grammar_lib.split_sentences(tokens), grammar=g))
      for name, tokens in splits.items()
  }
  logging.info("synthetic grammar: optimal perplexity %s",
               ", ".join(f"{k} {v:.3f}" for k, v in optimal_ppl.items()))
  return corpus_from_tokens(splits, source=f"synthetic:seed={grammar_seed}",
                            optimal_ppl=optimal_ppl)


def load_corpus(data_config: Any) -> Corpus:
  """The corpus that ``config.data`` names.

  Fields read: ``source`` ('local', 'hf' or 'synthetic'); for local ``dir``,
  ``unit`` ('word' or 'char'), ``valid_fraction`` and ``test_fraction`` (for
  one text); for hf ``hf_name`` and ``hf_config`` ('' for none); for synthetic
  ``grammar_seed``, ``num_train_sentences``, ``num_valid_sentences``,
  ``num_test_sentences``.
  """
  source = _field(data_config, "source", "")
  unit = _field(data_config, "unit", "word")
  if unit not in UNITS:
    raise DataError(f"unknown config.data.unit {unit!r}; valid: {', '.join(UNITS)}")
  if unit == "char" and source != "local":
    raise DataError(f"config.data.unit='char' needs config.data.source='local' "
                    f"(a text file or directory), got {source!r}")
  if source == "local":
    return load_local(_require(data_config, "dir", source), unit,
                      _field(data_config, "valid_fraction", 0.05),
                      _field(data_config, "test_fraction", 0.05))
  if source == "hf":
    return load_hf(_require(data_config, "hf_name", source),
                   _field(data_config, "hf_config", ""))
  if source == "synthetic":
    counts = []
    for name in ("num_train_sentences", "num_valid_sentences",
                 "num_test_sentences"):
      n = _require(data_config, name, source)
      if not isinstance(n, int) or n <= 0:
        raise DataError(f"config.data.{name} must be a positive integer, "
                        f"got {n!r}")
      counts.append(n)
    return load_synthetic(int(_field(data_config, "grammar_seed", 0)), *counts)
  raise DataError(f"unknown config.data.source {source!r}; valid: "
                  f"{', '.join(SOURCES)}")
