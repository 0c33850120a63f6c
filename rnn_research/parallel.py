"""Data parallelism on JAX's own engine: a 1-D device mesh over the batch axis.

Parameters and optimizer state are replicated; each batch (and the carried
hidden state, whose leading axis is the batch) is split along its first axis
over the ``data`` mesh axis. ``jax.jit`` then partitions the step and inserts
the gradient all-reduce itself: the training code is the same on one device
or many.

Multi-host: call ``initialize_distributed()`` first on every host; it reads
the coordinator address, process count and id from its arguments or the
environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``), and the mesh then spans every host's devices.

On a CPU, simulate several devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """``jax.distributed.initialize`` from arguments or the environment; a no-op
  for a single process."""
  env = os.environ
  coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
  if not coordinator_address:
    return
  jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes or int(env["JAX_NUM_PROCESSES"]),
      process_id=process_id if process_id is not None else int(env["JAX_PROCESS_ID"]))


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices)."""
  # jax.make_mesh would default to explicit axis types, which nn.Embed's
  # gather rejects (PITFALLS.md); a plain Mesh keeps automatic sharding.
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), (AXIS,))


def check_divisible(mesh: Mesh, batch_size: int) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"batch size {batch_size} is not divisible by the {n} devices "
                     "of the data-parallel mesh")


def shard_batch(mesh: Mesh, tree):
  """Splits every array's leading (batch) axis over the devices."""
  return jax.device_put(tree, NamedSharding(mesh, P(AXIS)))


def replicate(mesh: Mesh, tree):
  """A full copy of every array on every device."""
  return jax.device_put(tree, NamedSharding(mesh, P()))
