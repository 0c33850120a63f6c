"""Batches: language-model windows for truncated backpropagation through time,
and length-bucketed batches of sentences for the supervised studies.

The token stream is cut into B contiguous streams, one per batch row
(Zaremba et al. 2014; PyTorch's ``word_language_model``; the TF PTB reader),
and each stream is read in consecutive windows of ``bptt`` steps. Row b of
window i+1 continues exactly where row b of window i stopped, so a model can
carry its hidden state from one window to the next and see context longer than
``bptt`` while gradients stop at the window edge.

Only full windows are produced (the TF reader's ``epoch_size = (N - 1) //
bptt``): every step then has one shape and ``jax.jit`` compiles once. The
tokens this drops are at most ``bptt`` per row.

Windows are indexed by a plain int, so the position of a training loop inside
an epoch is one integer that a checkpoint can store and a resumed run can
continue from.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from rnn_research.data.corpus import DataError


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """Splits a 1-D token stream into ``batch_size`` contiguous rows.

  Row b is ``ids[b * N : (b + 1) * N]`` with ``N = len(ids) // batch_size``;
  the last ``len(ids) % batch_size`` tokens are dropped.

  Returns:
    int32 array (B, N).
  """
  ids = np.asarray(ids)
  if ids.ndim != 1:
    raise DataError(f"batchify expects a 1-D token array, got shape {ids.shape}")
  if batch_size <= 0:
    raise DataError(f"batch_size must be positive, got {batch_size}")
  n = len(ids) // batch_size
  if n == 0:
    raise DataError(f"{len(ids)} tokens are too few for batch_size="
                    f"{batch_size}")
  return ids[:n * batch_size].astype(np.int32).reshape(batch_size, n)  # (B, N)


class LMBatches:
  """Consecutive (inputs, targets) windows of a batchified token stream.

  ``batches[i]`` is ``(inputs, targets)``, both int32 (B, bptt), with
  ``targets[:, t] == inputs[:, t + 1]`` inside a window and the last target of
  window i equal to the first input of window i+1. ``len(batches)`` is the
  number of windows in one epoch. The arrays are read-only views.
  """

  def __init__(self, ids: np.ndarray, batch_size: int, bptt: int):
    if bptt <= 0:
      raise DataError(f"bptt must be positive, got {bptt}")
    ids = np.asarray(ids)
    if ids.ndim == 1 and batch_size > 0 and len(ids) < batch_size * (bptt + 1):
      raise DataError(
          f"{len(ids)} tokens are too few for batch_size={batch_size} and "
          f"bptt={bptt}: one window needs at least batch_size * (bptt + 1) = "
          f"{batch_size * (bptt + 1)}")
    self.data = batchify(ids, batch_size)  # (B, N)
    self.data.flags.writeable = False
    self.batch_size = batch_size
    self.bptt = bptt
    # A window needs bptt inputs and the token after the last as a target.
    self._num_windows = (self.data.shape[1] - 1) // bptt

  def __len__(self) -> int:
    return self._num_windows

  def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(i, (int, np.integer)):
      raise TypeError(f"LMBatches index must be an int, got {type(i).__name__}")
    if i < 0:
      i += self._num_windows
    if not 0 <= i < self._num_windows:
      raise IndexError(f"window {i} out of range for {self._num_windows} "
                       "windows")
    start = i * self.bptt
    inputs = self.data[:, start:start + self.bptt]  # (B, bptt)
    targets = self.data[:, start + 1:start + self.bptt + 1]  # (B, bptt)
    return inputs, targets

  def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(self._num_windows):
      yield self[i]

  @property
  def num_tokens(self) -> int:
    """Target tokens per epoch: the denominator of the epoch's perplexity."""
    return self._num_windows * self.batch_size * self.bptt

  def __repr__(self) -> str:
    return (f"LMBatches(windows={len(self)}, batch_size={self.batch_size}, "
            f"bptt={self.bptt})")


# ---------------------------------------------------------------------------
# Sentences of different lengths (classification, tagging, number prediction).


def pad_batch(tokens: np.ndarray, lengths: np.ndarray, padding: str = "right",
              multiple: int = 8, pad_id: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
  """Cuts right-padded (B, T) rows to the batch's longest prefix.

  T is rounded up to a multiple of ``multiple`` so ``jax.jit`` sees few
  distinct shapes. ``padding``:

  * ``right``: words first, then padding; lengths are the real lengths, so the
    model masks the padding (the carry stops at each prefix's end).
  * ``left``: padding first, as the reference Keras code
    (``pad_sequences``) did; lengths are all T, so the model *reads* the
    padding token, which it must learn to ignore. Kept for fidelity.

  Returns:
    (tokens (B, T') int32, lengths (B,) int32).
  """
  if padding not in ("right", "left"):
    raise DataError(f"unknown padding {padding!r}; valid: right, left")
  width = int(lengths.max()) if len(lengths) else 1
  width = -(-width // multiple) * multiple
  out = np.full((tokens.shape[0], width), pad_id, np.int32)  # (B, T')
  if padding == "right":
    n = min(width, tokens.shape[1])
    out[:, :n] = tokens[:, :n]
    return out, lengths.astype(np.int32)
  for row, length in enumerate(lengths):
    out[row, width - length:] = tokens[row, :length]
  return out, np.full_like(lengths, width, dtype=np.int32)


def batch_indices(lengths: np.ndarray, batch_size: int,
                  rng: np.random.Generator | None = None,
                  bucket: int = 50) -> list[np.ndarray]:
  """Index batches over N items; the last one may be short.

  With ``rng`` (training) the items are shuffled, then sorted by length within
  chunks of ``bucket`` batches, and the batches shuffled again: each batch
  holds prefixes of similar length (little padding, a fraction of the scan
  steps on a CPU) while the order still changes every epoch. Without ``rng``
  (evaluation) the order is by length, for the same reason.
  """
  n = len(lengths)
  if rng is None:
    order = np.argsort(lengths, kind="stable")
  else:
    order = rng.permutation(n)
    chunk = batch_size * max(bucket, 1)
    order = np.concatenate([
        c[np.argsort(lengths[c], kind="stable")]
        for c in np.array_split(order, max(1, -(-n // chunk)))])
  batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
  if rng is not None:
    batches = [batches[i] for i in rng.permutation(len(batches))]
  return batches
