"""Fetching the corpora the studies read, in the files our readers take.

    python -m experiments.get_data NAME [--dir=data/NAME] [--force]

One entry per corpus (:func:`spec`); each has three parts, kept apart so that
everything but the download is tested offline:

* ``fetch``: the network, one small function per source (a Hugging Face hub
  data set through ``datasets``, imported only there, or the corpus's official
  archive over HTTPS). Any failure raises :class:`SourceUnreachable`.
* ``convert``: a pure function from what the source gives (a ``DatasetDict``,
  archive bytes, file bytes) to our files, ``{relative path: bytes}``.
* ``check``: counts of the converted files (lines, tokens, sentences) against
  the published ones; a mismatch raises :class:`CountError` and nothing is
  written. It returns the lines printed beside each file.

:func:`get_data` refuses a target folder that holds files (unless ``force``),
then fetches, converts and checks in memory, and writes into a temporary
folder beside the target that is renamed into place only once complete, so a
half-written folder is never left behind.

Files are compared with the reference copies the project's results were
measured on (:data:`REFERENCE_SHA256`); a difference is reported, not refused,
since the counts are what the readers depend on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import io
import json
import pathlib
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
from typing import Any, Callable, Iterable, Mapping

EOS = "<eos>"  # what corpus.read_tokens appends at each line end
UNK = "<unk>"
DATA_ROOT = pathlib.Path("data")

# Sources. Module-level so tests can point them at an unreachable address.
PTB_HF = ("ptb-text-only/ptb_text_only", None, "refs/convert/parquet")
WIKITEXT2_HF = ("Salesforce/wikitext", "wikitext-2-v1", None)
UD_TAG = "r2.16"
UD_RAW = "https://raw.githubusercontent.com/UniversalDependencies/{repo}/{tag}/{file}"
UD_LISTING = "https://api.github.com/repos/UniversalDependencies/{repo}/contents?ref={tag}"
SST_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
TINYSHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/"
                       "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/"
                       "tinyshakespeare/input.txt")
LINZEN_URL = "http://tallinzen.net/media/rnn_agreement/rnn_agr_simple.tar.gz"
TIMEOUT_S = 60.0

# sha256 of the reference copies (the files the project's figures came from).
REFERENCE_SHA256 = {
    "ptb": {
        "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
        "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
        "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
    },
    "ud_en_ewt": {
        "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
        "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
        "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
        "stats.xml": "1e1e44c4f97b181fc775b42f819895955db4bbda0eaabee01cb590ccf00e89b4",
    },
    "sst": {
        "train.txt": "e2f3f41b0b1e6d4dddc0effe3bfc2d27ed8928079aa9a03d652311614fc5feb7",
        "dev.txt": "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40",
        "test.txt": "6e54806dee95cf80cd918e7dfb3f6770f6df24bf826f289a4d1f709e1c8f6761",
        "sst2_sentences.train.tsv": "924643ccc552990e6ef5be145055589f18e0cfcbe79fa5cc415b7693299a16a2",
        "sst2_sentences.dev.tsv": "251db20bcd8c06e2aedf2bebb318503632d395ee2b840273699de2f76a3819f3",
        "sst2_sentences.test.tsv": "ef9c71c6b30593e2ab6437a0874d879c58b805ad83336ec8bc12553ec63510f4",
    },
    "tinyshakespeare": {
        "input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    },
    "linzen2016": {
        "rnn_agr_simple/numpred.val": "430643ef15cacdcc2ff88afe44a87b9aeaa094c683653a54c2a936428d300245",
        "rnn_agr_simple/numpred.test.1": "528125391c255b926d6e8c01664188efe5e18a991c1dab88907f796b1198913f",
        "rnn_agr_simple/numpred.test.2": "23ad762fbacea0bb35c26dfcdcd72df52a87535cd3fa9dda2bacee44cb8b60c1",
        "rnn_agr_simple/numpred.test.3": "ce9755d6891b8dcb486a3242f7495fdd3881c93320c2d0d2fda4827a8489de55",
        "rnn_agr_simple/numpred.test.4": "c43e0511bb14904e41b8bfce8a76c84912aa42e61ef5428d7ab4c28197488411",
        "rnn_agr_simple/numpred.test.5": "f7b9922a0e581c4a9d45612eb249e4d314c7b21d4cf7c33c82c6731d9368d838",
    },
}


class SourceUnreachable(OSError):
  """The source could not be reached or read (offline, moved, refused)."""


class CountError(ValueError):
  """Converted files whose counts differ from the published ones."""


Files = dict[str, bytes]


@dataclasses.dataclass(frozen=True)
class Spec:
  """How one corpus is fetched, converted, checked, and where it goes.

  Attributes:
    name: the get_data NAME.
    source: where it comes from, in words (printed).
    fetch: () -> raw, the only part that uses the network.
    convert: raw -> files ({path relative to the target: bytes}).
    check: files -> report lines; raises CountError on a mismatch.
    manual: the files to put where, when the source cannot be reached
      ('{dir}' stands for the target folder).
    reader_dir: the folder a config's data.dir names, relative to the
      target ('' = the target itself).
  """

  name: str
  source: str
  fetch: Callable[[], Any]
  convert: Callable[[Any], Files]
  check: Callable[[Files], list[str]]
  manual: str
  reader_dir: str = ""

  @property
  def default_dir(self) -> pathlib.Path:
    return DATA_ROOT / self.name


# ---------------------------------------------------------------------------
# The network: one small function per source.


def _reason(e: BaseException) -> str:
  text = " ".join(str(e).split())[:160]
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


def download(url: str) -> bytes:
  """The bytes at ``url``; SourceUnreachable on any network failure."""
  try:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
      return response.read()
  except (urllib.error.URLError, http.client.HTTPException, OSError,
          ValueError) as e:
    raise SourceUnreachable(f"cannot download {url} ({_reason(e)})") from None


def load_hf(path: str, name: str | None = None,
            revision: str | None = None) -> Any:
  """``datasets.load_dataset(path, name, revision=revision)``, the package
  imported here only; SourceUnreachable when it cannot load."""
  label = path + (f" ({name})" if name else "") + (
      f" @ {revision}" if revision else "")
  try:
    import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SourceUnreachable(f"cannot load {label}: the 'datasets' package is "
                            "not installed (pip install datasets)") from None
  try:
    return datasets.load_dataset(path, name, revision=revision)
  except Exception as e:  # pylint: disable=broad-except
    # Offline: ConnectionError or a missing-cache error; a moved data set:
    # DatasetNotFoundError. All mean the same to the user.
    raise SourceUnreachable(f"cannot load {label} from the Hugging Face hub "
                            f"({_reason(e)})") from None


def fetch_ptb() -> Any:
  return load_hf(*PTB_HF[:2], revision=PTB_HF[2])


def fetch_wikitext2() -> Any:
  return load_hf(*WIKITEXT2_HF[:2], revision=WIKITEXT2_HF[2])


def ud_listing(repo: str, tag: str) -> list[str]:
  """File names at the top of a UD treebank's repository at ``tag``."""
  raw = download(UD_LISTING.format(repo=repo, tag=tag))
  try:
    return [entry["name"] for entry in json.loads(raw)]
  except (ValueError, TypeError, KeyError) as e:
    raise SourceUnreachable(f"unexpected listing of {repo} at {tag} from the "
                            f"GitHub API ({_reason(e)})") from None


