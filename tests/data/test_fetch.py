"""get_data offline: each source's conversion from a tiny input of its shape,
the count checks, the offline message, and that nothing is ever half-written.

The network functions are the only part not run here (the test machines have
no route to the sources); everything they hand over is built in the tests.
"""

import hashlib
import importlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import datasets
import ml_collections
import pytest

from rnn_research.data import agreement as agr
from rnn_research.data import corpus
from rnn_research.data import fetch

from tests import REPO


def hf(column, train, valid, test):
  """A DatasetDict of the hub's shape: splits train/validation/test, one column."""
  return datasets.DatasetDict({
      split: datasets.Dataset.from_dict({column: rows})
      for split, rows in (("train", train), ("validation", valid), ("test", test))})


def zip_of(members):
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    for name, data in members.items():
      z.writestr(name, data)
  return buf.getvalue()


def tar_of(members):
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      t.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def leftovers(parent):
  """Temporary folders get_data left beside its target."""
  return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- conversions -----------------------------------------------------------


def test_ptb_rows_become_mikolovs_lines():
  files = fetch.convert_ptb(hf("sentence", ["aer banknote", "the N <unk>"],
                               ["a b"], ["c"]))
  assert files == {"ptb.train.txt": b" aer banknote \n the N <unk> \n",
                   "ptb.valid.txt": b" a b \n", "ptb.test.txt": b" c \n"}


def test_wikitext_rows_become_token_files_with_blank_lines_kept():
  files = fetch.convert_wikitext2(hf(
      "text", ["", " = Valkyria = \n", "", " Senj\u014d no 3 \n"],
      [" = A = \n"], [" b"]))  # the last row lacks its newline
  assert files["wiki.train.tokens"] == (
      " \n = Valkyria = \n \n Senj\u014d no 3 \n".encode("utf-8"))
  assert files["wiki.valid.tokens"] == b" = A = \n"
  assert files["wiki.test.tokens"] == b" b\n"


def test_hf_conversion_names_a_missing_split_or_column():
  only_train = datasets.DatasetDict(
      {"train": datasets.Dataset.from_dict({"sentence": ["a"]})})
  with pytest.raises(ValueError, match="no split validation, test"):
    fetch.convert_ptb(only_train)
  with pytest.raises(ValueError, match="no column 'sentence'"):
    fetch.convert_ptb(hf("text", ["a"], ["b"], ["c"]))


def test_lm_counts_are_what_the_reader_reads(tmp_path):
  data = b" a b \n\n c <unk> d\n e"  # a blank line; no final newline
  (tmp_path / "x.txt").write_bytes(data)
  tokens = corpus.read_tokens(tmp_path / "x.txt")
  lines, n_tokens, types = fetch.lm_counts(data)
  assert (lines, n_tokens) == (4, len(tokens))
  assert types | {fetch.EOS} == set(tokens)


def test_lm_count_check_names_each_difference_from_the_published_counts():
  files = fetch.convert_ptb(hf("sentence", ["a b"], ["a"], ["b"]))
  with pytest.raises(fetch.CountError) as e:
    fetch.check_ptb(files)
  message = str(e.value)
  assert "ptb.train.txt lines 1 (published 42,068)" in message
  assert "ptb.valid.txt tokens 2 (published 73,760)" in message
  assert "vocabulary 4 (published 10,000)" in message
  assert "nothing written" in message and "\n" not in message


CONLLU = (
    "# sent_id = 1\n# text = I'm here.\n"
    "1-2\tI'm\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_\n"
    "2\t'm\tbe\tAUX\tVBP\t_\t3\tcop\t_\t_\n"
    "3\there\there\tADV\tRB\t_\t0\troot\t_\t_\n"
    "3.1\tis\tbe\tAUX\t_\t_\t_\t_\t3:cop\t_\n\n"
    "# sent_id = 2\n1\tGo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n\n")
STATS = (b"<treebank><size><train><sentences>2</sentences><tokens>3</tokens>"
         b"<words>4</words><fused>1</fused></train>"
         b"<test><sentences>2</sentences><words>4</words><fused>1</fused></test>"
         b"</size></treebank>")


