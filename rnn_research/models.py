"""Models built from the recurrent layers: a language model, a sentence
classifier (number prediction is one), a sequence tagger.

All take a registered cell by name (``cells.CELLS``) and the same stack
options, so any cell runs in any study by naming it in a config.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from rnn_research import cells as cells_lib
from rnn_research import dropout as dropout_lib
from rnn_research.recurrent import StackedRNN

Array = jax.Array

# Why a language model refuses ``bidirectional`` (also the config check's reason).
BIDIRECTIONAL_LM = ("a language model cannot be bidirectional: its backward direction "
                    "would read the very words it is asked to predict")


def cell_factory(cell: str, hidden_size: int, cell_options: dict | None = None,
                 init_scale: float = 0.0, dtype: Any = None):
  """A no-argument constructor of the named cell, for ``StackedRNN``.

  ``init_scale > 0`` initialises every kernel uniform(-s, s), as Zaremba et
  al. 2014 do; otherwise the cell's own initialisers (LeCun-normal input
  kernel, orthogonal recurrent kernel) are used. Biases start at zero (plus
  the LSTM's ``forget_bias``). The LRU has neither option and always starts
  from its paper's initialisation.
  """
  options = dict(cell_options or {})
  if init_scale > 0:  # the kernels this cell has (the LRU keeps its paper's init)
    fields = cells_lib.cell_fields(cell) if cell in cells_lib.CELLS else ()
    for field in ("kernel_init", "recurrent_kernel_init"):
      if field in fields:
        options.setdefault(field, cells_lib.uniform_init(init_scale))
  cells_lib.get_cell(cell, hidden_size=hidden_size, dtype=dtype, **options)  # validate now
  return functools.partial(cells_lib.get_cell, cell, hidden_size=hidden_size,
                           dtype=dtype, **options)


def project_logits(h: Array, kernel: Array, bias: Array, dtype: Any = None) -> Array:
  """Logits of the output layer, ``h W + b``: h (B, T, H) -> (B, T, V) float32.

  The product is ``cells.projection`` (in ``dtype``, float32 result, its
  three products plain row-major dots in ``dtype``); the bias is added in
  float32.
  """
  return cells_lib.projection(h, kernel, dtype) + bias


class OutputLayer(nn.Module):
  """The softmax layer's logits, ``h W + b`` by :func:`project_logits`.

  The parameters are ``nn.Dense``'s (``kernel`` (H, V), ``bias`` (V,),
  float32, created in that order), so checkpoints and ``interop`` see the
  same tree.
  """

  features: int
  kernel_init: Any = nn.initializers.lecun_normal()
  dtype: Any = None

  @nn.compact
  def __call__(self, h: Array) -> Array:
    """h (B, T, H) -> logits (B, T, V) float32."""
    kernel = self.param("kernel", self.kernel_init, (h.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                      jnp.float32)
    return project_logits(h, kernel, bias, self.dtype)


def _embed_init(init_scale: float):
  if init_scale > 0:
    return cells_lib.uniform_init(init_scale)
  return nn.initializers.normal(stddev=1.0)


class LanguageModel(nn.Module):
  """Embedding -> ``StackedRNN`` -> softmax over the vocabulary.

  Dropout follows Zaremba et al. 2014: on the embedding output, between
  layers and before the softmax, never on the recurrent connections. The
  carry is an input and an output, so truncated BPTT carries the hidden state
  across windows.

  Attributes:
    vocab_size: number of word types (softmax size).
    cell: registered cell name.
    hidden_size: units per layer.
    num_layers: stacked layers.
    embed_size: embedding size; defaults to ``hidden_size``.
    dropout_rate: non-recurrent dropout.
    variational_dropout: one dropout mask per sequence, shared over time.
    connection: between layers; see ``StackedRNN``.
    tie_weights: softmax weights are the embedding matrix (Press & Wolf 2017;
      Inan et al. 2017); needs ``embed_size == hidden_size``.
    init_scale: uniform(-s, s) initialisation when > 0.
    cell_options: extra cell attributes, e.g. ``{'forget_bias': 0.0}``.
    bidirectional: refused. A language model predicts the next word, and the
      backward direction would already have read it.
    dtype: compute dtype of the matrix products (None = float32).
    unroll: time steps per compiled loop iteration.
  """

  vocab_size: int
  cell: str = "lstm"
  hidden_size: int = 200
  num_layers: int = 2
  embed_size: int | None = None
  dropout_rate: float = 0.0
  variational_dropout: bool = False
  connection: str = "none"
  tie_weights: bool = False
  init_scale: float = 0.0
  cell_options: Any = None
  bidirectional: bool = False
  dtype: Any = None
  unroll: int = 1

  def setup(self):
    if self.bidirectional:
      raise ValueError(BIDIRECTIONAL_LM)
    embed_size = self.embed_size or self.hidden_size
    if self.tie_weights and embed_size != self.hidden_size:
      raise ValueError(f"tie_weights needs embed_size == hidden_size, got "
                       f"{embed_size} and {self.hidden_size}")
    self.embed = nn.Embed(self.vocab_size, embed_size,
                          embedding_init=_embed_init(self.init_scale))
    self.rnn = StackedRNN(
        cell_factory(self.cell, self.hidden_size, self.cell_options,
                     self.init_scale, self.dtype),
        num_layers=self.num_layers,
        dropout_rate=self.dropout_rate,
        variational=self.variational_dropout,
        connection=self.connection,
        unroll=self.unroll)
    self.dropout = dropout_lib.Dropout(self.dropout_rate, broadcast_dims=(
        (1,) if self.variational_dropout else ()))
    if not self.tie_weights:
      kernel_init = (cells_lib.uniform_init(self.init_scale) if self.init_scale > 0
                     else nn.initializers.lecun_normal())
      self.softmax = OutputLayer(self.vocab_size, kernel_init=kernel_init,
                                 dtype=self.dtype)

  def __call__(self, tokens: Array, carries=None, deterministic: bool = True,
               return_hidden: bool = False, carry_perturbations=None):
    """tokens (B, T) int -> (logits (B, T, V) float32, carries[, hidden])."""
    x = self.dropout(self.embed(tokens), deterministic=deterministic)  # (B, T, E)
    out = self.rnn(x, carries, deterministic=deterministic,
                   return_hidden=return_hidden,
                   carry_perturbations=carry_perturbations)
    h, new_carries = out[0], out[1]
    h = self.dropout(h, deterministic=deterministic)  # (B, T, H)
    if self.tie_weights:
      logits = self.embed.attend(h)
    else:
      logits = self.softmax(h)
    logits = logits.astype(jnp.float32)  # (B, T, V)
    if return_hidden:
      return logits, new_carries, out[2]
    return logits, new_carries

  @nn.nowrap
  def initial_carries(self, batch_size: int):
    """Zero carries for every layer, the shape ``__call__`` returns."""
    cell = cells_lib.get_cell(self.cell, hidden_size=self.hidden_size,
                              **dict(self.cell_options or {}))
    return tuple(cell.initialize_carry(jax.random.key(0), (batch_size, 1))
                 for _ in range(self.num_layers))


POOLINGS = ("final", "mean", "max", "attention")


def final_states(h: Array, lengths: Array, hidden_size: int,
                 bidirectional: bool) -> Array:
  """The state of an encoder that has read each whole sequence.

  ``h`` (B, T, F) are a stack's outputs. Unidirectional: the output at each
  sequence's last real token, ``h[b, lengths[b] - 1]``. Bidirectional (F = 2H,
  forward half first): the forward half at the last real token and the
  backward half at the first (t = 0), where the backward direction, which reads
  from the end, has read the whole sequence. Returns (B, F).
  """
  batch = jnp.arange(h.shape[0])
  last = h[batch, jnp.maximum(lengths, 1) - 1]  # (B, F)
  if not bidirectional:
    return last
  return jnp.concatenate([last[:, :hidden_size], h[:, 0, hidden_size:]], axis=-1)


def _stack(module, bidirectional: bool) -> StackedRNN:
  """The ``StackedRNN`` of a model with the usual cell fields."""
  return StackedRNN(
      cell_factory(module.cell, module.hidden_size, module.cell_options,
                   module.init_scale, module.dtype),
      num_layers=module.num_layers, bidirectional=bidirectional,
      dropout_rate=module.dropout_rate, connection=module.connection,
      unroll=module.unroll)


class SentenceClassifier(nn.Module):
  """A sequence -> one label: embedding -> ``StackedRNN`` -> pooling -> logits.

  Pooling over the real tokens (``lengths``; padding never counts):

  * ``final``: the encoder's state after reading the sequence
    (:func:`final_states`: for a bidirectional encoder the forward state at the
    last real token and the backward state at the first);
  * ``mean``: sum_t m_t h_t / sum_t m_t, with m_t = [t < length];
  * ``max``: max_t h_t over t < length, per feature;
  * ``attention``: a_t = softmax_t(v . tanh(W h_t + b)) over t < length,
    then sum_t a_t h_t (Yang et al. 2016).

  Linzen et al. 2016 number prediction is this model over the prefix before
  the verb, with ``final`` pooling and one output (the logit of 'plural'):
  50-dimensional embeddings, one LSTM layer of 50 units.

  Attributes:
    vocab_size: word types.
    num_classes: outputs; 1 = one logit per sequence, returned as (B,), for a
      binary task with a sigmoid.
    pooling: one of ``POOLINGS``.
    cell, hidden_size, num_layers, embed_size, dropout_rate, connection,
      init_scale, cell_options, dtype, unroll: as ``LanguageModel``.
    bidirectional: a ``Bidirectional`` layer per level (concatenated).
  """

  vocab_size: int
  num_classes: int = 2
  cell: str = "lstm"
  hidden_size: int = 50
  num_layers: int = 1
  embed_size: int = 50
  pooling: str = "final"
  dropout_rate: float = 0.0
  bidirectional: bool = False
  connection: str = "none"
  init_scale: float = 0.0
  cell_options: Any = None
  dtype: Any = None
  unroll: int = 1

  @nn.compact
  def __call__(self, tokens: Array, lengths: Array, deterministic: bool = True):
    """tokens (B, T) int, lengths (B,) >= 1 -> logits (B, num_classes) float32
    ((B,) when ``num_classes == 1``)."""
    if self.pooling not in POOLINGS:
      raise ValueError(f"unknown pooling {self.pooling!r}; valid: {', '.join(POOLINGS)}")
    x = nn.Embed(self.vocab_size, self.embed_size,
                 embedding_init=_embed_init(self.init_scale))(tokens)  # (B, T, E)
    x = dropout_lib.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    h, _ = _stack(self, self.bidirectional)(x, lengths=lengths,
                                             deterministic=deterministic)  # (B, T, F)
    mask = (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None])[..., None]  # (B, T, 1)
    if self.pooling == "final":
      pooled = final_states(h, lengths, self.hidden_size, self.bidirectional)
    elif self.pooling == "mean":
      pooled = (jnp.where(mask, h, 0.0).sum(axis=1) /
                jnp.maximum(lengths, 1)[:, None].astype(h.dtype))
    elif self.pooling == "max":
      pooled = jnp.where(mask, h, -jnp.inf).max(axis=1)
    else:
      u = jnp.tanh(nn.Dense(h.shape[-1], name="attention_proj")(h))  # (B, T, F)
      scores = nn.Dense(1, use_bias=False, name="attention_score")(u)  # (B, T, 1)
      weights = jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=1)
      pooled = (weights * h).sum(axis=1)  # (B, F)
    pooled = dropout_lib.Dropout(self.dropout_rate)(pooled, deterministic=deterministic)
    logits = nn.Dense(self.num_classes, name="output")(pooled).astype(jnp.float32)
    return logits[:, 0] if self.num_classes == 1 else logits


class CharWordEncoder(nn.Module):
  """A word from its characters: char embeddings -> a BiLSTM -> final states.

  The word vector is the forward LSTM's state after the last character
  concatenated with the backward LSTM's state after the first (Ling et al.
  2015; Plank, Sogaard & Goldberg 2016), so rare and unseen words get a
  vector from their spelling.

  Attributes:
    char_vocab_size: character types (0 is padding).
    embed_size: character embedding size.
    hidden_size: units per direction; the word vector has 2 * hidden_size.
    cell: the registered cell of both directions.
  """

  char_vocab_size: int
  embed_size: int = 32
  hidden_size: int = 32
  cell: str = "lstm"
  unroll: int = 1

  @nn.compact
  def __call__(self, chars: Array, char_lengths: Array) -> Array:
    """chars (B, T, W) int, char_lengths (B, T) -> word vectors (B, T, 2H)."""
    b, t, w = chars.shape
    flat = chars.reshape(b * t, w)  # (B*T, W): every word slot one sequence
    flat_lengths = jnp.maximum(char_lengths.reshape(b * t), 1)  # padded slots: 1
    x = nn.Embed(self.char_vocab_size, self.embed_size)(flat)  # (B*T, W, E)
    h, _ = StackedRNN(cell_factory(self.cell, self.hidden_size), num_layers=1,
                      bidirectional=True, unroll=self.unroll)(x, lengths=flat_lengths)
    words = final_states(h, flat_lengths, self.hidden_size, True)  # (B*T, 2H)
    return words.reshape(b, t, 2 * self.hidden_size)  # (B, T, 2H)


class SequenceTagger(nn.Module):
  """A label per token: [word embedding ; char word vector] -> ``StackedRNN``
  -> a softmax per token.

  With ``char_vocab_size > 0`` each word's embedding is concatenated with the
  :class:`CharWordEncoder` vector of its spelling (Plank et al. 2016's
  words + characters tagger); padded positions are masked by ``lengths`` and
  never change a real token's output.

  Attributes:
    vocab_size: word types; num_tags: the tag set's size.
    char_vocab_size: character types, 0 = no character encoder.
    char_embed_size, char_hidden_size: its sizes (per direction).
    cell, hidden_size, num_layers, embed_size, bidirectional, dropout_rate,
      connection, init_scale, cell_options, dtype, unroll: as
      ``SentenceClassifier``.
  """

  vocab_size: int
  num_tags: int
  cell: str = "lstm"
  hidden_size: int = 100
  num_layers: int = 1
  embed_size: int = 64
  bidirectional: bool = True
  char_vocab_size: int = 0
  char_embed_size: int = 32
  char_hidden_size: int = 32
  dropout_rate: float = 0.0
  connection: str = "none"
  init_scale: float = 0.0
  cell_options: Any = None
  dtype: Any = None
  unroll: int = 1

  @nn.compact
  def __call__(self, tokens: Array, lengths: Array, chars: Array | None = None,
               char_lengths: Array | None = None, deterministic: bool = True):
    """tokens (B, T), lengths (B,)[, chars (B, T, W), char_lengths (B, T)]
    -> logits (B, T, num_tags) float32."""
    x = nn.Embed(self.vocab_size, self.embed_size,
                 embedding_init=_embed_init(self.init_scale))(tokens)  # (B, T, E)
    if self.char_vocab_size:
      if chars is None or char_lengths is None:
        raise ValueError("a tagger with a character encoder needs chars and char_lengths")
      x = jnp.concatenate([x, CharWordEncoder(
          self.char_vocab_size, self.char_embed_size, self.char_hidden_size,
          unroll=self.unroll)(chars, char_lengths)], axis=-1)  # (B, T, E + 2Hc)
    x = dropout_lib.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    h, _ = _stack(self, self.bidirectional)(x, lengths=lengths,
                                             deterministic=deterministic)  # (B, T, F)
    h = dropout_lib.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return nn.Dense(self.num_tags, name="output")(h).astype(jnp.float32)


class SequenceModel(nn.Module):
  """Real-valued inputs -> ``StackedRNN`` -> a linear head at every step.

  For the synthetic memory tasks (``data.memory_tasks``): the adding problem
  reads two real channels, copy and recall one-hot symbols; the task decides
  which steps' outputs enter the loss.

  Attributes:
    num_outputs: outputs per step (1 for a regression, classes otherwise).
    cell, hidden_size, num_layers, connection, cell_options, unroll: as
      ``LanguageModel``.
  """

  num_outputs: int
  cell: str = "lstm"
  hidden_size: int = 128
  num_layers: int = 1
  connection: str = "none"
  cell_options: Any = None
  unroll: int = 1

  def setup(self):
    self.rnn = StackedRNN(cell_factory(self.cell, self.hidden_size, self.cell_options),
                          num_layers=self.num_layers, connection=self.connection,
                          unroll=self.unroll)
    self.head = nn.Dense(self.num_outputs)

  def __call__(self, inputs: Array, carry_perturbations=None) -> Array:
    """inputs (B, T, D) float -> outputs (B, T, num_outputs) float32."""
    h, _ = self.rnn(inputs, carry_perturbations=carry_perturbations)  # (B, T, H)
    return self.head(h).astype(jnp.float32)

  @nn.nowrap
  def initial_carries(self, batch_size: int):
    """Zero carries for every layer (the shapes of the carry perturbations)."""
    cell = cells_lib.get_cell(self.cell, hidden_size=self.hidden_size,
                              **dict(self.cell_options or {}))
    return tuple(cell.initialize_carry(jax.random.key(0), (batch_size, 1))
                 for _ in range(self.num_layers))


def check_sampling(temperature: float = 1.0, top_k: int = 0,
                   top_p: float = 1.0) -> None:
  """Raises ValueError for sampling settings :func:`generate` cannot honour."""
  if not temperature >= 0:  # also refuses NaN
    raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
  if not isinstance(top_k, (int, np.integer)) or top_k < 0:
    raise ValueError(f"top_k must be an integer >= 0 (0 = all tokens), got {top_k}")
  if not 0 < top_p <= 1:
    raise ValueError(f"top_p must be in (0, 1] (1 = all tokens), got {top_p}")


def filter_logits(logits: Array, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> Array:
  """Logits (B, V) of the sampling distribution: temperature, then top-k, then top-p.

  ``logits / temperature``; with ``top_k`` > 0 every token below the k-th
  largest logit gets -inf; with ``top_p`` < 1 (nucleus sampling, Holtzman et
  al. 2020) only the smallest set of most probable tokens whose probability
  (after temperature and top-k) reaches ``top_p`` is kept: a token is kept
  when the tokens more probable than it hold less than ``top_p``, so the most
  probable token always is. Tokens tied with the last kept one are kept too.
  ``temperature`` must be > 0 here (greedy decoding takes the argmax).
  """
  logits = logits / temperature
  if top_k > 0:
    kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][:, -1:]  # (B, 1)
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1:
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]  # (B, V), most probable first
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of the more probable tokens
    last = jnp.min(jnp.where(before < top_p, ordered, jnp.inf), axis=-1,
                   keepdims=True)  # (B, 1): the least probable kept logit
    logits = jnp.where(logits < last, -jnp.inf, logits)
  return logits


def generate(model: LanguageModel, params, prompt: Array, num_tokens: int,
             rng: Array, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0) -> Array:
  """Samples ``num_tokens`` continuations of ``prompt`` (B, P) int -> (B, num_tokens).

  The prompt is read in one pass (carry and last logits); then each sampled
  token is fed back with the carry, one step at a time. ``temperature`` < 1
  sharpens the distribution (0 is greedy); ``top_k`` > 0 samples only among
  the k most probable tokens; ``top_p`` < 1 samples from the nucleus, the
  fewest most probable tokens holding probability ``top_p``
  (:func:`filter_logits`).
  """
  check_sampling(temperature, top_k, top_p)
  if prompt.ndim != 2 or prompt.shape[1] < 1:
    raise ValueError(f"prompt must be (batch, length >= 1), got {prompt.shape}")
  logits, carries = model.apply({"params": params}, prompt,
                                model.initial_carries(prompt.shape[0]))

  def pick(logits, key):  # (B, V) -> (B,)
    if temperature <= 0:
      return jnp.argmax(logits, axis=-1)
    return jax.random.categorical(
        key, filter_logits(logits, temperature, top_k, top_p), axis=-1)

  def step(state, key):
    carries, logits = state
    token = pick(logits, key)
    logits, carries = model.apply({"params": params}, token[:, None], carries)
    return (carries, logits[:, -1]), token

  _, tokens = jax.lax.scan(step, (carries, logits[:, -1]),
                           jax.random.split(rng, num_tokens))
  return tokens.T  # (B, num_tokens)