def fetch_ud(repo: str, tag: str, names: Iterable[str] | None = None) -> Files:
  """{file name: bytes} of a treebank's .conllu files and its LICENSE.txt,
  README.md and stats.xml (those of them it has), at release ``tag``."""
  if names is None:
    names = ud_listing(repo, tag)
  wanted = [n for n in names if UD_CONLLU.fullmatch(n) or n in UD_EXTRAS]
  return {n: download(UD_RAW.format(repo=repo, tag=tag, file=n))
          for n in wanted}


def fetch_sst() -> bytes:
  return download(SST_URL)


def fetch_tinyshakespeare() -> bytes:
  return download(TINYSHAKESPEARE_URL)


def fetch_linzen() -> bytes:
  return download(LINZEN_URL)


# ---------------------------------------------------------------------------
# Conversions (pure) and count checks.


def _text(name: str, data: bytes) -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"{name} is not valid UTF-8 (byte {e.start})") from None


def _hf_columns(dsets: Any, column: str) -> dict[str, list[str]]:
  """{train, valid, test: rows of ``column``} of a DatasetDict with splits
  train, validation and test."""
  splits = {"train": "train", "valid": "validation", "test": "test"}
  try:
    have = list(dsets)
  except TypeError:
    raise ValueError(f"expected a DatasetDict, got {type(dsets).__name__}"
                     ) from None
  missing = [s for s in splits.values() if s not in have]
  if missing:
    raise ValueError(f"the data set has no split {', '.join(missing)} (has "
                     f"{', '.join(have) or 'none'})")
  out = {}
  for ours, theirs in splits.items():
    if column not in dsets[theirs].column_names:
      raise ValueError(f"split {theirs} has no column {column!r} (has "
                       f"{', '.join(dsets[theirs].column_names)})")
    out[ours] = list(dsets[theirs][column])
  return out


