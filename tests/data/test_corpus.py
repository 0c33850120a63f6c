"""Reading text, split files, vocabulary, and load_corpus for each source."""

import importlib.util
import json
import math

import ml_collections
import numpy as np
import pytest

from rnn_research.data import corpus
from rnn_research.data.corpus import DataError, Vocab


def write_splits(directory, scheme, texts):
  directory.mkdir(parents=True, exist_ok=True)
  for split, text in texts.items():
    (directory / scheme.format(split=split)).write_text(text, encoding="utf-8")
  return directory


def test_read_tokens_appends_eos_per_line_including_blank_lines(tmp_path):
  path = tmp_path / "ptb.train.txt"
  path.write_text(" the cat sat \n\n a  dog\tran\n", encoding="utf-8")
  assert corpus.read_tokens(path) == [
      "the", "cat", "sat", "<eos>", "<eos>", "a", "dog", "ran", "<eos>"]


def test_read_tokens_last_line_without_newline_still_ends_with_eos(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text("a b\nc", encoding="utf-8")
  assert corpus.read_tokens(path) == ["a", "b", "<eos>", "c", "<eos>"]


def test_read_tokens_non_utf8_names_file_and_line(tmp_path):
  path = tmp_path / "ptb.valid.txt"
  path.write_bytes(b"fine line\nalso fine\nbad \xff byte\n")
  with pytest.raises(DataError, match=r"ptb\.valid\.txt:3: not valid UTF-8"
                    ) as e:
    corpus.read_tokens(path)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("scheme", ["ptb.{split}.txt", "wiki.{split}.tokens",
                                    "{split}.txt"])
def test_find_split_files_recognises_naming_schemes(tmp_path, scheme):
  write_splits(tmp_path, scheme, {"train": "a\n", "valid": "a\n", "test": "a\n"})
  files = corpus.find_split_files(tmp_path)
  assert {s: p.name for s, p in files.items()} == {
      s: scheme.format(split=s) for s in ("train", "valid", "test")}


def test_find_split_files_missing_directory_names_path_and_expected_names(
    tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(DataError, match="does not exist") as e:
    corpus.find_split_files(missing)
  assert str(missing) in str(e.value) and "ptb.train.txt" in str(e.value)


def test_find_split_files_empty_directory_names_expected_files(tmp_path):
  with pytest.raises(DataError, match="no training file") as e:
    corpus.find_split_files(tmp_path)
  assert str(tmp_path) in str(e.value)
  assert "wiki.train.tokens" in str(e.value) and "train.txt" in str(e.value)


def test_find_split_files_missing_test_says_which(tmp_path):
  write_splits(tmp_path, "wiki.{split}.tokens", {"train": "a\n", "valid": "a\n"})
  with pytest.raises(DataError, match=r"has wiki\.train\.tokens but no "
                     r"wiki\.test\.tokens"):
    corpus.find_split_files(tmp_path)


def test_vocab_is_first_occurrence_order_and_deterministic():
  tokens = "b a b c <eos> a d <eos>".split()
  v1, v2 = Vocab.build(tokens), Vocab.build(list(tokens))
  assert v1.tokens == ["b", "a", "c", "<eos>", "d", "<unk>"]
  assert v1 == v2
  np.testing.assert_array_equal(v1.encode(["a", "zzz", "<eos>"]), [1, 5, 3])
  assert v1.encode(["a"]).dtype == np.int32
  assert v1.decode(v1.encode(tokens)) == tokens


def test_vocab_keeps_existing_unk_in_place():
  v = Vocab.build("x <unk> y".split())
  assert v.tokens == ["x", "<unk>", "y"] and v.unk_id == 1


def test_vocab_json_round_trip(tmp_path):
  v = Vocab.build("größe naïve 東京 <eos> the".split())
  v.to_json(tmp_path / "vocab.json")
  back = Vocab.from_json(tmp_path / "vocab.json")
  assert back == v and back.tokens == v.tokens


def test_vocab_from_json_rejects_other_json(tmp_path):
  (tmp_path / "v.json").write_text(json.dumps({"a": 1}))
  with pytest.raises(DataError, match="not an rnn_research vocabulary"):
    Vocab.from_json(tmp_path / "v.json")


def test_load_local_maps_oov_to_unk_and_counts_rate(tmp_path):
  write_splits(tmp_path, "{split}.txt", {
      "train": "the cat sat\nthe dog\n",
      "valid": "the cow sat\n",  # 'cow' unseen: 1 of 4 tokens
      "test": "a b\n",  # 'a', 'b' unseen: 2 of 3 tokens
  })
  c = corpus.load_corpus(ml_collections.ConfigDict(
      {"source": "local", "dir": str(tmp_path)}))
  assert c.vocab.tokens == ["the", "cat", "sat", "<eos>", "dog", "<unk>"]
  assert c.valid.tolist() == [0, 5, 2, 3]
  assert (c.oov["valid"].num_oov, c.oov["valid"].num_tokens) == (1, 4)
  assert math.isclose(c.oov["valid"].rate, 0.25)
  assert (c.oov["test"].num_oov, c.oov["train"].num_oov) == (2, 0)
  assert c.train.dtype == np.int32 and c.train.ndim == 1


def test_load_corpus_unknown_source_lists_valid_ones():
  with pytest.raises(DataError, match="local, hf, synthetic"):
    corpus.load_corpus(ml_collections.ConfigDict({"source": "ftp"}))


def test_load_corpus_local_without_dir_names_the_field():
  with pytest.raises(DataError, match=r"config\.data\.dir is required"):
    corpus.load_corpus(ml_collections.ConfigDict({"source": "local",
                                                  "dir": ""}))


def test_load_corpus_synthetic_reports_optimal_perplexity():
  c = corpus.load_corpus(ml_collections.ConfigDict({
      "source": "synthetic", "grammar_seed": 3, "num_train_sentences": 300,
      "num_valid_sentences": 50, "num_test_sentences": 50}))
  assert set(c.optimal_ppl) == {"train", "valid", "test"}
  # A perplexity above 1 and far below the vocabulary size.
  assert all(1 < p < len(c.vocab) / 3 for p in c.optimal_ppl.values())
  assert c.train.size > 300 * 5


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None,
                    reason="datasets is not installed")
def test_hf_offline_gives_one_line_error_naming_local_option(monkeypatch,
                                                             tmp_path):
  monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  monkeypatch.setenv("HF_HOME", str(tmp_path))  # no cached copy to fall back on
  import datasets  # pylint: disable=g-import-not-at-top
  import huggingface_hub  # pylint: disable=g-import-not-at-top
  # The flags are read at import; another test may have imported them first.
  monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
  monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "ds")
  monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
  with pytest.raises(DataError) as e:
    corpus.load_corpus(ml_collections.ConfigDict(
        {"source": "hf", "hf_name": "ptb_text_only", "hf_config": ""}))
  message = str(e.value)
  assert "\n" not in message
  assert "'ptb_text_only'" in message
  assert "--config.data.source=local --config.data.dir=DIR" in message


