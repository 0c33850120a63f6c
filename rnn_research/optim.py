"""The optimizer: ``clip_by_global_norm -> sgd | adam | adamw``, with schedules.

Clipping comes first (Pascanu et al. 2013): if ||g|| > clip_norm then
g <- clip_norm * g / ||g||, the norm taken over all parameters together.

Config fields (``config.optim``):
  name: 'sgd', 'adam', 'adamw' or 'rmsprop' (decay 0.9, as Arjovsky et al. 2016).
  learning_rate: base learning rate.
  clip_norm: global-norm threshold; 0 disables clipping.
  schedule: 'constant', 'epoch_decay' (Zaremba et al. 2014: the rate is
    multiplied by ``lr_decay`` at the end of every epoch after the first
    ``decay_after_epochs``) or 'cosine' (to ``end_learning_rate`` at the
    run's last step).
  lr_decay, decay_after_epochs: for 'epoch_decay'.
  warmup_steps: for 'cosine', a linear warm-up first, nanoGPT's: step s < W
    runs at lr * (s + 1) / (W + 1), and the cosine starts from lr at step W.
    0 (the default) = none.
  end_learning_rate: for 'cosine', the rate it ends at (nanoGPT's min_lr);
    0 (the default) = to zero.
  weight_decay: for 'adamw', decoupled (Loshchilov & Hutter 2019), applied to
    the matrices only (parameters of two or more dimensions: kernels and
    embeddings), as nanoGPT does: biases, gains and the LRU's per-unit nu,
    theta and gamma are not pulled towards zero.
  b2: for 'adam' and 'adamw', the second-moment decay (default 0.999; nanoGPT's
    character models use 0.99).
  momentum: for 'sgd' (0 = plain SGD, as in the paper).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "epoch_decay", "cosine")
# Fields a config may leave out, with the value that stands for them (runs
# recorded before the fields existed trained with these values).
DEFAULTS = {"warmup_steps": 0, "end_learning_rate": 0.0, "b2": 0.999}


def _get(optim: ml_collections.ConfigDict, key: str):
  return optim.get(key, DEFAULTS[key])


def learning_rate_schedule(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                           total_steps: int) -> optax.Schedule:
  """The learning rate as a pure function of the step (so resuming needs no state)."""
  base = optim.learning_rate
  if optim.schedule == "constant":
    return optax.constant_schedule(base)
  if optim.schedule == "epoch_decay":
    # Zaremba et al.'s reference code: lr * decay ** max(epoch + 1 - max_epoch, 0),
    # epochs counted from 0, so epochs 0..max_epoch-1 run at the base rate.
    def schedule(step):
      epoch = step // max(steps_per_epoch, 1)
      return base * optim.lr_decay ** jnp.maximum(epoch + 1 - optim.decay_after_epochs, 0)
    return schedule
  if optim.schedule == "cosine":
    warmup, end = _get(optim, "warmup_steps"), _get(optim, "end_learning_rate")
    if warmup and warmup >= total_steps:
      raise ValueError(f"optim.warmup_steps = {warmup} leaves no step of the cosine: "
                       f"the run has {total_steps} steps")
    if warmup:
      # init_value = lr / (W + 1) makes optax's line nanoGPT's lr * (s + 1) / (W + 1).
      return optax.warmup_cosine_decay_schedule(base / (warmup + 1), base, warmup,
                                                total_steps, end_value=end)
    return optax.cosine_decay_schedule(base, max(total_steps, 1),
                                       alpha=end / base if base else 0.0)
  raise ValueError(f"unknown schedule {optim.schedule!r}; valid: {', '.join(SCHEDULES)}")


def matrices(params):
  """True for the parameters weight decay applies to: those of two or more dimensions."""
  return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> optax.GradientTransformation:
  """``clip_by_global_norm(clip_norm)`` followed by the chosen optimizer."""
  lr = learning_rate_schedule(optim, steps_per_epoch, total_steps)
  if optim.name == "sgd":
    opt = optax.sgd(lr, momentum=optim.get("momentum", 0.0) or None)
  elif optim.name == "adam":
    opt = optax.adam(lr, b2=_get(optim, "b2"))
  elif optim.name == "adamw":
    opt = optax.adamw(lr, b2=_get(optim, "b2"),
                      weight_decay=optim.get("weight_decay", 0.0), mask=matrices)
  elif optim.name == "rmsprop":
    opt = optax.rmsprop(lr, decay=0.9)
  else:
    raise ValueError(f"unknown optimizer {optim.name!r}; valid: {', '.join(OPTIMIZERS)}")
  if optim.clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(optim.clip_norm), opt)
  return opt