def convert_ptb(dsets: Any) -> Files:
  """ptb_text_only (one stripped line per row, column 'sentence') to
  Mikolov's files: each line is a space, the sentence, a space, a newline."""
  rows = _hf_columns(dsets, "sentence")
  return {f"ptb.{s}.txt": "".join(f" {r} \n" for r in rows[s]).encode("utf-8")
          for s in ("train", "valid", "test")}


def convert_wikitext2(dsets: Any) -> Files:
  """Salesforce/wikitext (one line per row, column 'text', blank lines as
  '') to ``wiki.{train,valid,test}.tokens``; a blank line is written ' \\n'
  as in the original files (the readers see a lone <eos> either way)."""
  rows = _hf_columns(dsets, "text")

  def line(row: str) -> str:
    row = row if row.strip() else " "
    return row if row.endswith("\n") else row + "\n"

  return {f"wiki.{s}.tokens": "".join(map(line, rows[s])).encode("utf-8")
          for s in ("train", "valid", "test")}


def lm_counts(data: bytes) -> tuple[int, int, set[str]]:
  """(lines, tokens with one <eos> per line, types): what corpus.read_tokens
  reads from the same bytes."""
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  types: set[str] = set()
  tokens = 0
  for line in lines:
    words = line.decode("utf-8").split()
    tokens += len(words) + 1
    types.update(words)
  return len(lines), tokens, types


class _Checker:
  """Collects count mismatches; raises them together."""

  def __init__(self, corpus: str):
    self.corpus = corpus
    self.errors: list[str] = []
    self.checked = 0

  def expect(self, what: str, got: int, want: int | None) -> str:
    if want is not None:
      self.checked += 1
      if got != want:
        self.errors.append(f"{what} {got:,} (published {want:,})")
    return f"{got:,}"

  def done(self, report: list[str]) -> list[str]:
    """``report`` and a last line saying how many counts were checked."""
    if self.errors:
      raise CountError(f"{self.corpus}: counts differ from the published ones: "
                       f"{'; '.join(self.errors)}; nothing written")
    return report + [f"all {self.checked} counts above with a published figure "
                     "agree with it" if self.checked else
                     "no published counts to check against"]


def _check_lm(corpus: str, files: Files, names: Mapping[str, str],
              published: Mapping[str, tuple[int, int]], vocab: int) -> list[str]:
  c = _Checker(corpus)
  report, types = [], set()
  for split, name in names.items():
    if name not in files:
      raise CountError(f"{corpus}: {name} is missing; nothing written")
    lines, tokens, split_types = lm_counts(files[name])
    if split == "train":
      types = split_types
    want_lines, want_tokens = published[split]
    report.append(f"{name}: {c.expect(f'{name} lines', lines, want_lines)} "
                  f"lines, {c.expect(f'{name} tokens', tokens, want_tokens)} "
                  f"tokens with <eos>")
  size = len(types | {EOS, UNK})
  report.append(f"vocabulary: {c.expect('vocabulary', size, vocab)} types "
                "(train, with <eos> and <unk>)")
  return c.done(report)


