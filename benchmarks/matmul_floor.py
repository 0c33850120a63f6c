r"""The matrix products of one language-model training step, timed alone.

A training step of ``lm_throughput.py``'s model cannot run faster than its
matrix products: the softmax's three (logits = h W, dh = dlogits W^T,
dW = h^T dlogits) and, per recurrent layer, the input projection with its two
gradients and, per time step, the recurrent product and its dh, with its dW
over all steps as one product. This script
runs exactly those products, with the step's shapes and nothing else (no
nonlinearity, no loss, no update), as one jitted function, and reports its
time beside one of our full training steps, and (when PyTorch is installed)
the same products in PyTorch and PyTorch's full step, all in one process,
alternating. The gap between the products and our step is what any rewrite of
the rest (elementwise work, scans, the update) could win; PyTorch's step over
the faster library's products is the most that any step doing these products
could be ahead of PyTorch (``max_ratio``).

    python benchmarks/matmul_floor.py --config=zaremba_small --cell=lstm --json

Float32 on both sides; on a GPU both may use TF32, as the benchmark allows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lm_throughput as lt

import jax  # noqa: E402  (lm_throughput set up the environment first)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

GATES = {"lstm": 4, "gru": 3, "elman": 1}


def products(batch: int, bptt: int, hidden: int, vocab: int, layers: int,
             gates: int):
  """(fn, args, flops): the step's matrix products as one jitted function.

  ``args`` are NumPy arrays; ``fn`` takes them as JAX arrays.
  """
  n, g = batch * bptt, gates * hidden
  rng = np.random.default_rng(0)
  arr = lambda *shape: rng.standard_normal(shape, np.float32)
  args = dict(
      h=arr(n, hidden), w_out=arr(hidden, vocab), d_logits=arr(n, vocab),
      x=arr(layers, n, hidden), w_in=arr(layers, hidden, g), d_gates=arr(layers, n, g),
      h_t=arr(layers, bptt, batch, hidden), w_rec=arr(layers, hidden, g),
      d_gates_t=arr(layers, bptt, batch, g))

  def fn(a):
    out = [a["h"] @ a["w_out"],  # logits
           a["d_logits"] @ a["w_out"].T,  # dh
           a["h"].T @ a["d_logits"]]  # dW of the softmax
    for l in range(layers):
      out += [a["x"][l] @ a["w_in"][l],  # input projection, all steps at once
              a["d_gates"][l] @ a["w_in"][l].T,  # its dx
              a["x"][l].T @ a["d_gates"][l]]  # its dW

      def step(_, t):  # one time step's recurrent product and its dh
        h, d = a["h_t"][l][t], a["d_gates_t"][l][t]
        return None, (h @ a["w_rec"][l], d @ a["w_rec"][l].T)

      _, ys = jax.lax.scan(step, None, jnp.arange(bptt))
      # dW of the recurrent product, all steps in one product (cheaper than
      # one per step, and what Recurrent does)
      dw = a["h_t"][l].reshape(-1, hidden).T @ a["d_gates_t"][l].reshape(-1, g)
      out += [*ys, dw]
    return out

  flops = 2 * (3 * n * hidden * vocab + layers * 6 * n * hidden * g)
  return jax.jit(fn), args, flops


def torch_products(args: dict, layers: int, bptt: int):
  """The same products in PyTorch (its own CPU kernels, or cuBLAS)."""
  import torch
  device = "cuda" if torch.cuda.is_available() else "cpu"
  a = {k: torch.from_numpy(v).to(device) for k, v in args.items()}

  @torch.no_grad()
  def fn():
    out = [a["h"] @ a["w_out"], a["d_logits"] @ a["w_out"].T, a["h"].T @ a["d_logits"]]
    for l in range(layers):
      out += [a["x"][l] @ a["w_in"][l], a["d_gates"][l] @ a["w_in"][l].T,
              a["x"][l].T @ a["d_gates"][l]]
      for t in range(bptt):
        h, d = a["h_t"][l][t], a["d_gates_t"][l][t]
        out += [h @ a["w_rec"][l], d @ a["w_rec"][l].T]
      out.append(a["h_t"][l].reshape(-1, a["h_t"].shape[-1]).T
                 @ a["d_gates_t"][l].reshape(-1, a["d_gates_t"].shape[-1]))
    return out

  def run(steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
      fn()
    if device == "cuda":
      torch.cuda.synchronize()
    return time.perf_counter() - t0

  return run


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="zaremba_small", choices=tuple(lt.CONFIGS))
  p.add_argument("--cell", default="lstm", choices=tuple(GATES))
  p.add_argument("--steps", type=int, default=10, help="calls per timed block")
  p.add_argument("--repeats", type=int, default=7, help="timed blocks per side")
  p.add_argument("--json", action="store_true", help="end with one JSON line")
  p.add_argument("--out", default="", help="also append the JSON line to this file")
  args = p.parse_args(argv)
  bench_args = lt.parse_args([f"--config={args.config}", f"--cell={args.cell}"])
  lt.cli.retain_freed_memory()  # as the benchmark and the experiment scripts
  config = lt.make_config(bench_args)
  vocab = lt.CONFIGS[args.config][4]
  fn, fn_args, flops = products(config.data.batch_size, config.data.bptt,
                                config.model.hidden_size, vocab,
                                config.model.num_layers, GATES[args.cell])
  batches = lt.random_batches(config, vocab)
  ours = lt.Ours(config, vocab, batches)
  jax_args = {k: jnp.asarray(v) for k, v in fn_args.items()}
  jax.block_until_ready(fn(jax_args))
  ours.run(3)
  try:
    torch = lt.Torch(config, vocab, batches, args.cell, "float32")
    torch.run(3)
    torch_floor_run = torch_products(fn_args, config.model.num_layers, config.data.bptt)
    torch_floor_run(1)
  except ImportError:
    torch = None

  def floor_run(steps):
    t0 = time.perf_counter()
    for _ in range(steps):
      out = fn(jax_args)
    jax.block_until_ready(out)
    return time.perf_counter() - t0

  floor_s, step_s, torch_s, torch_floor_s = [], [], [], []
  sides = [(floor_s, floor_run), (step_s, ours.run)]
  if torch is not None:
    sides += [(torch_s, torch.run), (torch_floor_s, torch_floor_run)]
  for r in range(args.repeats):  # alternate, rotating who goes first
    for times, run in sides[r % len(sides):] + sides[:r % len(sides)]:
      times.append(run(args.steps) / args.steps)
  floor_ms = statistics.median(floor_s) * 1e3
  step_ms = statistics.median(step_s) * 1e3
  torch_ms = statistics.median(torch_s) * 1e3 if torch_s else None
  torch_floor_ms = statistics.median(torch_floor_s) * 1e3 if torch_floor_s else None
  best_floor_ms = min(floor_ms, torch_floor_ms or floor_ms)
  record = {
      "config": args.config, "cell": args.cell, "floor_ms": floor_ms,
      "torch_floor_ms": torch_floor_ms, "step_ms": step_ms, "torch_step_ms": torch_ms,
      "floor_share": floor_ms / step_ms,
      "ratio": torch_ms / step_ms if torch_ms else None,
      "max_ratio": torch_ms / best_floor_ms if torch_ms else None,
      "floor_gflop_s": flops / floor_ms / 1e6, "gflop": flops / 1e9,
      "tokens_per_step": config.data.batch_size * config.data.bptt,
      "device": lt.device_name(), "loadavg_1min": os.getloadavg()[0],
      **lt.provenance("matmul_floor.py", argv)}
  print(f"{args.config} {args.cell}: matrix products alone {floor_ms:.1f} ms "
        f"({record['floor_gflop_s']:.0f} GFLOP/s over {record['gflop']:.2f} GFLOP), "
        f"our full training step {step_ms:.1f} ms ({100 * floor_ms / step_ms:.0f}%)")
  if torch_ms:
    print(f"PyTorch: the same products {torch_floor_ms:.1f} ms, its full step "
          f"{torch_ms:.1f} ms. Ours is {record['ratio']:.2f}x its speed; a step "
          f"doing nothing but the products, at the faster library's speed, would "
          f"be {record['max_ratio']:.2f}x")
  lt.emit(record, args)
  return record


if __name__ == "__main__":
  main()
