"""config_schema: every field of every config has a rule; a bad value is one line, nothing written."""

import importlib
import os
import subprocess
import sys

import ml_collections
import pytest

from rnn_research import cells, config_schema
from rnn_research.studies import agreement
from rnn_research.studies import gradients
from rnn_research.studies import lm

from tests import REPO
CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem != "__init__")

# The study that reads each config file (a new config file must be added here).
STUDY_OF = {
    "default": config_schema.lm_schema, "ptb": config_schema.lm_schema,
    "wikitext2": config_schema.lm_schema, "demo": config_schema.lm_schema,
    "test": config_schema.lm_schema, "shakespeare": config_schema.lm_schema,
    "agreement": config_schema.agreement_schema,
    "gradients": config_schema.gradients_schema,
    "encoders": config_schema.encoders_schema,
}


def _cases():
  for name in CONFIGS:
    module = importlib.import_module(f"configs.{name}")
    for variant in getattr(module, "VARIANTS", [None]):
      yield name, variant


def test_every_config_file_has_a_study():
  assert sorted(STUDY_OF) == CONFIGS, "add the new config file to STUDY_OF"


@pytest.mark.parametrize("name, variant", list(_cases()))
def test_every_field_of_every_config_has_a_rule_and_the_defaults_pass(name, variant):
  config = importlib.import_module(f"configs.{name}").get_config(variant)
  schema = STUDY_OF[name]()
  assert config_schema.fields_without_rule(config, schema) == []
  config_schema.validate(config, schema)


def test_every_option_of_every_registered_cell_has_a_rule():
  rules = config_schema.cell_option_rules()
  for cell in cells.CELLS:
    for option in config_schema.cell_option_names(cell):
      assert option in rules, f"cell {cell!r}: option {option!r} has no rule"


def _with(config, **changes):
  """A copy of ``config`` with dotted fields set or added, without ConfigDict's
  type checks (a config file can write any value)."""
  d = config.to_dict()
  for key, value in changes.items():
    node = d
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return ml_collections.ConfigDict(d)


def _lm(**changes):
  return _with(importlib.import_module("configs.test").get_config(), **changes)


def _agreement(**changes):
  return _with(importlib.import_module("configs.agreement").get_config("test"), **changes)


def _gradients(**changes):
  return _with(importlib.import_module("configs.gradients").get_config("test"), **changes)