def check_ptb(files: Files) -> list[str]:
  """Mikolov's PTB: 42,068 / 3,370 / 3,761 lines; 887,521 / 70,390 / 78,669
  words, so 929,589 / 73,760 / 82,430 tokens with <eos>; 10,000 types."""
  return _check_lm("ptb", files, {s: f"ptb.{s}.txt" for s in ("train", "valid", "test")},
                   {"train": (42_068, 929_589), "valid": (3_370, 73_760),
                    "test": (3_761, 82_430)}, 10_000)


def check_wikitext2(files: Files) -> list[str]:
  """WikiText-2 (Merity et al. 2016): 2,088,628 / 217,646 / 245,569 tokens,
  counted with <eos> (as torchtext and PyTorch's example count them), over
  36,718 / 3,760 / 4,358 lines; 33,278 types."""
  return _check_lm("wikitext2", files,
                   {s: f"wiki.{s}.tokens" for s in ("train", "valid", "test")},
                   {"train": (36_718, 2_088_628), "valid": (3_760, 217_646),
                    "test": (4_358, 245_569)}, 33_278)


# Universal Dependencies.
UD_CONLLU = re.compile(r"[a-z0-9_]+-ud-(train|dev|test)(?:-[\w]+)?\.conllu")
UD_EXTRAS = ("LICENSE.txt", "README.md", "stats.xml")
# UD_English-EWT r2.16: sentences and syntactic words per split (its stats.xml).
EWT_PUBLISHED = {"train": (12_544, 204_577), "dev": (2_001, 25_147),
                 "test": (2_077, 25_094)}
EWT_FILES = tuple(f"en_ewt-ud-{s}.conllu" for s in ("train", "dev", "test")
                  ) + UD_EXTRAS


@dataclasses.dataclass
class ConlluCounts:
  sentences: int = 0
  words: int = 0  # lines whose ID is one integer: the units with a UPOS tag
  fused: int = 0  # multiword-token ranges (3-4)
  empty: int = 0  # empty nodes (8.1)


def conllu_counts(name: str, text: str) -> ConlluCounts:
  """Counts of a CoNLL-U file; ValueError naming ``name:line`` for a line
  that is not a comment, a blank, or 10 tab-separated fields."""
  counts = ConlluCounts()
  in_sentence = False
  for lineno, line in enumerate(text.split("\n"), start=1):
    if not line.strip():
      counts.sentences += in_sentence
      in_sentence = False
      continue
    if line.startswith("#"):
      continue
    fields = line.split("\t")
    if len(fields) != 10:
      raise ValueError(f"{name}:{lineno}: expected 10 tab-separated CoNLL-U "
                       f"fields, got {len(fields)}")
    token_id = fields[0]
    if token_id.isdigit():
      counts.words += 1
    elif re.fullmatch(r"\d+-\d+", token_id):
      counts.fused += 1
    elif re.fullmatch(r"\d+\.\d+", token_id):
      counts.empty += 1
    else:
      raise ValueError(f"{name}:{lineno}: bad CoNLL-U ID {token_id!r}")
    in_sentence = True
  counts.sentences += in_sentence
  return counts


def convert_ud(files: Mapping[str, bytes]) -> Files:
  """A treebank's files as its repository has them; its README.md is
  written as UD_README.md. Each .conllu must be UTF-8 CoNLL-U."""
  out = {}
  for name, data in sorted(files.items()):
    if UD_CONLLU.fullmatch(name):
      conllu_counts(name, _text(name, data))  # validates
      out[name] = data
    elif name == "README.md":
      out["UD_README.md"] = data
    elif name in UD_EXTRAS:
      out[name] = data
  if not any(UD_CONLLU.fullmatch(n) and "-ud-test" in n for n in out):
    raise ValueError("the treebank has no *-ud-test.conllu file (has "
                     f"{', '.join(sorted(files)) or 'no files'})")
  return out


def ud_stats(xml: bytes) -> dict[str, tuple[int, int, int]]:
  """{split: (sentences, words, fused)} from a treebank's stats.xml."""
  import xml.etree.ElementTree as ET  # pylint: disable=g-import-not-at-top
  try:
    size = ET.fromstring(xml).find("size")
  except ET.ParseError as e:
    raise ValueError(f"stats.xml is not valid XML ({e})") from None
  out = {}
  for split in ("train", "dev", "test"):
    node = size.find(split) if size is not None else None
    if node is None:
      continue
    get = lambda tag, n=node: int(n.findtext(tag) or 0)
    out[split] = (get("sentences"), get("words") or get("tokens"), get("fused"))
  return out


