"""Agreement readers: each format parses as its authors wrote it, and every
malformed line is reported with its file and line number."""

import pathlib

import numpy as np
import pytest

from rnn_research.data import agreement as agr
from rnn_research.data.corpus import DataError

HEADER = "\t".join(agr.LINZEN_COLUMNS)


def linzen_row(sentence, verb_index, verb_pos="VBZ", n_intervening=0,
               n_diff=0, subj_index=2, distance=None):
  fields = {c: "x" for c in agr.LINZEN_COLUMNS}
  fields.update(sentence=sentence, orig_sentence=sentence, verb_pos=verb_pos,
                subj_index=str(subj_index), verb_index=str(verb_index),
                n_intervening=str(n_intervening), n_diff_intervening=str(n_diff),
                distance=str(distance or verb_index - subj_index),
                has_rel="False", has_nsubj="False", max_depth="0")
  return "\t".join(fields[c] for c in agr.LINZEN_COLUMNS)


def write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return path


# --- Linzen et al. simplified release ---------------------------------------


def test_read_simple_labels_prefixes_and_attractors_from_file_name(tmp_path):
  path = write(tmp_path, "numpred.test.3",
               "VBZ\tthe writer of the books\nVBP\tthe dogs near the cat\n\n")
  items = agr.read_simple(path)
  assert [it.plural for it in items] == [False, True]
  assert items[0].prefix == ("the", "writer", "of", "the", "books")
  assert {it.n_attractors for it in items} == {3}
  assert items[1].source == f"{path}:2"
  assert agr.read_simple(write(tmp_path, "numpred.val", "VBZ\ta b\n"))[0].n_attractors is None


def test_simple_test_files_finds_numbered_test_files(tmp_path):
  for name in ("numpred.test.2", "numpred.test.10", "numpred.test", "numpred.val"):
    write(tmp_path, name, "VBZ\ta\n")
  assert list(agr.simple_test_files(tmp_path)) == [2, 10]


# --- the full Linzen et al. TSV ---------------------------------------------


def test_read_linzen_tsv_cuts_at_the_1_based_verb_index_and_counts_attractors(tmp_path):
  rows = [
      # homogeneous: both intervening nouns are attractors
      linzen_row("the writer of the books and letters is here", 7, "VBZ", 2, 2),
      # mixed intervention: not counted
      linzen_row("the keys to the cabinet and doors are here", 7, "VBP", 2, 1),
      # same-number intervening noun only: 0 attractors
      linzen_row("the key to the cabinet is here", 5, "VBZ", 1, 0),
  ]
  path = write(tmp_path, "deps.tsv", "\n".join([HEADER] + rows) + "\n")
  items = agr.read_linzen_tsv(path)
  assert items[0].prefix == ("the", "writer", "of", "the", "books", "and")
  assert [it.plural for it in items] == [False, True, False]
  assert [it.n_attractors for it in items] == [2, None, 0]
  assert items[2].distance == 3
  assert len(agr.read_linzen_tsv(path, max_length=7)) == 1  # sentence lengths 9, 9, 7


def test_split_linzen_is_9_1_90_disjoint_and_seeded():
  items = [agr.AgreementItem((str(i),), i % 2 == 0) for i in range(1000)]
  train, valid, test = agr.split_linzen(items, seed=3)
  assert (len(train), len(valid), len(test)) == (90, 10, 900)
  ids = [it.prefix for part in (train, valid, test) for it in part]
  assert len(set(ids)) == 1000
  assert agr.split_linzen(items, seed=3)[0] == train
  assert agr.split_linzen(items, seed=4)[0] != train


# --- Gulordava et al. 2018 ----------------------------------------------------


def test_read_gulordava_uses_the_0_based_target_index(tmp_path):
  text = write(tmp_path, "s.text",
               "the keys to the cabinet are here . <eos>\nthe dog runs . <eos>\n")
  gold = write(tmp_path, "s.gold", "5\tare\tis\t1\n2\truns\trun\t0\n")
  items = agr.read_gulordava(text, gold)
  assert items[0].prefix == ("the", "keys", "to", "the", "cabinet")
  assert (items[0].correct, items[0].wrong, items[0].n_attractors) == ("are", "is", 1)
  assert items[1].prefix == ("the", "dog") and items[1].n_attractors == 0


def test_read_gulordava_rejects_files_of_different_lengths(tmp_path):
  text = write(tmp_path, "s.text", "a b c\na b c\n")
  gold = write(tmp_path, "s.gold", "1\tis\tare\t0\n")
  with pytest.raises(DataError, match="line-aligned"):
    agr.read_gulordava(text, gold)


GENERATED = "\t".join(agr.GENERATED_COLUMNS) + "\n" + "".join(
    "\t".join(row) + "\n" for row in [
        ["L__NOUN_VERB_VERB", "12", "2", "plur", "use", "correct", "generated",
         "Administrative debtors that would merge", "1", "False", "47118", "5",
         "6", "Administrative debtors that would merge add crimes . <eos>"],
        ["L__NOUN_VERB_VERB", "12", "2", "plur", "uses", "wrong", "generated",
         "Administrative debtors that would merge", "1", "False", "7477", "5",
         "6", "Administrative debtors that would merge add crimes . <eos>"],
        ["L__NOUN_VERB_VERB", "1", "4", "sing", "provides", "correct", "original",
         "An atmosphere offered in two", "0", "False", "7409", "4", "6",
         '"An atmosphere offered in two submits "" mosques "" . <eos>"'],
        ["L__NOUN_VERB_VERB", "1", "4", "sing", "provide", "wrong", "original",
         "An atmosphere offered in two", "0", "False", "12768", "4", "6",
         '"An atmosphere offered in two submits "" mosques "" . <eos>"'],
    ])


