"""Declared config schemas: every field's type and valid values, checked before a run.

Each study has one schema (``lm_schema``, ``agreement_schema``,
``gradients_schema``, ``encoders_schema``): a nested mapping from field name
to a rule, one line per field, mirroring the study's config in configs/.
``validate(config, schema)`` walks the config and raises ``ValueError`` with one line naming the
field, the value and what is valid, e.g.::

    config.model.dropout_rate = 1.5 is not valid; valid: a number in [0, 1)
    config.optim.name: unknown optimizer 'sgdd'; valid: sgd, adam, adamw
    config.model.hiden_size: unknown field; valid fields of config.model: cell, ...

A field in the config without a rule is an error too (a typo, or a new field
whose rule was not declared). A field of the schema missing from the config
is not (a config may leave out what its study reads with a default).

Add a field by adding one line to its study's schema, e.g.
``"unit": Choice(("word", "char"))`` in ``data`` of ``lm_schema``. Rules that
tie several fields together are ``checks`` of a :class:`Schema`.

Sizes and counts are positive (``Int(1)``); counts where 0 has a meaning say
so (``Int(0, note="0 = no cap")``); probabilities are in [0, 1); thresholds are
non-negative with 0 = off; names come from their registries.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Collection, Mapping

# ---------------------------------------------------------------------------
# Rules.

# In a rule's problem, stands for the field's dotted name (config.a.b).
FIELD = "<field>"


class Rule:
  """One field's valid values.

  ``problem(value, parent)`` is None for a valid value, else the rest of the
  error line after ``config.<field>``; ``parent`` is the config node holding
  the field (for rules that depend on a sibling, e.g. the cell's options).
  ``text`` says what is valid, for messages and lists. ``FIELD`` in a
  problem becomes the field's dotted name.
  """

  text = "any value"

  def problem(self, value: Any, parent: Any = None) -> str | None:
    raise NotImplementedError

  def parse(self, text: str) -> Any:
    """A value from one item of a comma-separated string (see ``ListOf``)."""
    return text

  def _bad(self, value: Any) -> str:
    return f" = {value!r} is not valid; valid: {self.text}"


def _num(x: float) -> str:
  return f"{x:g}" if isinstance(x, float) else str(x)


@dataclasses.dataclass(frozen=True)
class Number(Rule):
  """An int (``integer=True``) or a finite number within bounds.

  ``low``/``high`` are inclusive, ``above``/``below`` exclusive; ``note``
  says what a special value means (e.g. "0 = off").
  """

  integer: bool = False
  low: float | None = None
  high: float | None = None
  above: float | None = None
  below: float | None = None
  note: str = ""

  @property
  def text(self) -> str:
    kind = "an integer" if self.integer else "a number"
    lo = (f"[{_num(self.low)}" if self.low is not None else
          f"({_num(self.above)}" if self.above is not None else None)
    hi = (f"{_num(self.high)}]" if self.high is not None else
          f"{_num(self.below)})" if self.below is not None else None)
    if lo and hi:
      text = f"{kind} in {lo}, {hi}"
    elif lo:
      text = f"{kind} {'>=' if lo[0] == '[' else '>'} {lo[1:]}"
    elif hi:
      text = f"{kind} {'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"
    else:
      text = "an integer" if self.integer else "a finite number"
    return f"{text} ({self.note})" if self.note else text

  def problem(self, value, parent=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return self._bad(value)
    if self.integer and not isinstance(value, int):
      return self._bad(value)
    if not math.isfinite(value):
      return self._bad(value)
    if ((self.low is not None and value < self.low) or
        (self.high is not None and value > self.high) or
        (self.above is not None and value <= self.above) or
        (self.below is not None and value >= self.below)):
      return self._bad(value)
    return None

  def parse(self, text):
    return int(text) if self.integer else float(text)


def Int(low: int | None = None, high: int | None = None, note: str = "") -> Number:
  """An integer in [low, high] (a bound of None is open)."""
  return Number(integer=True, low=low, high=high, note=note)


def Float(low: float | None = None, high: float | None = None, *,
          above: float | None = None, below: float | None = None,
          note: str = "") -> Number:
  """A finite number: ``low``/``high`` inclusive, ``above``/``below`` exclusive."""
  return Number(low=low, high=high, above=above, below=below, note=note)


@dataclasses.dataclass(frozen=True)
class Bool(Rule):
  text = "True or False"

  def problem(self, value, parent=None):
    return None if isinstance(value, bool) else self._bad(value)


@dataclasses.dataclass(frozen=True)
class Str(Rule):
  """Any string (a name, a path, a token); ``note`` says what '' means."""

  note: str = ""

  @property
  def text(self) -> str:
    return f"a string ({self.note})" if self.note else "a string"

  def problem(self, value, parent=None):
    return None if isinstance(value, str) else self._bad(value)


@dataclasses.dataclass(frozen=True)
class Choice(Rule):
  """One name of ``choices`` (a registry: tuple, or dict whose keys count).

  ``what`` names the kind in the message ("unknown cell 'x'"); ``sort`` lists
  the valid names sorted (for dict registries such as ``cells.CELLS``).
  """

  choices: Collection[str]
  what: str = "value"
  sort: bool = False

  @property
  def names(self) -> list[str]:
    return sorted(self.choices) if self.sort else list(self.choices)

  @property
  def text(self) -> str:
    return f"one of {', '.join(self.names)}"

  def problem(self, value, parent=None):
    if isinstance(value, str) and value in self.choices:
      return None
    return f": unknown {self.what} {value!r}; valid: {', '.join(self.names)}"


@dataclasses.dataclass(frozen=True)
class Fixed(Rule):
  """Only ``value`` is allowed; ``reason`` says why (the whole message)."""

  value: Any
  reason: str

  @property
  def text(self) -> str:
    return repr(self.value)

  def problem(self, value, parent=None):
    return None if value == self.value and type(value) is type(self.value) else (
        f" = {value!r}: {self.reason}")


@dataclasses.dataclass(frozen=True)
class TupleOf(Rule):
  """A tuple (or list) of values, each valid under ``item``; may be empty."""

  item: Rule

  @property
  def text(self) -> str:
    return f"a tuple, each item {self.item.text}"

  def problem(self, value, parent=None):
    if not isinstance(value, (tuple, list)):
      return self._bad(value)
    for item in value:
      if self.item.problem(item, parent) is not None:
        return self._bad(value)
    return None


@dataclasses.dataclass(frozen=True)
class ListOf(Rule):
  """A ``sep``-separated string of items, each valid under ``item``.

  ``nonempty``: at least one item; ``length``: exactly that many;
  ``increasing``: each item above the one before (a range 'low,high').
  """

  item: Rule
  sep: str = ","
  nonempty: bool = False
  length: int | None = None
  increasing: bool = False

  @property
  def text(self) -> str:
    sep = {",": "comma", ";": "semicolon"}.get(self.sep, repr(self.sep))
    count = (f"{self.length} " if self.length else "")
    text = f"{count}{sep}-separated items, each {self.item.text}"
    if self.increasing:
      text += ", increasing"
    if self.nonempty and not self.length:
      text += " (at least one)"
    return text

  def items(self, value: str) -> list[str]:
    return [part.strip() for part in value.split(self.sep) if part.strip()]

  def problem(self, value, parent=None):
    if not isinstance(value, str):
      return self._bad(value)
    parts = self.items(value)
    if (self.nonempty and not parts) or (self.length and len(parts) != self.length):
      return self._bad(value)
    parsed = []
    for part in parts:
      try:
        item = self.item.parse(part)
      except ValueError:
        return self._bad(value)
      bad = self.item.problem(item, parent)
      if bad is not None:
        if isinstance(self.item, Choice):
          return f" = {value!r}{bad}"
        return f" = {value!r}: item {part!r} is not valid; valid: {self.text}"
      parsed.append(item)
    if self.increasing and any(b <= a for a, b in zip(parsed, parsed[1:])):
      return self._bad(value)
    return None


def cell_option_names(cell: str) -> list[str]:
  """The options ``model.cell_options`` may set for registered cell ``cell``:
  the cell class's own attributes (those of every cell, such as hidden_size,
  dtype and the input initialisers, are set by the model; a named
  ``recurrent_kernel_init`` is an option)."""
  from rnn_research import cells as cells_lib
  factory = cells_lib.CELLS[cell]
  cls = getattr(factory, "func", factory)
  shared = set(cells_lib._ProjectedCell.__dataclass_fields__) | {"parent", "name"}
  return sorted(f for f in cls.__dataclass_fields__ if f not in shared)


@dataclasses.dataclass(frozen=True)
class CellOptions(Rule):
  """A mapping of options of the cell named by the sibling field ``cell``,
  each valid under its rule in ``rules`` (by option name)."""

  rules: Mapping[str, Rule]

  text = "options of the chosen cell"

  def problem(self, value, parent=None):
    if value is None:
      return None
    if not hasattr(value, "items"):
      return self._bad(value)
    cell = parent.get("cell") if parent is not None else None
    from rnn_research import cells as cells_lib
    if cell not in cells_lib.CELLS:
      return None  # the cell's own rule reports it
    valid = cell_option_names(cell)
    for key, option in value.items():
      if key not in valid:
        return (f": cell {cell!r} has no option {key!r}; its options: "
                f"{', '.join(valid) or 'none'} (replace the whole dict, e.g. "
                f"--{FIELD}='{{}}' for none)")
      rule = self.rules.get(key)
      if rule is None:
        return f": option {key!r} of cell {cell!r} has no declared rule"
      bad = rule.problem(option, value)
      if bad is not None:
        return f".{key}{bad}"
    return None


# ---------------------------------------------------------------------------
# Schemas and the check.

Check = Callable[[Any, str], "tuple[str, str] | None"]


@dataclasses.dataclass(frozen=True)
class Schema:
  """Rules by field name (a rule, a nested mapping, or a nested Schema), and
  ``checks`` across fields: each takes the config node and its dotted prefix
  ('' at the top) and returns None or (field, problem), the field relative to
  the node; it may also raise ValueError with its own line."""

  fields: Mapping[str, Any]
  checks: tuple[Check, ...] = ()


def _is_node(value: Any) -> bool:
  return hasattr(value, "items") and hasattr(value, "keys")


def _walk(config, schema: Schema | Mapping, prefix: str) -> None:
  fields = schema.fields if isinstance(schema, Schema) else schema
  for key, value in config.items():
    path = f"{prefix}{key}"
    if key not in fields:
      where = f"config.{prefix[:-1]}" if prefix else "config"
      raise ValueError(f"config.{path}: unknown field; valid fields of {where}: "
                       f"{', '.join(fields)}")
    rule = fields[key]
    if isinstance(rule, Rule):
      bad = rule.problem(value, config)
      if bad is not None:
        raise ValueError(f"config.{path}{bad}".replace(FIELD, f"config.{path}"))
    elif not _is_node(value):
      raise ValueError(f"config.{path} = {value!r} is not valid; valid: a group of "
                       f"fields ({', '.join(rule.fields if isinstance(rule, Schema) else rule)})")
    else:
      _walk(value, rule, f"{path}.")
  if isinstance(schema, Schema):
    for check in schema.checks:
      found = check(config, prefix)
      if found is not None:
        field, problem = found
        raise ValueError(f"config.{prefix}{field}{problem}")


def validate(config, schema: Schema) -> None:
  """Raises ValueError, one line naming the field, the value and what is
  valid, at the first field of ``config`` that ``schema`` does not accept."""
  _walk(config, schema, "")


def fields_without_rule(config, schema: Schema | Mapping, prefix: str = "") -> list[str]:
  """Every field of ``config`` (dotted) that ``schema`` declares no rule for."""
  fields = schema.fields if isinstance(schema, Schema) else schema
  missing = []
  for key, value in config.items():
    rule = fields.get(key)
    if rule is None:
      missing.append(f"{prefix}{key}")
    elif not isinstance(rule, Rule) and _is_node(value):
      missing += fields_without_rule(value, rule, f"{prefix}{key}.")
  return missing


# ---------------------------------------------------------------------------
# The studies' schemas. Registries are read when a schema is first built (the
# study modules import this one).

SEED = Int(0)
POSITIVE = Int(1)
PROBABILITY = Float(0.0, below=1.0)
LEARNING_RATE = Float(above=0.0)
CLIP_NORM = Float(0.0, note="0 = off")
INIT_SCALE = Float(0.0, note="0 = each layer's own initialisers")
PATH = Str()


def _registries():
  from rnn_research import cells, optim, recurrent
  return cells, optim, recurrent


@functools.cache
def cell_option_rules() -> dict[str, Rule]:
  """Rules of every option a registered cell takes in ``model.cell_options``."""
  cells, _, _ = _registries()
  return {
      "forget_bias": Float(),  # lstm
      "activation": Choice(cells.ACTIVATIONS, "activation"),  # elman
      "reset_after": Bool(),  # gru
      "chrono_t_max": Float(0.0, note="0 = off, else > 2"),  # lstm, gru
      "recurrent_kernel_init": Choice(cells.RECURRENT_INITS, "recurrent_kernel_init"),
      "log_space": Bool(),  # mingru, minlstm
      "state_size": Int(0, note="0 = hidden_size"),  # lru
      "r_min": Float(0.0, 1.0),  # lru; r_min <= r_max is the cell's own check
      "r_max": Float(0.0, 1.0),  # lru
      "max_phase": Float(above=0.0),  # lru
      "glu": Bool(),  # lru
  }


@functools.cache
def supervised_schema() -> dict[str, Rule]:
  """The top-level fields ``studies.supervised.Options.from_config`` reads,
  shared by the agreement and encoder studies."""
  return {
      "optim": optim_schema(),
      "batch_size": POSITIVE,
      "eval_batch_size": POSITIVE,
      "num_epochs": POSITIVE,
      "max_steps": Int(0, note="0 = no cap"),
      "eval_every_steps": Int(0, note="0 = once per epoch"),
      "patience": Int(0, note="0 = never stop early"),
      "log_every_steps": POSITIVE,
  }


def optim_schema() -> dict[str, Rule]:
  """``optim`` of every study (rnn_research.optim.make_optimizer)."""
  _, optim, _ = _registries()
  return {
      "name": Choice(optim.OPTIMIZERS, "optimizer"),
      "learning_rate": LEARNING_RATE,
      "clip_norm": CLIP_NORM,
      "schedule": Choice(optim.SCHEDULES, "schedule"),
      "lr_decay": Float(above=0.0, high=1.0),
      "decay_after_epochs": Int(0),
      "momentum": PROBABILITY,
      "weight_decay": Float(0.0),
      "warmup_steps": Int(0, note="0 = none"),
      "end_learning_rate": Float(0.0),
      "b2": PROBABILITY,
      "loss_sum_over_time": Bool(),
  }


def _fractions(config, prefix: str) -> tuple[str, str] | None:
  d = config.get("data")
  if d is None or d.get("valid_fraction") is None or d.get("test_fraction") is None:
    return None
  if d.valid_fraction + d.test_fraction >= 1:
    return ("data.valid_fraction", f" = {d.valid_fraction} and config.{prefix}"
            f"data.test_fraction = {d.test_fraction} leave no training text; their sum "
            "must be below 1")
  return None


def _tied_sizes(config, prefix: str) -> tuple[str, str] | None:
  m = config.get("model")
  if m is None or not m.get("tie_weights"):
    return None
  embed, hidden = m.get("embed_size") or m.get("hidden_size"), m.get("hidden_size")
  if embed != hidden:
    return ("model.tie_weights", f" = True needs config.{prefix}model.embed_size == "
            f"config.{prefix}model.hidden_size (or embed_size 0), got "
            f"{m.get('embed_size')} and {hidden}")
  return None


@functools.cache
def lm_schema() -> Schema:
  """The language-model study (configs/default.py and its variants)."""
  from rnn_research import models
  from rnn_research.studies import lm
  from rnn_research.data import corpus
  cells, _, recurrent = _registries()
  return Schema({
      "name": Str(note="'' = layers x hidden cell"),
      "seed": SEED,
      "num_epochs": POSITIVE,
      "max_steps": Int(0, note="0 = no cap"),
      "log_every_steps": POSITIVE,
      "checkpoint_every_steps": Int(0, note="0 = only at epoch ends"),
      "nonfinite": Choice(lm.NONFINITE_MODES, "nonfinite"),
      "tensorboard": Bool(),
      "record_step_gradients": Bool(),
      "data_parallel": Bool(),
      "eval_every_steps": Int(0, note="0 = at epoch ends only"),
      "model": {
          "cell": Choice(cells.CELLS, "cell", sort=True),
          "hidden_size": POSITIVE,
          "num_layers": POSITIVE,
          "embed_size": Int(0, note="0 = hidden_size"),
          "dropout_rate": PROBABILITY,
          "variational_dropout": Bool(),
          "connection": Choice(recurrent.CONNECTIONS, "connection"),
          "tie_weights": Bool(),
          "init_scale": INIT_SCALE,
          "cell_options": CellOptions(cell_option_rules()),
          "bidirectional": Fixed(False, models.BIDIRECTIONAL_LM),
          "dtype": Choice(lm.DTYPES, "dtype"),
          "unroll": POSITIVE,
      },
      "data": {
          "source": Choice(corpus.SOURCES, "data source"),
          "dir": PATH,
          "unit": Choice(corpus.UNITS, "data unit"),
          "valid_fraction": Float(above=0.0, below=1.0),
          "test_fraction": Float(0.0, below=1.0),
          "hf_name": Str(),
          "hf_config": Str(note="'' = the dataset's default"),
          "grammar_seed": SEED,
          "num_train_sentences": POSITIVE,
          "num_valid_sentences": POSITIVE,
          "num_test_sentences": POSITIVE,
          "batch_size": POSITIVE,
          "bptt": POSITIVE,
          "eval_batch_size": POSITIVE,
          "eval_bptt": POSITIVE,
      },
      "optim": optim_schema(),
      "samples": {
          "temperatures": TupleOf(Float(0.0, note="0 = greedy")),
          "num": Int(0),
          "length": Int(0, note="0 = 300 characters or 30 words"),
          "seed": SEED,
          "grammar_sentences": Int(0, note="0 = none"),
      },
      "paper": {
          "source": Str(note="'' = no published row"),
          "valid": Float(0.0),
          "test": Float(0.0, note="0 = no published row"),
          "params": Str(),
          "cell": Str(note="'' = the config's cell"),
          "num_layers": Int(0, note="0 = the config's"),
          "hidden_size": Int(0, note="0 = the config's"),
      },
  }, checks=(_tied_sizes, _fractions))


def _agreement_lm_files(config, prefix: str) -> tuple[str, str] | None:
  del prefix  # a top-level config
  if config.get("task") != "lm":
    return None
  data = config.data
  if bool(data.get("text")) != bool(data.get("gold")):
    return ("data.text", f" = {data.get('text')!r} and config.data.gold = "
            f"{data.get('gold')!r}: the two go together (Gulordava et al.'s sentences "
            "and their targets)")
  if not any(data.get(k) for k in ("text", "generated", "minimal_pairs")) and (
      data.get("source") != "synthetic"):
    return ("data.source", f" = {data.get('source')!r}: nothing to evaluate; set "
            "config.data.text and config.data.gold, config.data.generated or "
            "config.data.minimal_pairs (or config.data.source='synthetic' for the "
            "grammar's sets)")
  return None


def _agreement_cells(config, prefix: str) -> None:
  del prefix  # a top-level config
  from rnn_research.studies import agreement
  agreement.cells_of(config)  # raises its own message


@functools.cache
def agreement_schema() -> Schema:
  """The agreement study (configs/agreement.py, every variant)."""
  from rnn_research.studies import agreement, lm
  cells, _, recurrent = _registries()
  cell = Choice(cells.CELLS, "cell", sort=True)
  counts = ListOf(Int(0), nonempty=True)
  return Schema({
      "seed": SEED,
      "task": Choice(agreement.TASKS, "task"),
      "cells": ListOf(cell),
      "lm_workdir": PATH,
      "model": {
          "cell": cell,
          "hidden_size": POSITIVE,
          "embed_size": POSITIVE,
          "num_layers": POSITIVE,
          "bidirectional": Bool(),
          "dropout_rate": PROBABILITY,
          "connection": Choice(recurrent.CONNECTIONS, "connection"),
          "init_scale": INIT_SCALE,
          "unroll": POSITIVE,
      },
      "data": {
          "source": Choice(agreement.SOURCES, "data source"),
          "dir": PATH,
          "train": PATH,
          "valid": Str(note="'' = hold out valid_fraction of train"),
          "valid_fraction": Float(above=0.0, below=1.0),
          "test": Str(note="'' = every numpred.test.N in dir"),
          "path": PATH,
          "max_length": Int(0, note="0 = no limit"),
          "padding": Choice(("right", "left"), "padding"),
          "max_train_items": Int(0, note="0 = all"),
          "grammar_seed": SEED,
          "train_attractors": counts,
          "test_attractors": counts,
          "num_train": POSITIVE,
          "num_valid": POSITIVE,
          "num_test": POSITIVE,
          "test_distances": ListOf(Int(1)),
          "num_test_distance": POSITIVE,
          "text": PATH,
          "gold": PATH,
          "generated": PATH,
          "minimal_pairs": PATH,
          "lowercase": Bool(),
          "bos": Str(note="'' = the vocabulary's <eos>"),
      },
      **supervised_schema(),
      "checkpoint_every_steps": Int(0, note="0 = at dev measurements only"),
      "nonfinite": Choice(lm.NONFINITE_MODES, "nonfinite"),
      "tensorboard": Bool(),
  }, checks=(_agreement_lm_files, _agreement_cells))


def _below(field: str, bound_field: str, offset: int = 0) -> Check:
  """Every integer in ``field`` (an int or a comma-separated list of them) is
  below the sibling ``bound_field`` minus ``offset``."""

  def check(node, prefix):
    value, bound = node.get(field), node.get(bound_field)
    if value is None or bound is None:
      return None
    items = [value] if isinstance(value, int) else [int(x) for x in str(value).split(",")
                                                    if x.strip()]
    too_big = [x for x in items if x >= bound - offset]
    if too_big:
      return (field, f" = {value!r} needs config.{prefix}{bound_field} > "
              f"{too_big[0] + offset} (it is {bound})")
    return None

  return check


def _long_range_schema() -> dict:
  """``long_range`` of the gradient studies (rnn_research.data.memory_tasks).

  Its models are 'cell[/init]' specs, checked by gradients.parse_model
  before anything trains.
  """
  from rnn_research.data import memory_tasks
  _, _, recurrent = _registries()
  models = Str(note="comma-separated cell[/init], init one of default, identity, "
               "orthogonal, chrono, forget0, ring")
  task = lambda min_length: {
      "lengths": ListOf(Int(min_length), nonempty=True),
      "train_steps": POSITIVE,
      "models": Str(note="'' = long_range.models"),
  }
  return {
      "tasks": ListOf(Choice(memory_tasks.TASKS, "task"), nonempty=True),
      "models": models,
      "adding": task(2),
      "copy": task(1),
      "recall": task(1),
      "hidden_size": POSITIVE,
      "num_layers": POSITIVE,
      "connection": Choice(recurrent.CONNECTIONS, "connection"),
      # every model's cell must take these: gradients.init_options checks each
      "cell_options": CellOptions(cell_option_rules()),
      "batch_size": POSITIVE,
      "eval_size": POSITIVE,
      "seeds": POSITIVE,
      "vocab_size": Int(2),
      "solved_mse": Float(above=0.0),
      "solved_accuracy": Float(above=0.0, high=1.0),
      "log_every_steps": Int(0, note="0 = never"),
      "unroll": POSITIVE,
      "stall_seconds": Int(0, note="0 = train in this process, unwatched"),
      "optim": optim_schema(),
  }


@functools.cache
def gradients_schema() -> Schema:
  """The gradient studies (configs/gradients.py, every variant)."""
  from rnn_research.studies import gradients
  cells, _, recurrent = _registries()
  cell_list = ListOf(Choice(cells.CELLS, "cell", sort=True), nonempty=True)
  distances = ListOf(Int(0), nonempty=True)
  float_range = ListOf(Float(), length=2, increasing=True)
  return Schema({
      "variant": Choice(gradients.VARIANTS, "variant"),
      "seed": SEED,
      "lm": lm_schema(),
      "spectral": Schema({
          "activations": ListOf(Choice(cells.ACTIVATIONS, "activation"), nonempty=True),
          "rhos": ListOf(Float(above=0.0), nonempty=True),
          "hidden_size": POSITIVE,
          "recurrent_init": Choice(gradients.RECURRENT_INITS, "recurrent_init"),
          "batch_size": POSITIVE,
          "seq_len": Int(2),
          "fit_from": Int(0),
          "lru_moduli": ListOf(Float(above=0.0, below=1.0)),  # '' = no LRU curves
      }, checks=(_below("fit_from", "seq_len", offset=1),)),
      "cells": Schema({
          "cells": cell_list,
          "elman_rho": Float(0.0, note="0 = as initialised"),
          "train": Bool(),
          "batch_size": POSITIVE,
          "seq_len": POSITIVE,
          "distances": distances,
          "reference_distance": Int(0),
      }, checks=(_below("distances", "seq_len"), _below("reference_distance", "seq_len"))),
      "long_range": _long_range_schema(),
      "clipping": {
          "seq_len": POSITIVE,
          "x0": Float(),
          "target": Float(),
          "w_range": float_range,
          "b_range": float_range,
          "grid": Int(2),
          "starts": ListOf(ListOf(Float(), length=2), sep=";", nonempty=True),
          "learning_rate": LEARNING_RATE,
          "steps": POSITIVE,
          "clip_norm": Float(above=0.0),
      },
      "depth": {
          "layers": ListOf(POSITIVE, nonempty=True),
          "connections": ListOf(Choice(recurrent.CONNECTIONS, "connection"), nonempty=True),
          "batch_size": POSITIVE,
          "seq_len": POSITIVE,
      },
  })


def _encoders_source_files(config, prefix: str) -> tuple[str, str] | None:
  d = config.get("data")
  if d is None or d.get("source") in (None, "synthetic") or d.get("dir"):
    return None
  return ("data.dir", f" = '' but config.{prefix}data.source = {d.source!r} reads its "
          "files from a directory; set --config.data.dir")


@functools.cache
def encoders_schema() -> Schema:
  """The encoder study (configs/encoders.py, every variant)."""
  from rnn_research.data import labelled
  from rnn_research.models import POOLINGS
  from rnn_research.studies import encoders
  cells, _, recurrent = _registries()
  return Schema({
      "seed": SEED,
      "cells": ListOf(Choice(cells.CELLS, "cell", sort=True), nonempty=True),
      "directions": ListOf(Choice(encoders.DIRECTIONS, "direction"), nonempty=True),
      "num_layers": ListOf(Int(1), nonempty=True),
      "anchors": Choice(("",) + tuple(encoders.ANCHORS), "anchor set"),
      "model": {
          "hidden_size": POSITIVE,
          "embed_size": POSITIVE,
          "char_encoder": Bool(),
          "char_embed_size": POSITIVE,
          "char_hidden_size": POSITIVE,
          "pooling": Choice(POOLINGS, "pooling"),
          "dropout_rate": PROBABILITY,
          "connection": Choice(recurrent.CONNECTIONS, "connection"),
          "init_scale": INIT_SCALE,
          "unroll": POSITIVE,
      },
      "data": {
          "source": Choice(encoders.SOURCES, "data source"),
          "task": Choice(encoders.TASKS, "task"),
          "dir": Str(note="the data's directory; '' only for source synthetic"),
          "tag_column": Choice(tuple(labelled.TAG_COLUMNS), "tag column"),
          "sst_mode": Choice(labelled.SST_MODES, "SST mode"),
          "train_phrases": Bool(),
          "unique_phrases": Bool(),
          "train": PATH,
          "valid": PATH,
          "test": PATH,
          "min_count": POSITIVE,
          "lowercase": Bool(),
          "max_word_chars": POSITIVE,
          "min_width": Int(0, note="0 = the width ladder only"),
          "grammar_seed": SEED,
          "num_train": POSITIVE,
          "num_valid": POSITIVE,
          "num_test": POSITIVE,
      },
      **supervised_schema(),
  }, checks=(_encoders_source_files,))