def check_ud(files: Files, published: Mapping[str, tuple[int, int]] | None = None,
             corpus: str = "ud") -> list[str]:
  """Sentences, words and fused tokens per split, against the treebank's own
  stats.xml where it has one, and ``published`` (sentences, words)."""
  c = _Checker(corpus)
  stats = ud_stats(files["stats.xml"]) if "stats.xml" in files else {}
  totals: dict[str, ConlluCounts] = {}
  for name in sorted(files):
    m = UD_CONLLU.fullmatch(name)
    if m:
      n = conllu_counts(name, files[name].decode("utf-8"))
      t = totals.setdefault(m.group(1), ConlluCounts())
      for f in dataclasses.fields(n):
        setattr(t, f.name, getattr(t, f.name) + getattr(n, f.name))
  report = []
  for split, n in totals.items():
    s_want, w_want, f_want = stats.get(split, (None, None, None))
    if published and split in published:
      s_want, w_want = published[split]
    report.append(
        f"{split}: {c.expect(f'{split} sentences', n.sentences, s_want)} "
        f"sentences, {c.expect(f'{split} words', n.words, w_want)} words, "
        f"{c.expect(f'{split} fused tokens', n.fused, f_want)} multiword "
        f"tokens, {n.empty:,} empty nodes")
  return c.done(report)


def check_ud_en_ewt(files: Files) -> list[str]:
  return check_ud(files, EWT_PUBLISHED, corpus="ud_en_ewt")


# Stanford Sentiment Treebank.
SST_PUBLISHED = {"train": (8_544, 318_582, 6_920), "dev": (1_101, 41_447, 872),
                 "test": (2_210, 82_600, 1_821)}


def _sst_trees(trees: str, source: str):
  """(root label, words, phrases) of each tree line (labelled.parse_sst_tree)."""
  # Imported here: labelled imports corpus, which imports this module.
  from rnn_research.data import labelled  # pylint: disable=g-import-not-at-top
  return [labelled.parse_sst_tree(source, lineno, line)
          for lineno, line in enumerate(trees.splitlines(), start=1)]


def sst2_sentences(trees: str, source: str = "SST trees") -> str:
  """The binary sentence split of SST trees: root label 0/1 -> 0, 3/4 -> 1,
  neutral (2) dropped; ``LABEL<TAB>leaf tokens joined by single spaces``."""
  from rnn_research.data import labelled  # pylint: disable=g-import-not-at-top
  out = []
  for root, words, _ in _sst_trees(trees, source):
    label = labelled.sst_label(root, "binary")
    if label is not None:
      out.append(f"{label}\t{' '.join(words)}\n")
  return "".join(out)


def convert_sst(zip_bytes: bytes) -> Files:
  """Stanford's trainDevTestTrees_PTB.zip (trees/{train,dev,test}.txt) to
  {train,dev,test}.txt and the derived sst2_sentences.{split}.tsv."""
  try:
    archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
  except zipfile.BadZipFile as e:
    raise ValueError(f"the SST download is not a zip archive ({e})") from None
  members = {pathlib.PurePosixPath(n).name: n for n in archive.namelist()
             if pathlib.PurePosixPath(n).parent.name == "trees"}
  out = {}
  for split in ("train", "dev", "test"):
    if f"{split}.txt" not in members:
      raise ValueError(f"the SST archive has no trees/{split}.txt (has "
                       f"{', '.join(archive.namelist())})")
    raw = archive.read(members[f"{split}.txt"])
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError:
      text = raw.decode("latin-1")  # written as UTF-8, the same characters
    text = text.replace("\r\n", "\n")
    if text and not text.endswith("\n"):
      text += "\n"
    out[f"{split}.txt"] = text.encode("utf-8")
    out[f"sst2_sentences.{split}.tsv"] = sst2_sentences(
        text, f"trees/{split}.txt").encode("utf-8")
  return out