def test_real_ptb_vocabulary_and_token_counts(shared_data):
  c = corpus.load_local(shared_data / "ptb")
  assert len(c.vocab) == 10_000
  assert c.train.size == 887_521 + 42_068
  assert c.valid.size == 70_390 + 3_370 and c.test.size == 78_669 + 3_761
  assert c.oov["valid"].num_oov == 0 and c.oov["test"].num_oov == 0


# ---------------------------------------------------------------------------
# Characters as tokens.


def char_config(path, **overrides):
  return ml_collections.ConfigDict({"source": "local", "dir": str(path),
                                    "unit": "char", **overrides})


def test_read_chars_keeps_newlines_and_every_character(tmp_path):
  path = tmp_path / "t.txt"
  path.write_bytes(b"\xef\xbb\xbfab c\n\nd\xc3\xa9\n")  # BOM, blank line, 'e acute'
  assert corpus.read_chars(path) == ["a", "b", " ", "c", "\n", "\n", "d", "é", "\n"]


def test_read_chars_non_utf8_names_file_line_and_column(tmp_path):
  path = tmp_path / "t.txt"
  path.write_bytes(b"fine\nok \xff\n")
  with pytest.raises(DataError, match=r"t\.txt:2: not valid UTF-8 \(byte 0xff "
                     r"at column 4\)"):
    corpus.read_chars(path)


def test_split_by_fractions_gives_nanogpt_and_tfds_sizes():
  tokens = list(range(1_115_394))  # Tiny Shakespeare's length
  nano = corpus.split_by_fractions(tokens, 0.1, 0.0)
  assert [len(nano[s]) for s in corpus.SPLITS] == [1_003_854, 111_540, 0]
  tfds = corpus.split_by_fractions(tokens, 0.05, 0.05)
  assert [len(tfds[s]) for s in corpus.SPLITS] == [1_003_854, 55_770, 55_770]
  # In order and without overlap: the splits are consecutive pieces.
  assert tfds["train"] + tfds["valid"] + tfds["test"] == tokens


