"""A toy task for the supervised trainer's tests, runnable as a process.

  python -m tests.studies.supervised_toy WORKDIR [PAUSE_AT]

trains a two-layer classifier with dropout on 48 random points (6 batches an
epoch, a checkpoint every 4 steps) through ``supervised.fit`` and writes
``figures.json``. With
``PAUSE_AT`` the process blocks, for good, when it fetches that (0-based)
batch of the run: a test kills it there, mid-epoch.
"""

import json
import pathlib
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from rnn_research import metrics as metrics_lib
from rnn_research.studies import supervised

N, FEATURES, BATCH = 48, 5, 8  # 6 batches an epoch


class Toy(nn.Module):
  hidden: int = 8

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.relu(nn.Dense(self.hidden)(x))
    h = nn.Dropout(0.2, deterministic=not train)(h)
    return nn.Dense(2)(h)


def toy_data(seed=0):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=FEATURES)
  split = lambda n: (x := rng.normal(size=(n, FEATURES)).astype(np.float32),
                     (x @ w > 0).astype(np.int32))
  return {"train": split(N), "valid": split(32), "test": split(32)}


class Batches:
  """One epoch's batches; fetching the run's batch ``pause_at`` blocks."""

  def __init__(self, data, epoch, seed, pause_at=None):
    x, y = data
    order = np.random.default_rng([seed, epoch]).permutation(len(x))
    self.batches = [{"x": x[i], "y": y[i]} for i in np.split(order, len(x) // BATCH)]
    self.first, self.pause_at = epoch * len(self.batches), pause_at

  def __len__(self):
    return len(self.batches)

  def __getitem__(self, i):
    if self.pause_at is not None and self.first + i == self.pause_at:
      time.sleep(3600)
    return self.batches[i]


def loss_fn_for(model):
  def loss_fn(params, batch, rng, train):
    logits = model.apply({"params": params}, batch["x"], train, rngs={"dropout": rng})
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    count = jnp.float32(len(batch["y"]))
    errors = (logits.argmax(-1) != batch["y"]).sum()
    return losses.mean(), {"loss": losses.sum(), "error": errors, "count": count}
  return loss_fn


def evaluate_for(model, data):
  @jax.jit
  def figures(params, x, y):
    logits = model.apply({"params": params}, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return (logits.argmax(-1) != y).mean(), loss

  def evaluate(params, split):
    error, loss = figures(params, *data[split])
    return {"error": float(error), "loss": float(loss), "accuracy": 1 - float(error),
            "items": len(data[split][1])}
  return evaluate


def options(**overrides):
  return supervised.Options(**{"num_epochs": 4, "log_every_steps": 1,
                               "tensorboard": False, **overrides})


def fit(workdir, hidden=8, seed=0, pause_at=None, tx=None, identity=None, **overrides):
  """supervised.fit on the toy task; returns (model, data, Result)."""
  model = Toy(hidden)
  data = toy_data(seed)
  init_key, dropout_key = jax.random.split(jax.random.key(seed))
  params = jax.jit(model.init)(init_key, data["train"][0][:BATCH])["params"]
  result = supervised.fit(
      workdir, params=params, tx=tx or optax.adam(0.05), loss_fn=loss_fn_for(model),
      train_batches=lambda epoch: Batches(data["train"], epoch, seed, pause_at),
      evaluate=evaluate_for(model, data), options=options(**overrides), rng=dropout_key,
      identity=identity if identity is not None else {"hidden": hidden},
      log_fields={"run": "toy"})
  return model, data, result


if __name__ == "__main__":
  logging.set_verbosity(logging.INFO)
  workdir = pathlib.Path(sys.argv[1])
  pause = int(sys.argv[2]) if len(sys.argv) > 2 else None
  _, _, out = fit(workdir, pause_at=pause, checkpoint_every_steps=4)
  metrics_lib.write_json(workdir / "figures.json", {"best": out.best, "test": out.figures["test"],
                                                    "steps": out.steps})
  print(json.dumps({"steps": out.steps}))