def test_ud_files_are_kept_as_released_and_counted_against_stats_xml():
  raw = {"xx_t-ud-train.conllu": CONLLU.encode(),
         "xx_t-ud-test.conllu": CONLLU.encode(), "stats.xml": STATS,
         "README.md": b"# UD Xx T\n", "LICENSE.txt": b"CC BY-SA\n"}
  files = fetch.convert_ud(raw)
  assert files == {"xx_t-ud-train.conllu": CONLLU.encode(),
                   "xx_t-ud-test.conllu": CONLLU.encode(), "stats.xml": STATS,
                   "UD_README.md": b"# UD Xx T\n", "LICENSE.txt": b"CC BY-SA\n"}
  report = fetch.check_ud(files)
  assert report[0] == ("test: 2 sentences, 4 words, 1 multiword tokens, "
                       "1 empty nodes")
  assert report[-1] == "all 6 counts above with a published figure agree with it"
  wrong = dict(files, **{"stats.xml": STATS.replace(b"<words>4</words><fused>1"
                                                    b"</fused></test>",
                                                    b"<words>5</words><fused>1"
                                                    b"</fused></test>")})
  with pytest.raises(fetch.CountError, match=r"test words 4 \(published 5\)"):
    fetch.check_ud(wrong)


def test_ud_conversion_refuses_malformed_lines_and_a_treebank_without_test():
  with pytest.raises(ValueError, match=r"xx_t-ud-test\.conllu:2: expected 10"):
    fetch.convert_ud({"xx_t-ud-test.conllu": b"# c\n1\tGo\tgo\n\n"})
  with pytest.raises(ValueError, match="no \\*-ud-test.conllu"):
    fetch.convert_ud({"xx_t-ud-train.conllu": CONLLU.encode()})


def test_ud_fetch_asks_for_the_treebanks_files_at_the_tag(monkeypatch):
  asked = []
  monkeypatch.setattr(fetch, "download",
                      lambda url: asked.append(url) or url.encode())
  monkeypatch.setattr(fetch, "ud_listing", lambda repo, tag: [
      "fr_gsd-ud-train.conllu", "fr_gsd-ud-test.conllu", "eval.log",
      "README.md", "stats.xml"])
  s = fetch.spec("ud:UD_French-GSD@r2.15")
  assert (s.name, s.default_dir) == ("UD_French-GSD",
                                     pathlib.Path("data/UD_French-GSD"))
  files = s.fetch()
  base = "https://raw.githubusercontent.com/UniversalDependencies/UD_French-GSD/r2.15/"
  assert asked == [base + n for n in ("fr_gsd-ud-train.conllu",
                                      "fr_gsd-ud-test.conllu", "README.md",
                                      "stats.xml")]
  assert set(files) == {"fr_gsd-ud-train.conllu", "fr_gsd-ud-test.conllu",
                        "README.md", "stats.xml"}


SST_TREES = {
    "train": "(3 (2 It) (4 (4 good) (2 .)))\n(2 (2 So) (2 so))\n"
             "(0 (1 8\u00a01\\/2) (0 bad))\n",
    "dev": "(4 (2 A) (4 -LRB-great-RRB-))\n",
    "test": "(1 (2 meh) (2 .))\n",
}


def test_sst_trees_are_kept_and_the_binary_sentences_derived():
  files = fetch.convert_sst(zip_of({
      f"trainDevTestTrees_PTB/trees/{s}.txt": t.encode()
      for s, t in SST_TREES.items()}))
  assert files["train.txt"] == SST_TREES["train"].encode()
  # Neutral root dropped; 0/1 -> 0, 3/4 -> 1; a no-break space splits a leaf.
  assert files["sst2_sentences.train.tsv"] == b"1\tIt good .\n0\t8 1\\/2 bad\n"
  assert files["sst2_sentences.dev.tsv"] == b"1\tA -LRB-great-RRB-\n"
  assert files["sst2_sentences.test.tsv"] == b"0\tmeh .\n"
  with pytest.raises(fetch.CountError, match=r"train trees 3 \(published 8,544\)"):
    fetch.check_sst(files)


