"""The optimizer: ``clip_by_global_norm -> sgd | adam | adamw``, with schedules.

Clipping comes first (Pascanu et al. 2013): if ||g|| > clip_norm then
g <- clip_norm * g / ||g||, the norm taken over all parameters together.

Config fields (``config.optim``):
  name: 'sgd', 'adam', 'adamw' or 'rmsprop' (decay 0.9, as Arjovsky et al. 2016).
  learning_rate: base learning rate.
  clip_norm: global-norm threshold; 0 disables clipping.
  schedule: 'constant', 'epoch_decay' (Zaremba et al. 2014: the rate is
    multiplied by ``lr_decay`` at the end of every epoch after the first
    ``decay_after_epochs``) or 'cosine' (to zero over the run).
  lr_decay, decay_after_epochs: for 'epoch_decay'.
  weight_decay: for 'adamw'.
  momentum: for 'sgd' (0 = plain SGD, as in the paper).
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "epoch_decay", "cosine")


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
    return optax.cosine_decay_schedule(base, max(total_steps, 1))
  raise ValueError(f"unknown schedule {optim.schedule!r}; valid: {', '.join(SCHEDULES)}")


def make_optimizer(optim: ml_collections.ConfigDict, steps_per_epoch: int,
                   total_steps: int) -> optax.GradientTransformation:
  """``clip_by_global_norm(clip_norm)`` followed by the chosen optimizer."""
  lr = learning_rate_schedule(optim, steps_per_epoch, total_steps)
  if optim.name == "sgd":
    opt = optax.sgd(lr, momentum=optim.get("momentum", 0.0) or None)
  elif optim.name == "adam":
    opt = optax.adam(lr)
  elif optim.name == "adamw":
    opt = optax.adamw(lr, weight_decay=optim.get("weight_decay", 0.0))
  elif optim.name == "rmsprop":
    opt = optax.rmsprop(lr, decay=0.9)
  else:
    raise ValueError(f"unknown optimizer {optim.name!r}; valid: {', '.join(OPTIMIZERS)}")
  if optim.clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(optim.clip_norm), opt)
  return opt
