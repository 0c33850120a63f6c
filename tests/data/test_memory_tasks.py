"""The synthetic memory tasks against their definitions."""

import math

import numpy as np
import pytest

from rnn_research.data import memory_tasks


@pytest.mark.parametrize("length", [2, 7, 200])
def test_adding_has_two_markers_one_per_half_and_targets_their_sum(length):
  inputs, targets = memory_tasks.adding_batch(np.random.default_rng(0), 64, length)
  assert inputs.shape == (64, length, 2) and targets.shape == (64,)
  values, markers = inputs[..., 0], inputs[..., 1]
  assert np.all((values >= 0) & (values < 1))
  assert np.all(np.isin(markers, [0.0, 1.0]))
  np.testing.assert_array_equal(markers.sum(1), 2.0)
  half = length // 2
  np.testing.assert_array_equal(markers[:, :half].sum(1), 1.0)
  np.testing.assert_array_equal(markers[:, half:].sum(1), 1.0)
  np.testing.assert_allclose(targets, (values * markers).sum(1), rtol=1e-6)


def test_adding_baseline_is_the_variance_of_the_sum():
  _, targets = memory_tasks.adding_batch(np.random.default_rng(1), 100_000, 20)
  predict_one = np.mean(np.square(targets - 1.0))
  assert predict_one == pytest.approx(memory_tasks.get_task("adding").baseline(20), abs=3e-3)
  assert memory_tasks.get_task("adding").baseline(500) == pytest.approx(1 / 6)


@pytest.mark.parametrize("length", [1, 5, 100])
def test_copy_layout(length):
  inputs, targets = memory_tasks.copy_batch(np.random.default_rng(0), 32, length)
  n = 10
  assert inputs.shape == targets.shape == (32, length + 20)
  symbols = inputs[:, :n]
  assert np.all((symbols >= 1) & (symbols <= 8))
  np.testing.assert_array_equal(inputs[:, n:n + length - 1], 0)  # T - 1 blanks
  np.testing.assert_array_equal(inputs[:, n + length - 1], 9)  # the delimiter
  np.testing.assert_array_equal(inputs[:, n + length:], 0)  # 10 blanks
  np.testing.assert_array_equal(targets[:, :length + n], 0)  # T + 10 blanks
  np.testing.assert_array_equal(targets[:, -n:], symbols)  # then the symbols


def test_copy_baseline_is_the_memoryless_cross_entropy():
  for length in (10, 100, 500):
    assert memory_tasks.copy_baseline(length) == pytest.approx(
        10 * math.log(8) / (length + 20))
  # The memoryless predictor: blank for sure for T + 10 steps, then uniform over 1..8.
  length = 30
  _, targets = memory_tasks.copy_batch(np.random.default_rng(2), 4, length)
  probs = np.zeros(10)
  probs[1:9] = 1 / 8
  per_step = [0.0] * (length + 10) + [-math.log(probs[s]) for s in targets[0, -10:]]
  assert np.mean(per_step) == pytest.approx(memory_tasks.get_task("copy").baseline(length))


def test_recall_answer_is_the_first_token():
  tokens, answer = memory_tasks.recall_batch(np.random.default_rng(0), 16, 5, 8)
  assert tokens.shape == (16, 6)
  np.testing.assert_array_equal(answer, tokens[:, 0])
  assert memory_tasks.get_task("recall", 8).baseline(5) == pytest.approx(math.log(8))


@pytest.mark.parametrize("name", memory_tasks.TASKS)
def test_batches_are_reproducible_from_the_seed(name):
  task = memory_tasks.get_task(name)
  a = task.batch(np.random.default_rng([3, 1]), 8, 12)
  b = task.batch(np.random.default_rng([3, 1]), 8, 12)
  c = task.batch(np.random.default_rng([3, 2]), 8, 12)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])
  assert a[0].shape[1] == task.seq_len(12)


def test_unknown_task_and_bad_lengths_are_refused():
  with pytest.raises(ValueError, match="unknown memory task 'add'; valid: adding, copy, recall"):
    memory_tasks.get_task("add")
  with pytest.raises(ValueError, match="T >= 2"):
    memory_tasks.adding_batch(np.random.default_rng(0), 1, 1)
  with pytest.raises(ValueError, match="T >= 1"):
    memory_tasks.copy_batch(np.random.default_rng(0), 1, 0)
  with pytest.raises(ValueError, match="T >= 1"):
    memory_tasks.recall_batch(np.random.default_rng(0), 1, 0)
