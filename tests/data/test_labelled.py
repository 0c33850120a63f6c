"""Readers of labelled text (CoNLL-U, SST trees, LABEL<TAB>TEXT), ids and batches."""

import numpy as np
import pytest

from rnn_research.data import labelled
from rnn_research.data.corpus import DataError

CONLLU = """# sent_id = a-1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t0:root\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = a-2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return path


def test_conllu_skips_comments_ranges_and_empty_nodes_and_picks_the_column(tmp_path):
  path = _write(tmp_path, "x-ud-train.conllu", CONLLU)
  upos = labelled.read_conllu(path, "upos")
  assert [ex.words for ex in upos] == [("I", "do", "n't", "know", "."), ("Hi",)]
  assert upos[0].tags == ("PRON", "AUX", "PART", "VERB", "PUNCT")
  assert labelled.read_conllu(path, "xpos")[0].tags == ("PRP", "VBP", "RB", "VB", ".")


@pytest.mark.parametrize("line, message", [
    ("1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_", "expected 10 tab-separated"),
    ("x\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_", "ID must be an integer"),
    ("1\tI\tI\t_\tPRP\t_\t3\tnsubj\t_\t_", "no UPOS tag"),
])
def test_conllu_malformed_line_names_file_and_line(tmp_path, line, message):
  path = _write(tmp_path, "bad.conllu", "# c\n1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n\n" + line + "\n")
  with pytest.raises(DataError, match=f"bad.conllu:4: {message}"):
    labelled.read_conllu(path)


def test_conllu_empty_file_and_unknown_column_are_refused(tmp_path):
  with pytest.raises(DataError, match="no sentences"):
    labelled.read_conllu(_write(tmp_path, "e.conllu", "# only a comment\n\n"))
  with pytest.raises(DataError, match="unknown tag column 'feats'; valid: upos, xpos"):
    labelled.read_conllu(_write(tmp_path, "x.conllu", CONLLU), "feats")


def test_treebank_files_are_found_by_glob(tmp_path):
  for split in ("train", "dev", "test"):
    _write(tmp_path, f"fr_gsd-ud-{split}.conllu", CONLLU)
  files = labelled.find_treebank_files(tmp_path)
  assert {k: p.name for k, p in files.items()} == {
      "train": "fr_gsd-ud-train.conllu", "valid": "fr_gsd-ud-dev.conllu",
      "test": "fr_gsd-ud-test.conllu"}
  (tmp_path / "fr_gsd-ud-dev.conllu").unlink()
  with pytest.raises(DataError, match=r"expected one \*-ud-dev.conllu file, found 0"):
    labelled.find_treebank_files(tmp_path)


TREES = "(3 (2 It) (4 (2 's) (4 (3 lovely) (2 film))))\n(1 (2 8 1\\/2) (0 bad))\n(2 (2 so) (2 so))\n"


def test_sst_roots_phrases_and_modes(tmp_path):
  path = _write(tmp_path, "train.txt", TREES)
  roots = labelled.read_sst_trees(path, "binary")
  assert [(ex.words, ex.label) for ex in roots] == [
      (("It", "'s", "lovely", "film"), "1"), (("8", "1\\/2", "bad"), "0")]  # neutral dropped
  fine = labelled.read_sst_trees(path, "fine")
  assert [ex.label for ex in fine] == ["3", "1", "2"]
  phrases = labelled.read_sst_trees(path, "fine", phrases=True, unique=False)
  assert [(" ".join(ex.words), ex.label) for ex in phrases[:5]] == [
      ("It 's lovely film", "3"), ("It", "2"), ("'s lovely film", "4"), ("'s", "2"),
      ("lovely film", "4")]
  assert len(phrases) == 7 + 3 + 3
  assert len(labelled.read_sst_trees(path, "fine", phrases=True)) == 7 + 3 + 2  # 'so' once
  binary = labelled.read_sst_trees(path, "binary", phrases=True)
  assert {ex.label for ex in binary} == {"0", "1"} and len(binary) == 4 + 2


@pytest.mark.parametrize("tree, message", [
    ("(3 (2 It) (4 good)", "expected '\\)'"), ("(7 (2 It))", "expected a label 0-4"),
    ("(3 (2 It)) (2 x)", "text after the tree"), ("(3 )", "a node without words")])
def test_sst_malformed_tree_names_file_and_line(tmp_path, tree, message):
  path = _write(tmp_path, "t.txt", "(2 fine)\n" + tree + "\n")
  with pytest.raises(DataError, match=f"t.txt:2: malformed tree \\({message}"):
    labelled.read_sst_trees(path, "fine")


def test_labelled_text_needs_two_fields(tmp_path):
  path = _write(tmp_path, "a.tsv", "pos\ta fine film\n\nneg\tdull\n")
  assert [(ex.label, ex.words) for ex in labelled.read_labelled_text(path)] == [
      ("pos", ("a", "fine", "film")), ("neg", ("dull",))]
  with pytest.raises(DataError, match=r"b.tsv:2: expected LABEL<TAB>TEXT .* got 1 field:"):
    labelled.read_labelled_text(_write(tmp_path, "b.tsv", "pos\tok\njust text\n"))
  with pytest.raises(DataError, match="no lines"):
    labelled.read_labelled_text(_write(tmp_path, "c.tsv", "\n"))


def test_encoder_min_count_unseen_tags_and_batches(tmp_path, caplog):
  E = labelled.Example
  train = [E(("a", "b", "a"), ("X", "Y", "X")), E(("c", "a"), ("Y", "X"))]
  enc = labelled.Encoder(train, min_count=2)
  assert enc.words.tokens == ["<pad>", "<unk>", "a"] and enc.classes == ["X", "Y"]
  test = enc.encode([E(("a", "zz"), ("X", "NEW")), E(("b",), ("Y",))], "test")
  np.testing.assert_array_equal(test.words[0], [2, 1])
  np.testing.assert_array_equal(test.targets[0], [0, -1])  # scored, never right
  assert "test: 1 tokens carry tags that training never saw (NEW)" in caplog.text
  batch = labelled.make_batch(test, np.array([0, 1]), 3, enc.spellings)
  assert batch["tokens"].shape == (3, 8)
  np.testing.assert_array_equal(batch["lengths"], [2, 1, 1])
  np.testing.assert_array_equal(batch["weights"], [1, 1, 0])
  np.testing.assert_array_equal(batch["targets"][0, :3], [0, -1, -1])
  np.testing.assert_array_equal(batch["char_lengths"][:2, :2], [[1, 2], [1, 0]])
  zz = batch["chars"][0, 1, :2]
  assert enc.chars.decode(zz) == ["<unk>", "<unk>"]  # 'z' is not a training character
  ordered = labelled.batches(test, 1)
  assert sorted(len(b["tokens"]) for b in ordered) == [1, 1]
  wide = labelled.batches(test, 1, min_width=32)  # one width: one compilation
  assert [b["tokens"].shape for b in wide] == [(1, 32), (1, 32)]


def test_bucket_widths_are_few():
  assert [labelled.bucket_width(n) for n in (1, 8, 9, 33, 159, 600)] == [8, 8, 16, 48, 192, 768]


def test_real_treebank_and_sst_counts(shared_data):
  files = labelled.find_treebank_files(shared_data / "ud_en_ewt")
  train = labelled.read_conllu(files["train"])
  test = labelled.read_conllu(files["test"])
  assert (len(train), sum(len(ex.words) for ex in train)) == (12_544, 204_577)
  assert (len(test), sum(len(ex.words) for ex in test)) == (2_077, 25_094)
  assert len(labelled.class_counts(train)) == 17
  sst = shared_data / "sst"
  # The derived SST-2 test file is the binary root labels of the test trees.
  trees = labelled.read_sst_trees(sst / "test.txt", "binary")
  assert trees == labelled.read_labelled_text(sst / "sst2_sentences.test.tsv")
  nodes = labelled.read_sst_trees(sst / "train.txt", "binary", phrases=True, unique=False)
  assert len(nodes) == 98_794  # the README's non-neutral nodes of train