def check_sst(files: Files) -> list[str]:
  """Trees 8,544 / 1,101 / 2,210, labelled nodes 318,582 / 41,447 / 82,600,
  binary sentences 6,920 / 872 / 1,821."""
  c = _Checker("sst")
  report = []
  for split, (trees, nodes, binary) in SST_PUBLISHED.items():
    parsed = _sst_trees(files[f"{split}.txt"].decode("utf-8"), f"{split}.txt")
    n_trees, n_nodes = len(parsed), sum(len(phrases) for _, _, phrases in parsed)
    n_binary = len(files[f"sst2_sentences.{split}.tsv"].splitlines())
    report.append(
        f"{split}: {c.expect(f'{split} trees', n_trees, trees)} trees, "
        f"{c.expect(f'{split} nodes', n_nodes, nodes)} labelled nodes, "
        f"{c.expect(f'{split} binary sentences', n_binary, binary)} binary "
        "sentences")
  return c.done(report)


# Tiny Shakespeare.


def convert_tinyshakespeare(data: bytes) -> Files:
  _text("input.txt", data)
  return {"input.txt": data}


def check_tinyshakespeare(files: Files) -> list[str]:
  """1,115,394 characters, 40,000 newlines, 65 distinct characters."""
  c = _Checker("tinyshakespeare")
  text = files["input.txt"].decode("utf-8")
  line = (f"input.txt: {c.expect('characters', len(text), 1_115_394)} "
          f"characters, {c.expect('newlines', text.count(chr(10)), 40_000)} "
          f"newlines, {c.expect('distinct characters', len(set(text)), 65)} "
          "distinct characters")
  return c.done([line])


# Linzen, Dupoux & Goldberg 2016, the simplified release.
LINZEN_PUBLISHED = {"numpred.val": 15_772, "numpred.test.1": 52_599,
                    "numpred.test.2": 9_380, "numpred.test.3": 2_051,
                    "numpred.test.4": 561, "numpred.test.5": 159}
LINZEN_FILE = re.compile(r"numpred\.(train|val|valid|test)(\.\d+)?|README\.txt")


def convert_linzen(tar_bytes: bytes) -> Files:
  """rnn_agr_simple.tar.gz to rnn_agr_simple/{numpred.*, README.txt}; the
  archive's '._*' resource-fork entries are skipped. Every numpred line must
  be ``VBZ|VBP<TAB>PREFIX``."""
  try:
    archive = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*",
                           ignore_zeros=True)
  except tarfile.TarError as e:
    raise ValueError(f"the Linzen et al. download is not a tar archive ({e})"
                     ) from None
  out = {}
  with archive:
    for member in archive.getmembers():
      name = pathlib.PurePosixPath(member.name).name
      if not member.isfile() or not LINZEN_FILE.fullmatch(name):
        continue
      data = archive.extractfile(member).read()
      if name.startswith("numpred"):
        for lineno, line in enumerate(_text(name, data).splitlines(), 1):
          label, tab, prefix = line.partition("\t")
          if line.strip() and (label not in ("VBZ", "VBP") or not tab or
                               not prefix.strip()):
            raise ValueError(f"{name}:{lineno}: expected VBZ or VBP, a tab and "
                             f"a prefix, got {line[:40]!r}")
      out[f"rnn_agr_simple/{name}"] = data
  if "rnn_agr_simple/numpred.val" not in out:
    raise ValueError("the Linzen et al. archive has no numpred.val (has "
                     f"{', '.join(sorted(out)) or 'no numpred files'})")
  return out


def check_linzen(files: Files) -> list[str]:
  """numpred.val 15,772 lines; numpred.test.1..5 52,599 / 9,380 / 2,051 / 561
  / 159 (the other files are counted, with no published figure)."""
  c = _Checker("linzen2016")
  report = []
  for path in sorted(files):
    name = pathlib.PurePosixPath(path).name
    if name.startswith("numpred"):
      n = len(files[path].splitlines())
      report.append(f"{path}: "
                    f"{c.expect(name, n, LINZEN_PUBLISHED.get(name))} lines")
  for name in LINZEN_PUBLISHED:
    if f"rnn_agr_simple/{name}" not in files:
      c.errors.append(f"{name} missing")
  return c.done(report)


