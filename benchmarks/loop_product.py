r"""The one product a sequential cell cannot batch over time, timed alone.

A GRU layer computes its input projections for all time steps at once, but
at every step it must multiply the (B, H) state by the (H, 3H) recurrent
matrix before the next step can start. This script times that loop alone:
``--steps`` iterations of ``h <- tanh(r_1 + r_2 * r_3)`` with
``r = h @ W`` (W of shape (H, 3H), a product in ``--dtype`` with a float32
result, as ``cells.recurrent_product``), for each hidden size and batch, and
reports microseconds per step, the matrix's bytes read per microsecond and
the product's GFLOP/s. Where the loop is limited by reading W, the bytes per
microsecond stay level as W grows; where it is limited by arithmetic, the
GFLOP/s do.

    python benchmarks/loop_product.py --hidden=256,512,1024,2048 --batch=1,2,16 \
        --json --out=benchmarks/results/loop_product_cpu.jsonl

One JSON line per (hidden, batch, dtype), with the processor it ran on.
docs/parallel_recurrences.md ("Across batch and width") uses it to explain
why the minGRU's lead over our GRU grows as the batch shrinks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lm_throughput as lt

import jax  # noqa: E402  (lm_throughput set up the environment first)
import jax.numpy as jnp  # noqa: E402

from rnn_research import cells  # noqa: E402


def loop(hidden: int, steps: int, dtype):
  """jit(h0, W) -> h after ``steps`` steps of the GRU-shaped recurrent loop."""

  def run(h, kernel):
    def body(h, _):
      r = cells.recurrent_product(h, kernel, dtype)  # (B, 3H), float32
      return jnp.tanh(r[:, :hidden] + r[:, hidden:2 * hidden] * r[:, 2 * hidden:]), None
    return jax.lax.scan(body, h, None, length=steps)[0]

  return jax.jit(run)


def measure(hidden: int, batch: int, dtype: str, steps: int, repeats: int) -> dict:
  kernel = jax.random.normal(jax.random.key(0), (hidden, 3 * hidden)) / hidden ** 0.5
  h = jnp.full((batch, hidden), 0.1)
  fn = loop(hidden, steps, None if dtype == "float32" else jnp.dtype(dtype))
  jax.block_until_ready(fn(h, kernel))  # compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(h, kernel))
    times.append((time.perf_counter() - t0) / steps)
  us = statistics.median(times) * 1e6
  matrix_bytes = 3 * hidden * hidden * jnp.dtype(dtype).itemsize
  return {"hidden": hidden, "batch": batch, "dtype": dtype, "steps": steps,
          "repeats": repeats, "us_per_step": us, "us_per_step_all": [t * 1e6 for t in times],
          "matrix_bytes": matrix_bytes, "gb_s": matrix_bytes / us / 1e3,
          "gflop_s": 2 * batch * 3 * hidden * hidden / us / 1e3}


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--hidden", default="256,512,1024,2048", help="comma-separated sizes")
  p.add_argument("--batch", default="1,2,16", help="comma-separated batch sizes")
  p.add_argument("--dtype", default="float32", help="comma-separated: float32, bfloat16")
  p.add_argument("--steps", type=int, default=256, help="loop steps per timed call")
  p.add_argument("--repeats", type=int, default=5, help="timed calls (the median is kept)")
  p.add_argument("--json", action="store_true", help="one JSON line per measurement")
  p.add_argument("--out", default="", help="also append the JSON lines to this file")
  args = p.parse_args(argv)
  try:
    args.hidden = [int(v) for v in args.hidden.split(",")]
    args.batch = [int(v) for v in args.batch.split(",")]
  except ValueError as e:
    p.error(f"--hidden and --batch take comma-separated integers: {e}")
  args.dtype = args.dtype.split(",")
  if min(args.hidden + args.batch) < 1 or args.steps < 1 or args.repeats < 1:
    p.error("--hidden, --batch, --steps and --repeats must be positive")
  bad = [d for d in args.dtype if d not in ("float32", "bfloat16")]
  if bad:
    p.error(f"--dtype takes float32 and bfloat16, got {bad}")
  return args


def main(argv=None) -> list[dict]:
  args = parse_args(argv)
  results = []
  for hidden in args.hidden:
    for batch in args.batch:
      for dtype in args.dtype:
        r = measure(hidden, batch, dtype, args.steps, args.repeats)
        r.update(device=lt.device_name(), loadavg_1min=os.getloadavg()[0],
                 **lt.provenance("loop_product.py", argv))
        print(f"H={hidden:5d} B={batch:3d} {dtype:8s} {r['us_per_step']:9.1f} us/step  "
              f"W {r['matrix_bytes'] / 1e6:5.1f} MB  {r['gb_s']:6.1f} GB/s  "
              f"{r['gflop_s']:6.1f} GFLOP/s")
        lt.emit(r, args)
        results.append(r)
  return results


if __name__ == "__main__":
  main()
