"""batchify and LMBatches: shapes, shifted targets, contiguous streams; padding
and length-bucketed batches of whole sentences."""

import numpy as np
import pytest

from rnn_research.data.batching import LMBatches, batch_indices, batchify, pad_batch
from rnn_research.data.corpus import DataError


def test_batchify_makes_contiguous_rows_and_trims_remainder():
  data = batchify(np.arange(23), 4)
  assert data.shape == (4, 5) and data.dtype == np.int32
  np.testing.assert_array_equal(data[1], [5, 6, 7, 8, 9])
  assert data.max() == 19  # 20, 21, 22 dropped


def test_lm_batches_shapes_and_count():
  batches = LMBatches(np.arange(103), batch_size=4, bptt=6)
  # 103 // 4 = 25 per row; (25 - 1) // 6 = 4 full windows.
  assert len(batches) == 4
  assert batches.num_tokens == 4 * 4 * 6
  for inputs, targets in batches:
    assert inputs.shape == targets.shape == (4, 6)
    assert inputs.dtype == targets.dtype == np.int32


def test_targets_are_inputs_shifted_by_one():
  ids = np.random.default_rng(0).integers(0, 50, size=500)
  batches = LMBatches(ids, batch_size=3, bptt=7)
  data = batchify(ids, 3)
  for i in range(len(batches)):
    inputs, targets = batches[i]
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    np.testing.assert_array_equal(targets, data[:, i * 7 + 1:(i + 1) * 7 + 1])


def test_consecutive_windows_continue_each_stream():
  ids = np.arange(1000)  # a token's value is its position in the corpus
  batches = LMBatches(ids, batch_size=5, bptt=9)
  row_length = 1000 // 5
  for i in range(len(batches) - 1):
    inputs, _ = batches[i]
    next_inputs, _ = batches[i + 1]
    np.testing.assert_array_equal(next_inputs[:, 0], inputs[:, -1] + 1)
  first, _ = batches[0]
  np.testing.assert_array_equal(first[:, 0], np.arange(5) * row_length)


def test_integer_index_and_negative_index_and_out_of_range():
  batches = LMBatches(np.arange(200), batch_size=2, bptt=10)
  np.testing.assert_array_equal(batches[-1][0], batches[len(batches) - 1][0])
  with pytest.raises(IndexError):
    batches[len(batches)]


def test_too_short_corpus_names_sizes():
  with pytest.raises(DataError, match=r"50 tokens .* batch_size=10 and bptt=5"):
    LMBatches(np.arange(50), batch_size=10, bptt=5)


def test_batches_are_read_only():
  inputs, _ = LMBatches(np.arange(100), batch_size=2, bptt=5)[0]
  with pytest.raises(ValueError):
    inputs[0, 0] = 7


def test_pad_batch_left_puts_words_last_and_reads_the_whole_row():
  tokens = np.array([[5, 6, 0], [7, 8, 9]], np.int32)
  lengths = np.array([2, 3], np.int32)
  right, right_len = pad_batch(tokens, lengths, "right", multiple=4)
  assert right.tolist() == [[5, 6, 0, 0], [7, 8, 9, 0]]
  assert right_len.tolist() == [2, 3]
  left, left_len = pad_batch(tokens, lengths, "left", multiple=4)
  assert left.tolist() == [[0, 0, 5, 6], [0, 7, 8, 9]]
  assert left_len.tolist() == [4, 4]


def test_batch_indices_cover_every_item_once_in_length_buckets():
  lengths = np.random.default_rng(0).integers(1, 40, size=1000)
  batches = batch_indices(lengths, 16, np.random.default_rng(1), bucket=10)
  flat = np.concatenate(batches)
  assert sorted(flat.tolist()) == list(range(1000))
  spread = np.mean([np.ptp(lengths[b]) for b in batches])
  assert spread < 10  # random batches would spread over ~35
  again = batch_indices(lengths, 16, np.random.default_rng(2), bucket=10)
  assert not np.array_equal(flat, np.concatenate(again))