def test_sst_conversion_names_a_missing_tree_file():
  with pytest.raises(ValueError, match="no trees/dev.txt"):
    fetch.convert_sst(zip_of({"trees/train.txt": b"(2 a)\n",
                              "trees/test.txt": b"(2 a)\n"}))
  with pytest.raises(ValueError, match="not a zip"):
    fetch.convert_sst(b"<html>moved</html>")


def test_tinyshakespeare_is_kept_byte_for_byte_and_counted():
  text = b"First Citizen:\nBefore we proceed.\n"
  assert fetch.convert_tinyshakespeare(text) == {"input.txt": text}
  with pytest.raises(fetch.CountError, match=r"newlines 2 \(published 40,000\)"):
    fetch.check_tinyshakespeare({"input.txt": text})
  with pytest.raises(ValueError, match="not valid UTF-8"):
    fetch.convert_tinyshakespeare(b"\xff")


def test_linzen_archive_unpacks_to_rnn_agr_simple_without_resource_forks(tmp_path):
  val = b"VBZ\tthe dog\nVBP\tthe NNS near the cat\n"
  files = fetch.convert_linzen(tar_of({
      "rnn_agr_simple/numpred.val": val,
      "rnn_agr_simple/._numpred.val": b"\x00\x05\x16\x07 mac",
      "rnn_agr_simple/numpred.test.1": b"VBP\tthe dogs of the man\n",
      "rnn_agr_simple/README.txt": b"Simplified versions\n"}))
  assert files == {"rnn_agr_simple/numpred.val": val,
                   "rnn_agr_simple/numpred.test.1": b"VBP\tthe dogs of the man\n",
                   "rnn_agr_simple/README.txt": b"Simplified versions\n"}
  with pytest.raises(fetch.CountError, match=r"numpred.val 2 \(published 15,772\)"):
    fetch.check_linzen(files)
  # What the agreement reader makes of the written files.
  fetch.write_atomically(tmp_path / "linzen2016", files)
  items = agr.read_simple(tmp_path / "linzen2016" / "rnn_agr_simple" / "numpred.test.1")
  assert items[0].plural and items[0].n_attractors == 1


def test_linzen_conversion_refuses_a_malformed_line():
  with pytest.raises(ValueError, match="numpred.val:2: expected VBZ or VBP"):
    fetch.convert_linzen(tar_of({"rnn_agr_simple/numpred.val":
                                 b"VBZ\tthe dog\nNN the dog\n"}))


# --- get_data: target, offline, no half-written folder ---------------------


@pytest.fixture
def tiny_ptb(monkeypatch):
  """get_data ptb served by a tiny data set, its count check accepting it."""
  monkeypatch.setattr(fetch, "fetch_ptb", lambda: hf(
      "sentence", ["a b <unk>", "c"], ["a"], ["b"]))
  monkeypatch.setattr(fetch, "check_ptb", lambda files: ["tiny: counted"])


