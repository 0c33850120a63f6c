"""Every config in configs/ builds, in every variant, and bad variants are refused."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from rnn_research import models
from rnn_research.studies import lm

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[1] / "configs")
                 .glob("*.py") if p.stem != "__init__")


def _cases():
  for name in CONFIGS:
    module = importlib.import_module(f"configs.{name}")
    for variant in getattr(module, "VARIANTS", [None]):
      yield name, variant


@pytest.mark.parametrize("name, variant", list(_cases()))
def test_config_builds(name, variant):
  config = importlib.import_module(f"configs.{name}").get_config(variant)
  assert isinstance(config.seed, int)
  if "model" in config and "bptt" in config.get("data", {}):
    # A language-model config: the model it describes initialises (shapes only).
    model = lm.build_model(config, vocab_size=50)
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 3), jnp.int32),
                            model.initial_carries(2))["params"]
    assert params["rnn"]["layer_0"]["cell"]["recurrent_kernel"].shape[0] == (
        config.model.hidden_size)
  elif "model" in config and "cell" in config.model:
    for cell in str(config.model.cell).split(","):
      models.cell_factory(cell.strip(), config.model.get("hidden_size", 8))


@pytest.mark.parametrize("name", [n for n in CONFIGS if hasattr(
    importlib.import_module(f"configs.{n}"), "VARIANTS")])
def test_unknown_variant_lists_the_valid_ones(name):
  with pytest.raises(ValueError, match="valid"):
    importlib.import_module(f"configs.{name}").get_config("no_such_variant")


# Every value configs/ptb.py sets, per variant, from the sources its docstring
# names (P paper, T TensorFlow tutorial, L the authors' Lua code).
_PTB_COMMON = {
    "model.cell": "lstm", "model.num_layers": 2, "model.embed_size": 0,
    "model.cell_options.forget_bias": 0.0, "model.tie_weights": False,
    "model.connection": "none", "model.variational_dropout": False,
    "model.bidirectional": False, "data.source": "local", "data.batch_size": 20,
    "optim.name": "sgd", "optim.learning_rate": 1.0, "optim.momentum": 0.0,
    "optim.weight_decay": 0.0, "optim.schedule": "epoch_decay",
    "optim.loss_sum_over_time": True,
}
_PTB = {
    "small": {"model.hidden_size": 200, "data.bptt": 20, "model.dropout_rate": 0.0,
              "model.init_scale": 0.1, "optim.clip_norm": 5.0, "num_epochs": 13,
              "optim.decay_after_epochs": 4, "optim.lr_decay": 0.5,
              "paper.valid": 120.7, "paper.test": 114.5, "paper.params": "4.7M"},
    "medium": {"model.hidden_size": 650, "data.bptt": 35, "model.dropout_rate": 0.5,
               "model.init_scale": 0.05, "optim.clip_norm": 5.0, "num_epochs": 39,
               "optim.decay_after_epochs": 6, "optim.lr_decay": 0.8,  # T; P: 1 / 1.2
               "paper.valid": 86.2, "paper.test": 82.7, "paper.params": "20M"},
    "large": {"model.hidden_size": 1500, "data.bptt": 35, "model.dropout_rate": 0.65,
              "model.init_scale": 0.04, "optim.clip_norm": 10.0, "num_epochs": 55,
              "optim.decay_after_epochs": 14, "optim.lr_decay": 1 / 1.15,
              "paper.valid": 82.2, "paper.test": 78.4, "paper.params": "66M"},
}


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


@pytest.mark.parametrize("variant", list(_PTB))
def test_ptb_variant_holds_zaremba_et_al_hyperparameters_in_every_field(variant):
  """Each hyper-parameter against its source; every other field (run control:
  seed, logging, checkpoints, evaluation, ...) is the base config's."""
  from configs import default, ptb
  assert list(ptb.VARIANTS) == list(_PTB)
  config = _flat(ptb.get_config(variant).to_dict())
  base = _flat(default.get_config().to_dict())
  expected = {**_PTB_COMMON, **_PTB[variant],
              "name": f"Zaremba et al. 2014 {variant} (ours)",
              "paper.source": f"Zaremba et al. 2014 {variant} (paper)",
              "paper.cell": "lstm", "paper.num_layers": 2,
              "paper.hidden_size": {"small": 200, "medium": 650, "large": 1500}[variant]}
  for field, value in expected.items():
    assert config[field] == pytest.approx(value) if isinstance(value, float) else (
        config[field] == value), (field, config[field], value)
  # data.dir names the PTB folder (its location is the base config's business).
  assert config["data.dir"].rstrip("/").endswith("ptb")
  others = {k for k in config if k not in expected and k != "data.dir"}
  assert {k: config[k] for k in others} == {k: base[k] for k in others}


def test_ptb_schedule_decays_first_in_the_epoch_after_decay_after_epochs():
  """"After 4 epochs we halve": small runs epochs 1-4 (counted from 1) at 1.0,
  epoch 5 at 0.5, epoch 13 at 0.5 ** 9, as the TensorFlow tutorial does."""
  from configs import ptb
  from rnn_research import optim
  schedule = optim.learning_rate_schedule(ptb.get_config("small").optim, 100, 1300)
  rate = lambda epoch: float(schedule((epoch - 1) * 100))  # epoch counted from 1
  assert [rate(e) for e in (1, 4, 5, 6, 13)] == pytest.approx(
      [1.0, 1.0, 0.5, 0.25, 0.5 ** 9])


@pytest.mark.parametrize("variant", ["cpu", "feng"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "mingru", "minlstm", "lru"])
def test_shakespeare_takes_every_cell_by_name(variant, cell):
  from configs import shakespeare
  from rnn_research import config_schema
  config = shakespeare.get_config(f"{variant},{cell}")
  config_schema.validate(config, config_schema.lm_schema())
  assert config.model.cell == cell
  model = lm.build_model(config, vocab_size=65)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 3), jnp.int32),
                          model.initial_carries(2))["params"]
  assert [k for k in params["rnn"] if k.startswith("layer_")] == [
      f"layer_{i}" for i in range(config.model.num_layers)]
  if variant == "feng":  # Feng et al.'s stack: 3 residual layers of 384 units
    assert (config.model.num_layers, config.model.hidden_size, config.model.connection,
            config.data.batch_size, config.data.bptt) == (3, 384, "residual", 64, 256)