def test_read_generated_tab_pairs_correct_and_wrong_rows(tmp_path):
  items = agr.read_generated_tab(write(tmp_path, "generated.tab", GENERATED))
  assert len(items) == 2
  assert (items[0].correct, items[0].wrong, items[0].plural) == ("use", "uses", True)
  assert items[0].n_attractors == 1
  assert items[1].condition == "L__NOUN_VERB_VERB/original"
  assert items[1].prefix == ("An", "atmosphere", "offered", "in", "two")


# --- minimal pairs ------------------------------------------------------------


def test_read_minimal_pairs_skips_header_comments_and_blank_lines(tmp_path):
  path = write(tmp_path, "pairs.tsv",
               "condition\tgrammatical\tungrammatical\n# simple\n\n"
               "simple_agrmt\tthe author laughs\tthe author laugh\n")
  (pair,) = agr.read_minimal_pairs(path)
  assert pair.condition == "simple_agrmt"
  assert pair.ungrammatical == ("the", "author", "laugh")
  assert pair.source == f"{path}:4"


# --- malformed lines: every reader names file and line -------------------------


def _malformed_cases():
  yield ("simple: no tab", lambda d: agr.read_simple(
      write(d, "numpred.val", "VBZ\tthe dog\nVBZ the dog\n")), "numpred.val", 2)
  yield ("simple: bad label", lambda d: agr.read_simple(
      write(d, "numpred.val", "VBZ\ta\nVBZ\tb\nNN\tthe dog\n")), "numpred.val", 3)
  yield ("simple: empty prefix", lambda d: agr.read_simple(
      write(d, "numpred.val", "VBP\t \n")), "numpred.val", 1)
  yield ("linzen tsv: missing field", lambda d: agr.read_linzen_tsv(write(
      d, "deps.tsv", "\n".join([HEADER, linzen_row("a b c d", 3),
                                "a\tb\tc"]) + "\n")), "deps.tsv", 3)
  yield ("linzen tsv: non-integer index", lambda d: agr.read_linzen_tsv(write(
      d, "deps.tsv", HEADER + "\n" + linzen_row("a b c d", 3).replace(
          "\t3\t", "\tthree\t", 1) + "\n")), "deps.tsv", 2)
  yield ("linzen tsv: verb index outside sentence", lambda d: agr.read_linzen_tsv(
      write(d, "deps.tsv", HEADER + "\n" + linzen_row("a b c", 9) + "\n")),
         "deps.tsv", 2)
  yield ("gulordava: three gold fields", lambda d: agr.read_gulordava(
      write(d, "t.text", "a b c\na b c\n"),
      write(d, "t.gold", "1\tis\tare\t0\n1\tis\tare\n")), "t.gold", 2)
  yield ("gulordava: index past the sentence", lambda d: agr.read_gulordava(
      write(d, "t.text", "a b c\n"), write(d, "t.gold", "7\tis\tare\t0\n")),
         "t.gold", 1)
  yield ("generated.tab: unpaired row", lambda d: agr.read_generated_tab(
      write(d, "generated.tab", GENERATED.replace("\twrong\t", "\tcorrect\t", 1))),
         "generated.tab", 3)
  yield ("generated.tab: short row", lambda d: agr.read_generated_tab(
      write(d, "generated.tab", GENERATED + "x\ty\n")), "generated.tab", 6)
  yield ("minimal pairs: two fields", lambda d: agr.read_minimal_pairs(
      write(d, "pairs.tsv", "c\ta b\ta c\nc\ta b\n")), "pairs.tsv", 2)


@pytest.mark.parametrize("case", list(_malformed_cases()), ids=lambda c: c[0])
def test_malformed_line_is_reported_with_file_and_line(tmp_path, case):
  _, read, name, lineno = case
  with pytest.raises(DataError) as e:
    read(tmp_path)
  message = str(e.value)
  assert f"{name}:{lineno}:" in message
  assert "\n" not in message


def test_missing_file_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="cannot read"):
    agr.read_simple(tmp_path / "absent")


# --- encoding and batches -------------------------------------------------------


def items_of(*prefixes):
  return [agr.AgreementItem(tuple(p.split()), i % 2 == 1, i)
          for i, p in enumerate(prefixes)]


def test_encode_right_pads_keeps_last_words_and_maps_unknown_words():
  train = items_of("the dog", "the old cats near me")
  vocab = agr.build_vocab(train)
  assert vocab.index(agr.PAD) == 0
  enc = agr.encode(items_of("the dog", "the zebra near the dog"), vocab,
                   max_length=4)
  assert enc.lengths.tolist() == [2, 4]
  assert vocab.decode(enc.tokens[1]) == ["<unk>", "near", "the", "dog"]
  assert enc.tokens[0, 2:].tolist() == [0, 0]
  assert enc.num_oov == 1
  assert enc.labels.tolist() == [0, 1] and enc.n_attractors.tolist() == [0, 1]


def test_synthetic_items_have_the_requested_attractors_and_both_numbers():
  items = agr.synthetic_items(seed=0, n_attractors=2, num_items=20)
  assert {it.n_attractors for it in items} == {2}
  assert {it.plural for it in items} == {True, False}
  assert all(it.correct != it.wrong and it.prefix for it in items)


# --- the real files --------------------------------------------------------------


def test_real_numpred_test_5(shared_data):
  path = shared_data / "linzen2016" / "rnn_agr_simple" / "numpred.test.5"
  items = agr.read_simple(path)
  assert len(items) == 159
  assert {it.n_attractors for it in items} == {5}
  assert {it.plural for it in items} == {True, False}