def test_get_data_writes_the_folder_the_reader_takes_and_says_what(tmp_path,
                                                                  tiny_ptb):
  printed = []
  target = fetch.get_data("ptb", tmp_path / "data" / "ptb", echo=printed.append)
  assert target == tmp_path / "data" / "ptb"
  assert sorted(p.name for p in target.iterdir()) == [
      "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
  assert (target / "ptb.train.txt").read_bytes() == b" a b <unk> \n c \n"
  c = corpus.load_local(target)
  assert c.vocab.tokens == ["a", "b", "<unk>", "<eos>", "c"]
  assert printed[0].startswith(f"ptb: wrote {target}/ from Hugging Face hub")
  assert "  ptb.train.txt  16 bytes  (sha256 DIFFERS from the reference copy" in (
      printed[2])
  assert printed[-1] == "  tiny: counted"
  assert leftovers(tmp_path / "data") == []


def test_a_target_holding_files_is_refused_unless_forced(tmp_path, tiny_ptb):
  target = tmp_path / "ptb"
  target.mkdir()
  (target / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match=r"already holds files \(notes.txt\); "
                     "pass --force"):
    fetch.get_data("ptb", target, echo=lambda _: None)
  assert [p.name for p in target.iterdir()] == ["notes.txt"]
  fetch.get_data("ptb", target, force=True, echo=lambda _: None)
  assert sorted(p.name for p in target.iterdir()) == [
      "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
  assert leftovers(tmp_path) == []


def test_counts_that_differ_write_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(fetch, "fetch_ptb", lambda: hf("sentence", ["a"], ["a"], ["a"]))
  with pytest.raises(fetch.CountError, match="counts differ"):
    fetch.get_data("ptb", tmp_path / "ptb")
  assert list(tmp_path.iterdir()) == []


def test_a_write_that_fails_midway_leaves_no_folder(tmp_path):
  def files():
    yield "a.txt", b"first"
    raise RuntimeError("disk gone")

  with pytest.raises(RuntimeError):
    fetch.write_atomically(tmp_path / "t", files())
  assert list(tmp_path.iterdir()) == []


def test_a_forced_write_that_fails_midway_keeps_the_old_folder(tmp_path):
  (tmp_path / "t").mkdir()
  (tmp_path / "t" / "old.txt").write_text("old")
  with pytest.raises(TypeError):
    fetch.write_atomically(tmp_path / "t", {"a.txt": b"new", "b.txt": None},
                           force=True)
  assert [p.name for p in tmp_path.iterdir()] == ["t"]
  assert [p.name for p in (tmp_path / "t").iterdir()] == ["old.txt"]


def test_write_refuses_a_path_outside_the_target(tmp_path):
  with pytest.raises(ValueError, match="outside"):
    fetch.write_atomically(tmp_path / "t", {"../evil.txt": b"x"})
  assert list(tmp_path.iterdir()) == []


def test_an_unreachable_source_is_one_line_naming_the_manual_alternative(
    tmp_path, monkeypatch):
  monkeypatch.setattr(fetch, "TINYSHAKESPEARE_URL", "http://127.0.0.1:9/input.txt")
  target = tmp_path / "data" / "tinyshakespeare"
  with pytest.raises(OSError) as e:
    fetch.get_data("tinyshakespeare", target)
  message = str(e.value)
  assert isinstance(e.value, fetch.SourceUnreachable) and "\n" not in message
  assert message.startswith("tinyshakespeare: cannot download "
                            "http://127.0.0.1:9/input.txt (URLError")
  assert "offline or the source is unreachable" in message
  assert f"Manual alternative: put input.txt of github.com/karpathy/char-rnn " \
         f"(data/tinyshakespeare/input.txt) into {target}/" in message
  assert not target.parent.exists()


def test_unknown_corpus_lists_the_valid_ones():
  with pytest.raises(ValueError, match="valid: ptb, wikitext2, ud_en_ewt, sst, "
                     "tinyshakespeare, linzen2016, or ud:UD_"):
    fetch.spec("penn")


def _cli(tmp_path, *args, **env):
  return subprocess.run(
      [sys.executable, "-m", "experiments.get_data", *args], cwd=tmp_path,
      env=dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               HF_HOME=str(tmp_path / "hf"), **env),
      capture_output=True, text=True, timeout=300)


def test_cli_offline_hub_and_unknown_name_are_one_error_line_exit_2(tmp_path):
  proc = _cli(tmp_path, "wikitext2", HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
  assert errors[0].startswith("error: wikitext2: cannot load Salesforce/wikitext "
                              "(wikitext-2-v1) from the Hugging Face hub")
  assert ("Manual alternative: put wiki.train.tokens, wiki.valid.tokens, "
          "wiki.test.tokens") in errors[0] and "into data/wikitext2/" in errors[0]
  assert not (tmp_path / "data").exists() and "Traceback" not in proc.stderr
  proc = _cli(tmp_path, "penn")
  assert proc.returncode == 2
  assert proc.stderr.splitlines()[-1].startswith("error: unknown corpus 'penn'; valid: ptb")


# --- readers and configs point at get_data ---------------------------------


def test_a_missing_data_folder_names_the_command_that_fetches_it(tmp_path,
                                                                monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(corpus.DataError,
                     match="python -m experiments.get_data ptb fetches it$"):
    corpus.load_corpus(ml_collections.ConfigDict({"source": "local",
                                                  "dir": "data/ptb"}))
  (tmp_path / "elsewhere").mkdir()
  with pytest.raises(corpus.DataError, match="get_data NAME --dir=elsewhere"):
    corpus.load_local("elsewhere")
  from configs import agreement as agreement_config
  from rnn_research.studies import agreement
  with pytest.raises(ValueError,
                     match="python -m experiments.get_data linzen2016 fetches it$"):
    agreement.load_number_prediction_data(agreement_config.get_config("linzen"))


def _data_dirs():
  for path in sorted((REPO / "configs").glob("[!_]*.py")):
    module = importlib.import_module(f"configs.{path.stem}")
    for variant in getattr(module, "VARIANTS", [None]):
      config = module.get_config(variant)
      for data in (config.get("data"), config.get("lm", {}).get("data")):
        if data is not None and "dir" in data:
          yield f"{path.stem}:{variant}", data.dir


def test_every_configured_data_dir_is_get_datas_folder_inside_the_repository():
  dirs = list(_data_dirs())
  assert len(dirs) > 10
  for where, d in dirs:
    if d:
      path = pathlib.Path(d)
      assert not path.is_absolute() and ".." not in path.parts, (where, d)
      assert path.parts[0] == "data", (where, d)
      # The folder get_data fills by default, so no --dir is needed.
      assert fetch.fetch_hint(path).endswith(" fetches it"), (where, d)
      assert "--dir" not in fetch.fetch_hint(path), (where, d)


# --- the reference copies, converted as the sources ship them --------------


def _sha(data):
  return hashlib.sha256(data).hexdigest()


def test_ptb_from_rows_of_the_reference_lines_is_byte_identical(shared_data):
  lines = {s: (shared_data / "ptb" / f"ptb.{s}.txt").read_text().splitlines()
           for s in ("train", "valid", "test")}
  files = fetch.convert_ptb(hf("sentence", *(
      [l.strip() for l in lines[s]] for s in ("train", "valid", "test"))))
  assert fetch.check_ptb(files)[-1] == (
      "all 7 counts above with a published figure agree with it")
  for name, data in files.items():
    assert _sha(data) == fetch.REFERENCE_SHA256["ptb"][name]


def test_sst_from_the_stanford_zip_layout_matches_the_reference_files(shared_data):
  files = fetch.convert_sst(zip_of({
      f"trainDevTestTrees_PTB/trees/{s}.txt": (shared_data / "sst" / f"{s}.txt").read_bytes()
      for s in ("train", "dev", "test")}))
  assert fetch.check_sst(files)[-1].startswith("all 9 counts")
  for name, data in files.items():
    assert data == (shared_data / "sst" / name).read_bytes(), name


def test_ud_ewt_tinyshakespeare_and_linzen_reference_files_pass_their_checks(
    shared_data):
  ud = {n: (shared_data / "ud_en_ewt" / n).read_bytes() for n in (
      "en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu", "en_ewt-ud-test.conllu",
      "stats.xml")}
  assert fetch.check_ud_en_ewt(fetch.convert_ud(ud))[-1].startswith("all 9 counts")
  text = (shared_data / "tinyshakespeare" / "input.txt").read_bytes()
  assert fetch.check_tinyshakespeare(fetch.convert_tinyshakespeare(text))[-1].startswith(
      "all 3 counts")
  simple = shared_data / "linzen2016" / "rnn_agr_simple"
  files = fetch.convert_linzen(tar_of({f"rnn_agr_simple/{p.name}": p.read_bytes()
                                       for p in sorted(simple.iterdir())}))
  assert fetch.check_linzen(files)[-1].startswith("all 6 counts")
  for name, sha in fetch.REFERENCE_SHA256["linzen2016"].items():
    assert _sha(files[name]) == sha