# ---------------------------------------------------------------------------
# The corpora.

NAMES = ("ptb", "wikitext2", "ud_en_ewt", "sst", "tinyshakespeare",
         "linzen2016")
UD_NAME = re.compile(r"ud:(UD_[A-Za-z_]+-[A-Za-z0-9_]+)(?:@([\w.\-]+))?")


def spec(name: str) -> Spec:
  """The corpus ``name``: one of :data:`NAMES`, or ``ud:UD_<Language>-<Treebank>``
  (optionally ``@<release tag>``) for any Universal Dependencies treebank.

  Raises:
    ValueError: an unknown name, listing the valid ones.
  """
  where = lambda d: "into {dir}/"  # the target, filled in by get_data
  if name == "ptb":
    return Spec(
        name, f"Hugging Face hub {PTB_HF[0]} (Parquet export, {PTB_HF[2]})",
        fetch_ptb, convert_ptb, check_ptb,
        "put ptb.train.txt, ptb.valid.txt, ptb.test.txt (folder data/ of "
        "Mikolov's simple-examples.tgz, "
        "www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz) " + where(name))
  if name == "wikitext2":
    return Spec(
        name, f"Hugging Face hub {WIKITEXT2_HF[0]} ({WIKITEXT2_HF[1]})",
        fetch_wikitext2, convert_wikitext2, check_wikitext2,
        "put wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens (from "
        "wikitext-2-v1.zip, the WikiText-2 word-level release) " + where(name))
  if name == "ud_en_ewt":
    repo = "UD_English-EWT"
    return Spec(
        name, f"github.com/UniversalDependencies/{repo}, release {UD_TAG}",
        lambda: fetch_ud(repo, UD_TAG, EWT_FILES), convert_ud, check_ud_en_ewt,
        "put en_ewt-ud-{train,dev,test}.conllu (and stats.xml) of "
        f"UniversalDependencies/{repo} tag {UD_TAG}, or of the UD "
        "2.16 release at lindat.mff.cuni.cz, " + where(name))
  m = UD_NAME.fullmatch(name)
  if m:
    repo, tag = m.group(1), m.group(2) or UD_TAG
    return Spec(
        repo, f"github.com/UniversalDependencies/{repo}, release {tag}",
        lambda: fetch_ud(repo, tag), convert_ud,
        lambda files: check_ud(files, corpus=repo),
        f"put the *-ud-{{train,dev,test}}.conllu files (and stats.xml) of "
        f"UniversalDependencies/{repo} tag {tag}, or of the UD release at "
        "lindat.mff.cuni.cz, " + where(repo))
  if name == "sst":
    return Spec(
        name, SST_URL, fetch_sst, convert_sst, check_sst,
        "download trainDevTestTrees_PTB.zip (nlp.stanford.edu/sentiment) and "
        "put trees/train.txt, dev.txt, test.txt " + where(name) +
        " (the sst2_sentences.*.tsv files are derived from them by "
        "rnn_research.data.fetch.sst2_sentences)")
  if name == "tinyshakespeare":
    return Spec(
        name, TINYSHAKESPEARE_URL, fetch_tinyshakespeare,
        convert_tinyshakespeare, check_tinyshakespeare,
        "put input.txt of github.com/karpathy/char-rnn "
        "(data/tinyshakespeare/input.txt) " + where(name))
  if name == "linzen2016":
    return Spec(
        name, LINZEN_URL, fetch_linzen, convert_linzen, check_linzen,
        "unpack rnn_agr_simple.tar.gz (linked from "
        "github.com/TalLinzen/rnn_agreement) " + where(name) +
        " so that rnn_agr_simple/numpred.val is there", "rnn_agr_simple")
  raise ValueError(f"unknown corpus {name!r}; valid: {', '.join(NAMES)}, or "
                   "ud:UD_<Language>-<Treebank>[@TAG] for any Universal "
                   "Dependencies treebank (e.g. ud:UD_French-GSD)")


