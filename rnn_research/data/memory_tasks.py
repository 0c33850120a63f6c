"""Synthetic long-range memory tasks, generated from a seed (no download).

Each task makes batches of sequences whose answer depends on inputs about T
steps back, for a sequence length parameter T:

* ``adding`` (Hochreiter & Schmidhuber 1997, in the form of Le, Jaitly &
  Hinton 2015 and Arjovsky, Shah & Bengio 2016): two input channels of length
  T, values drawn from U[0, 1] and a marker that is 1 at exactly two
  positions, one in each half (first half [0, T/2), second [T/2, T)); the
  target, read at the last step, is the sum of the two marked values. Mean
  squared error; always predicting 1 (the mean of the sum) scores
  Var(X_1 + X_2) = 2/12 = 0.167.
* ``copy`` (Arjovsky et al. 2016): categories 0..9 with 0 the blank and 9 the
  delimiter. Input (length T + 20): 10 symbols drawn from 1..8, T - 1 blanks,
  the delimiter, 10 blanks. Target: T + 10 blanks, then the 10 symbols.
  Cross-entropy averaged over all T + 20 steps; predicting blanks and then
  uniform guesses among the 8 symbols scores 10 log(8) / (T + 20).
* ``recall``: k + 1 = T + 1 random symbols out of ``vocab_size``; the target,
  read at the last step, is the first one, T steps back. Cross-entropy; a
  guess scores log(vocab_size), accuracy 1 / vocab_size.

Symbols are ints; models read them one-hot (``one_hot``). A batch is
``(inputs, targets)`` in numpy; the same ``numpy.random.Generator`` state
gives the same batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

COPY_LENGTH = 10  # symbols to remember (Arjovsky et al. 2016)
COPY_ALPHABET = 8  # symbols 1..8; 0 = blank, 9 = delimiter
COPY_CLASSES = COPY_ALPHABET + 2


def adding_batch(rng: np.random.Generator, batch_size: int, length: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(inputs (B, T, 2) float32: value, marker; targets (B,) float32)."""
  if length < 2:
    raise ValueError(f"the adding problem needs T >= 2 (a marker in each half), got {length}")
  values = rng.uniform(0.0, 1.0, (batch_size, length))  # (B, T)
  half = length // 2
  first = rng.integers(0, half, batch_size)  # (B,) in [0, T/2)
  second = rng.integers(half, length, batch_size)  # (B,) in [T/2, T)
  markers = np.zeros((batch_size, length))
  rows = np.arange(batch_size)
  markers[rows, first] = 1.0
  markers[rows, second] = 1.0
  targets = values[rows, first] + values[rows, second]
  inputs = np.stack([values, markers], axis=-1).astype(np.float32)  # (B, T, 2)
  return inputs, targets.astype(np.float32)


def copy_batch(rng: np.random.Generator, batch_size: int, length: int
               ) -> tuple[np.ndarray, np.ndarray]:
  """(inputs (B, T + 20) int32, targets (B, T + 20) int32) of the copy task."""
  if length < 1:
    raise ValueError(f"the copy task needs T >= 1, got {length}")
  n = COPY_LENGTH
  symbols = rng.integers(1, COPY_ALPHABET + 1, (batch_size, n))  # (B, 10) in 1..8
  inputs = np.zeros((batch_size, length + 2 * n), np.int32)  # (B, T + 20)
  inputs[:, :n] = symbols
  inputs[:, n + length - 1] = COPY_CLASSES - 1  # the delimiter, after T - 1 blanks
  targets = np.zeros_like(inputs)
  targets[:, -n:] = symbols
  return inputs, targets


def recall_batch(rng: np.random.Generator, batch_size: int, length: int, vocab_size: int = 8
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(tokens (B, T + 1) int32, answer (B,) int32): the answer is the first
  token, T steps before the last input. Distractors come from the same symbols."""
  if length < 1:
    raise ValueError(f"recall needs k = T >= 1, got {length}")
  tokens = rng.integers(0, vocab_size, (batch_size, length + 1)).astype(np.int32)  # (B, T+1)
  return tokens, tokens[:, 0].copy()


def one_hot(tokens: np.ndarray, classes: int) -> np.ndarray:
  """int (...) -> float32 (..., classes)."""
  return np.eye(classes, dtype=np.float32)[tokens]


@dataclasses.dataclass(frozen=True)
class Task:
  """What the training loop needs to know about a task.

  Attributes:
    name: 'adding', 'copy' or 'recall'.
    input_size: features per step the model reads (symbols one-hot).
    num_outputs: 1 (regression) or the number of classes.
    classes: input symbol classes to one-hot (0 = inputs already real).
    last_step_only: the loss reads the last step's output only (else every step).
    regression: mean squared error (else cross-entropy).
    answer_steps: the last steps whose argmax is the accuracy (0: none, a regression).
    batch: (rng, batch_size, T) -> (inputs, targets).
    seq_len: T -> the number of steps a model reads.
    baseline: T -> the memoryless error (MSE or nats).
    error_name: what ``error`` is, for tables.
  """

  name: str
  input_size: int
  num_outputs: int
  classes: int
  last_step_only: bool
  regression: bool
  answer_steps: int
  batch: Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]
  seq_len: Callable[[int], int]
  baseline: Callable[[int], float]
  error_name: str


def copy_baseline(length: int) -> float:
  """10 log(8) / (T + 20): blanks known, the 10 symbols guessed."""
  return COPY_LENGTH * math.log(COPY_ALPHABET) / (length + 2 * COPY_LENGTH)


def get_task(name: str, vocab_size: int = 8) -> Task:
  """The task ``name``; an unknown name lists the valid ones."""
  if name == "adding":
    return Task("adding", 2, 1, 0, True, True, 0, adding_batch, lambda t: t,
                lambda t: 1.0 / 6.0, "MSE")
  if name == "copy":
    return Task("copy", COPY_CLASSES, COPY_CLASSES, COPY_CLASSES, False, False, COPY_LENGTH,
                copy_batch,
                lambda t: t + 2 * COPY_LENGTH, copy_baseline, "cross-entropy per step (nats)")
  if name == "recall":
    if vocab_size < 2:
      raise ValueError(f"recall needs vocab_size >= 2, got {vocab_size}")
    batch = lambda rng, b, t: recall_batch(rng, b, t, vocab_size)
    return Task("recall", vocab_size, vocab_size, vocab_size, True, False, 1, batch,
                lambda t: t + 1, lambda t: math.log(vocab_size), "cross-entropy (nats)")
  raise ValueError(f"unknown memory task {name!r}; valid: {', '.join(TASKS)}")


TASKS = ("adding", "copy", "recall")
