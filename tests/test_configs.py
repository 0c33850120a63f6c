"""Every config in configs/ builds, in every variant, and bad variants are refused."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from rnn_research import models, train

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
    model = train.build_model(config, vocab_size=50)
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


def test_ptb_configs_hold_zaremba_et_al_hyperparameters():
  from configs import ptb
  small, medium, large = (ptb.get_config(v) for v in ("small", "medium", "large"))
  assert (small.model.hidden_size, small.data.bptt, small.model.dropout_rate,
          small.num_epochs, small.optim.lr_decay, small.optim.clip_norm) == (
              200, 20, 0.0, 13, 0.5, 5.0)
  assert (medium.model.hidden_size, medium.data.bptt, medium.model.dropout_rate,
          medium.num_epochs, medium.optim.lr_decay, medium.optim.decay_after_epochs) == (
              650, 35, 0.5, 39, 0.8, 6)
  assert (large.model.hidden_size, large.model.dropout_rate, large.model.init_scale,
          large.num_epochs, large.optim.clip_norm) == (1500, 0.65, 0.04, 55, 10.0)
  assert large.optim.lr_decay == pytest.approx(1 / 1.15)
  for c in (small, medium, large):
    assert (c.model.num_layers, c.data.batch_size, c.optim.name, c.optim.learning_rate,
            c.model.cell_options.forget_bias) == (2, 20, "sgd", 1.0, 0.0)