def fetch_hint(directory: str | pathlib.Path) -> str:
  """What to run to fetch the corpus a missing data folder should hold."""
  directory = pathlib.Path(directory)
  for name in NAMES:
    s = spec(name)
    root = directory.parent if s.reader_dir else directory
    if (not s.reader_dir or directory.name == s.reader_dir) and root.name == name:
      extra = "" if root == s.default_dir else f" --dir={root}"
      return f"python -m experiments.get_data {name}{extra} fetches it"
  return (f"python -m experiments.get_data NAME --dir={directory} fetches a "
          f"corpus into it (NAME: {', '.join(NAMES)}; docs/data.md)")


# ---------------------------------------------------------------------------
# Writing.


def check_target(target: pathlib.Path, force: bool) -> None:
  """Refuses a target that is a file, or a folder with files unless ``force``."""
  if not target.exists():
    return
  if not target.is_dir():
    raise ValueError(f"target {target} exists and is not a folder")
  entries = sorted(p.name for p in target.iterdir())
  if entries and not force:
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise ValueError(f"target folder {target} already holds files ({shown}); "
                     "pass --force to replace it")


def write_atomically(target: str | pathlib.Path,
                     files: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
                     force: bool = False) -> list[pathlib.Path]:
  """Writes ``files`` ({relative path: bytes}, or (path, bytes) pairs, which
  may be produced lazily) as the folder ``target``.

  They go into a temporary folder beside the target, renamed to ``target``
  once every file is written; an existing target (``force``) is replaced only
  then. On any error the temporary folder is removed and an existing target
  is left as it was.
  """
  target = pathlib.Path(target)
  check_target(target, force)
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.",
                                      suffix=".partial", dir=target.parent))
  written = []
  try:
    items = files.items() if isinstance(files, Mapping) else files
    for rel, data in items:
      rel_path = pathlib.PurePosixPath(rel)
      if rel_path.is_absolute() or ".." in rel_path.parts or not rel_path.parts:
        raise ValueError(f"refusing to write {rel!r} outside {target}")
      path = tmp.joinpath(*rel_path.parts)
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(data)
      written.append(target.joinpath(*rel_path.parts))
    if target.exists():
      old = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.old"
      target.rename(old)
      try:
        tmp.rename(target)
      except BaseException:
        old.rename(target)
        raise
      shutil.rmtree(old, ignore_errors=True)
    else:
      tmp.rename(target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return written


def sha256_note(corpus: str, rel: str, data: bytes) -> str:
  reference = REFERENCE_SHA256.get(corpus, {}).get(rel)
  if reference is None:
    return ""
  if hashlib.sha256(data).hexdigest() == reference:
    return "sha256 matches the reference copy"
  return "sha256 DIFFERS from the reference copy (the counts agree)"


def get_data(name: str, directory: str | pathlib.Path | None = None,
             force: bool = False, echo: Callable[[str], None] = print
             ) -> pathlib.Path:
  """Fetches corpus ``name`` into ``directory`` (default data/NAME).

  Returns:
    the folder a config's ``data.dir`` should name.

  Raises:
    ValueError: an unknown name, a target holding files (without ``force``),
      a source whose content is malformed or whose counts differ
      (CountError).
    SourceUnreachable (an OSError): offline or the source cannot be reached;
      the message names the manual alternative.
  """
  s = spec(name)
  target = pathlib.Path(directory) if directory else s.default_dir
  check_target(target, force)  # before any download
  try:
    raw = s.fetch()
  except SourceUnreachable as e:
    raise SourceUnreachable(f"{name}: {e}; offline or the source is "
                            f"unreachable. Manual alternative: "
                            f"{s.manual.replace('{dir}', str(target))}"
                            ) from None
  try:
    files = s.convert(raw)
  except ValueError as e:
    raise ValueError(f"{name}: unexpected content from {s.source}: {e}; "
                     "nothing written") from None
  report = s.check(files)
  write_atomically(target, files, force=force)
  echo(f"{name}: wrote {target}/ from {s.source}")
  for rel in sorted(files):
    note = sha256_note(s.name, rel, files[rel])
    echo(f"  {rel}  {len(files[rel]):,} bytes" + (f"  ({note})" if note else ""))
  for line in report:
    echo(f"  {line}")
  return target / s.reader_dir if s.reader_dir else target