BAD = [
    # sizes and counts positive
    (_lm, {"model.hidden_size": 0}, "config.model.hidden_size = 0 is not valid; valid: "
     "an integer >= 1"),
    (_lm, {"data.bptt": -5}, "config.data.bptt = -5 is not valid"),
    # a type the field does not take
    (_lm, {"num_epochs": 1.5}, "config.num_epochs = 1.5 is not valid; valid: an integer"),
    (_lm, {"tensorboard": 1}, "config.tensorboard = 1 is not valid; valid: True or False"),
    (_lm, {"name": 3}, "config.name = 3 is not valid; valid: a string"),
    # probabilities in [0, 1)
    (_lm, {"model.dropout_rate": 1.0}, "config.model.dropout_rate = 1.0 is not valid; "
     "valid: a number in [0, 1)"),
    (_lm, {"optim.momentum": -0.1}, "config.optim.momentum = -0.1 is not valid"),
    # thresholds non-negative, 0 = off
    (_lm, {"optim.clip_norm": -1.0}, "config.optim.clip_norm = -1.0 is not valid; valid: "
     "a number >= 0 (0 = off)"),
    (_lm, {"optim.learning_rate": 0.0}, "config.optim.learning_rate = 0.0 is not valid; "
     "valid: a number > 0"),
    (_lm, {"optim.learning_rate": float("nan")}, "config.optim.learning_rate = nan"),
    # names from registries
    (_lm, {"model.cell": "lstmm"}, "config.model.cell: unknown cell 'lstmm'; valid: "
     "elman, gru"),
    (_lm, {"data.source": "s3"}, "config.data.source: unknown data source 's3'; valid: "
     "local, hf, synthetic"),
    (_lm, {"model.dtype": "float16"}, "config.model.dtype: unknown dtype 'float16'"),
    (_lm, {"optim.schedule": "linear"}, "config.optim.schedule: unknown schedule 'linear'"),
    # the chosen cell's options
    (_lm, {"model.cell": "gru"}, "config.model.cell_options: cell 'gru' has no option "
     "'forget_bias'; its options: chrono_t_max, recurrent_kernel_init, reset_after"),
    (_lm, {"model.cell": "elman", "model.cell_options": {"activation": "swish"}},
     "config.model.cell_options.activation: unknown activation 'swish'"),
    # fields across fields
    (_lm, {"model.tie_weights": True, "model.embed_size": 8},
     "config.model.tie_weights = True needs config.model.embed_size == "
     "config.model.hidden_size"),
    (_lm, {"model.bidirectional": True}, "config.model.bidirectional = True: a language "
     "model cannot be bidirectional"),
    # a field without a rule
    (_lm, {"model.hiden_size": 3}, "config.model.hiden_size: unknown field; valid fields "
     "of config.model: cell, hidden_size"),
    # comma-separated lists
    (_agreement, {"data.test_attractors": "0,x"}, "config.data.test_attractors = '0,x' "
     "is not valid"),
    (_agreement, {"cells": "lstm,lsmt"}, "config.cells = 'lstm,lsmt': unknown cell 'lsmt'"),
    (_agreement, {"data.valid_fraction": 0.0}, "config.data.valid_fraction = 0.0 is not "
     "valid; valid: a number in (0, 1)"),
    (_agreement, {"task": "lm", "data.text": "x.text"}, "config.data.text = 'x.text' and "
     "config.data.gold = ''"),
    (_gradients, {"spectral.rhos": "0.5,0"}, "config.spectral.rhos = '0.5,0': item '0' "
     "is not valid"),
    (_gradients, {"clipping.w_range": "3,1"}, "config.clipping.w_range = '3,1' is not "
     "valid; valid: 2 comma-separated items, each a finite number, increasing"),
    (_gradients, {"depth.connections": "none,skip"}, "config.depth.connections = "
     "'none,skip': unknown connection 'skip'"),
    (_gradients, {"cells.reference_distance": 12}, "config.cells.reference_distance = 12 "
     "needs config.cells.seq_len > 12"),
    (_gradients, {"variant": "test"}, "config.variant: unknown variant 'test'"),
    # the language-model schema inside the gradient studies' config
    (_gradients, {"lm.model.hidden_size": 0}, "config.lm.model.hidden_size = 0"),
]


@pytest.mark.parametrize("make, changes, message", BAD,
                         ids=[",".join(c) for _, c, _ in BAD])
def test_a_bad_value_is_one_line_naming_the_field_the_value_and_what_is_valid(
    make, changes, message):
  config = make(**changes)
  schema = {_lm: config_schema.lm_schema, _agreement: config_schema.agreement_schema,
            _gradients: config_schema.gradients_schema}[make]()
  with pytest.raises(ValueError) as e:
    config_schema.validate(config, schema)
  assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("run, config", [
    (lm.train_and_evaluate, _lm(**{"model.num_layers": 0})),
    (agreement.train_and_evaluate, _agreement(**{"model.dropout_rate": 1.5})),
    (gradients.run, _gradients(**{"clipping.grid": 1})),
], ids=["lm", "agreement", "gradients"])
def test_each_study_checks_its_config_before_writing_anything(run, config, tmp_path):
  with pytest.raises(ValueError, match=r"^config\."):
    run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_stored_config_is_checked_when_a_workdir_is_read(tmp_path):
  (tmp_path / "vocab.json").write_text("{}")
  (tmp_path / "config.json").write_text(_lm(**{"model.dtype": "f16"}).to_json())
  with pytest.raises(ValueError, match="config.model.dtype: unknown dtype 'f16'"):
    lm.restore_language_model(str(tmp_path))


def test_cli_bad_value_is_one_error_line_exit_2_and_no_workdir(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.lm_perplexity", "--config=configs/test.py",
       "--config.model.dropout_rate=1.0", f"--workdir={tmp_path / 'run'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert errors == ["error: config.model.dropout_rate = 1.0 is not valid; valid: a number "
                    "in [0, 1)"], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  # Start-up noise: JAX's probe of the backends this machine lacks is not shown.
  assert "Unable to initialize backend" not in proc.stderr
  assert not (tmp_path / "run").exists()