@pytest.mark.parametrize("valid, test, message", [
    (0.0, 0.1, "valid_fraction must be > 0"),
    (1.2, 0.0, r"valid_fraction must be in \[0, 1\)"),
    (0.1, -0.1, r"test_fraction must be in \[0, 1\)"),
    (0.6, 0.5, "must be < 1"),
])
def test_split_by_fractions_refuses_bad_fractions(valid, test, message):
  with pytest.raises(DataError, match=message):
    corpus.split_by_fractions(list("abcdefghij"), valid, test)


def test_char_corpus_from_one_file_maps_unseen_characters_to_unk(tmp_path):
  path = tmp_path / "play.txt"
  path.write_text("ab\nab\nab\nab\nzq", encoding="utf-8")  # 14 characters
  c = corpus.load_corpus(char_config(path, valid_fraction=0.2, test_fraction=0.1))
  assert c.unit == "char"
  assert c.vocab.tokens == ["a", "b", "\n", "<unk>"]  # from training only
  assert [len(c.split(s)) for s in corpus.SPLITS] == [9, 3, 2]
  assert c.vocab.decode(c.train) == list("ab\nab\nab\n")
  assert c.vocab.decode(c.valid) == ["a", "b", "\n"]
  assert c.vocab.decode(c.test) == ["<unk>", "<unk>"]  # 'z', 'q' never trained
  assert (c.oov["test"].num_oov, c.oov["valid"].num_oov) == (2, 0)
  assert "data.valid_fraction=0.2" in c.split_note


def test_char_corpus_from_a_directory_of_split_files(tmp_path):
  write_splits(tmp_path, "ptb.{split}.txt",
               {"train": "ab b\n", "valid": "ba\n", "test": "c\n"})
  c = corpus.load_corpus(char_config(tmp_path))
  assert c.vocab.decode(c.train) == list("ab b\n")
  assert c.vocab.decode(c.test) == ["<unk>", "\n"]


def test_char_corpus_from_a_directory_reads_its_txt_files_as_one_text(tmp_path):
  (tmp_path / "b.txt").write_text("ba\n", encoding="utf-8")
  (tmp_path / "a.txt").write_text("ab\n", encoding="utf-8")
  (tmp_path / "README.md").write_text("not part of the text", encoding="utf-8")
  c = corpus.load_corpus(char_config(tmp_path, valid_fraction=0.5, test_fraction=0.0))
  assert c.vocab.decode(c.train) == list("ab\n")  # a.txt first
  assert c.vocab.decode(c.valid) == list("ba\n")


def test_word_corpus_from_one_file_is_cut_by_the_same_fractions(tmp_path):
  path = tmp_path / "text.txt"
  path.write_text("a b\nc d\ne f\ng h\n", encoding="utf-8")  # 12 tokens with <eos>
  c = corpus.load_corpus(ml_collections.ConfigDict(
      {"source": "local", "dir": str(path), "unit": "word",
       "valid_fraction": 0.25, "test_fraction": 0.25}))
  assert [len(c.split(s)) for s in corpus.SPLITS] == [6, 3, 3]
  assert c.vocab.decode(c.valid) == ["<unk>", "<unk>", "<eos>"]


@pytest.mark.parametrize("unit", ["char", "word"])
def test_empty_text_file_is_one_line_error(tmp_path, unit):
  path = tmp_path / "empty.txt"
  path.write_text("", encoding="utf-8")
  with pytest.raises(DataError, match=r"text file .*empty\.txt is empty") as e:
    corpus.load_corpus(char_config(path, unit=unit))
  assert "\n" not in str(e.value)


def test_char_unit_errors_name_the_problem(tmp_path):
  with pytest.raises(DataError, match="unknown config.data.unit 'byte'"):
    corpus.load_corpus(char_config(tmp_path, unit="byte"))
  with pytest.raises(DataError, match="needs config.data.source='local'"):
    corpus.load_corpus(ml_collections.ConfigDict({"source": "synthetic", "unit": "char"}))
  with pytest.raises(DataError, match="neither split files .* nor \\*.txt"):
    corpus.load_corpus(char_config(tmp_path))
  with pytest.raises(DataError, match="does not exist"):
    corpus.load_corpus(char_config(tmp_path / "nowhere.txt"))


def test_real_tiny_shakespeare_on_nanogpts_split(shared_data):
  path = shared_data / "tinyshakespeare"
  if not (path / "input.txt").exists():
    pytest.skip(f"{path}/input.txt not found")
  c = corpus.load_corpus(char_config(path, valid_fraction=0.1, test_fraction=0.0))
  assert (len(c.train), len(c.valid), len(c.test)) == (1_003_854, 111_540, 0)
  assert len(c.vocab) == 65 + 1  # 65 characters and <unk>
  assert c.oov["valid"].num_oov == 0
  assert int((c.train == c.vocab.index("\n")).sum() + (c.valid == c.vocab.index("\n")).sum()
             ) == 40_000
