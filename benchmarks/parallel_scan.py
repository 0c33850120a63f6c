r"""Training throughput of the parallel (scanned) cells against the sequential ones.

At each BPTT length the same 2-layer language model (embedding -> 2 recurrent
layers -> softmax, SGD, global-norm clipping, carry passed across batches)
trains with each of our cells (``--cells``: by default LSTM, GRU, minGRU,
minLSTM and the LRU, all of ``--hidden`` units) and with PyTorch's
``nn.GRU``, all in one process on the same random batches, in alternating
blocks of ``--steps`` steps after warm-up, ``--repeats`` times. Ratios are
the median over blocks of (cell's tokens/s / our GRU's tokens/s) in the same
block round, so a load change on a shared machine hits both sides of a ratio.
Our side is ``lm_throughput.Ours`` (the real ``rnn_research.studies.lm`` step),
PyTorch's ``lm_throughput.Torch``.

The default vocabulary is small (256, a byte-level model): with PTB's 10,000
words the softmax dominates a CPU step and hides the recurrence being
compared.

Besides the registered cells, ``--cells`` takes variants of the minGRU that
locate its time: ``mingru_log`` (``log_space=True``, the paper's form);
``mingru_assoc`` (the previous implementation, for before/after in one run:
log space, composed by ``jax.lax.associative_scan`` and differentiated
through it); ``mingru_floor`` (the scan removed, h_t = b_t: the same model's
every other cost, so no scan can make the minGRU faster than this).

    python benchmarks/parallel_scan.py --bptt=35,128,512,2048 --json \
        --out=benchmarks/results/parallel_scan_cpu.jsonl

prints a table per length and one JSON line per length (with the processor
it ran on). ``--dtype=bfloat16`` runs our matrix products in bf16 (the scans
and gates stay float32) and PyTorch's GRU under bf16 autocast. ``--batch`` and
``--hidden`` (default 16 and 256) move the ratio most: at batch 1 and 1,024 units
the GRU's loop is a chain of matrix-vector products and the minGRU is 11x it at
T = 512, at batch 16 and 256 units 3.5x. docs/parallel_recurrences.md has the
measured tables.
"""

from __future__ import annotations

import argparse
import os
import statistics

import contextlib

import lm_throughput as lt

import jax  # noqa: E402  (lm_throughput set up the environment first)
import jax.numpy as jnp  # noqa: E402

from rnn_research import cli  # noqa: E402
from rnn_research import recurrent  # noqa: E402

# Our cell name -> its cell_options in the benchmark (the GRU as lm_throughput's).
OPTIONS = {"lstm": {"forget_bias": 0.0}, "gru": {"reset_after": True}, "mingru": {},
           "minlstm": {}, "lru": {}, "mingru_log": {"log_space": True},
           "mingru_assoc": {"log_space": True}, "mingru_floor": {"log_space": True}}


def _associative_log_scan(log_a, log_b, h0, chunk=None):
  """recurrent.log_linear_scan as it was before chunked_scan (autodiff through it)."""
  del chunk
  log_a_sum, log_h = jax.lax.associative_scan(recurrent._log_compose, (log_a, log_b), axis=1)
  return jnp.exp(log_a_sum) * h0[:, None] + jnp.exp(log_h)


def _no_scan(log_a, log_b, h0, chunk=None):
  """h_t = b_t: the coefficients are computed, the recurrence is not."""
  del log_a, h0, chunk
  return jnp.exp(log_b)


# Variants that replace the layer's log-space scan while their step is traced.
SCANS = {"mingru_assoc": _associative_log_scan, "mingru_floor": _no_scan}


@contextlib.contextmanager
def scan_of(name: str):
  if name not in SCANS:
    yield
    return
  saved = recurrent.log_linear_scan
  recurrent.log_linear_scan = SCANS[name]
  try:
    yield
  finally:
    recurrent.log_linear_scan = saved


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--bptt", default="35,128,512,2048", help="comma-separated lengths")
  p.add_argument("--cells", default="lstm,gru,mingru,minlstm,lru",
                 help="our cells (comma-separated; gru is the reference)")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--hidden", type=int, default=256)
  p.add_argument("--vocab", type=int, default=256)
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                 help="our model.dtype (matrix products; the scans stay float32); "
                      "PyTorch runs under bf16 autocast")
  p.add_argument("--steps", type=int, default=2, help="steps per timed block")
  p.add_argument("--warmup", type=int, default=1, help="untimed steps after the first")
  p.add_argument("--repeats", type=int, default=3, help="timed block rounds")
  p.add_argument("--skip_torch", action="store_true", help="no PyTorch GRU side")
  p.add_argument("--json", action="store_true", help="one JSON line per length")
  p.add_argument("--out", default="", help="also append the JSON lines to this file")
  args = p.parse_args(argv)
  args.bptt = [int(t) for t in args.bptt.split(",")]
  args.cells = args.cells.split(",")
  unknown = [c for c in args.cells if c not in OPTIONS]
  if unknown or "gru" not in args.cells:
    p.error(f"--cells must include gru and name only {', '.join(OPTIONS)}; got {args.cells}")
  return args


def make_config(args, cell: str, bptt: int):
  """configs/ptb.py's small variant (as lm_throughput) at this benchmark's sizes."""
  base = argparse.Namespace(config="zaremba_small", cell="gru", dtype=args.dtype,
                            unroll=0, dropout=0.0)
  c = lt.make_config(base)
  c.model.cell = cell.split("_")[0]
  c.model.cell_options = OPTIONS[cell]
  c.model.hidden_size = args.hidden
  c.data.batch_size = args.batch
  c.data.bptt = bptt
  return c


def one_length(args, bptt: int, argv=None) -> dict:
  load_start = os.getloadavg()[0]
  configs = {cell: make_config(args, cell, bptt) for cell in args.cells}
  batches = lt.random_batches(configs["gru"], args.vocab)
  sides, first = {}, {}
  for cell, config in configs.items():
    with scan_of(cell):  # traced (init and first step) with this variant's scan
      sides[cell] = lt.Ours(config, args.vocab, batches)
      first[cell] = lt.first_step(sides[cell])
  if not args.skip_torch:
    sides["torch_gru"] = lt.Torch(configs["gru"], args.vocab, batches, "gru", args.dtype)
    first["torch_gru"] = lt.first_step(sides["torch_gru"])
  for s in sides.values():
    s.run(args.warmup)
  names = list(sides)
  tok_s = {name: [] for name in names}
  tokens = args.steps * args.batch * bptt
  for r in range(args.repeats):
    for name in (names if r % 2 == 0 else names[::-1]):  # alternate who goes first
      tok_s[name].append(tokens / sides[name].run(args.steps))
  ratios = {name: statistics.median(a / g for a, g in zip(tok_s[name], tok_s["gru"]))
            for name in names}
  return {
      "bptt": bptt, "batch": args.batch, "hidden": args.hidden, "vocab": args.vocab,
      "dtype": args.dtype,
      "layers": configs["gru"].model.num_layers, "steps": args.steps,
      "repeats": args.repeats,
      "tok_s": {name: statistics.median(v) for name, v in tok_s.items()},
      "tok_s_all": tok_s, "ratio_to_our_gru": ratios,
      "first_step_s": first,
      "params": {name: int(s.num_params) for name, s in sides.items()},
      "loss": {name: s.loss() for name, s in sides.items()},
      "device": lt.device_name(),
      "loadavg_1min": [load_start, os.getloadavg()[0]],  # other users of the CPU
      "scan_chunk": recurrent.SCAN_CHUNK,
      **lt.provenance("parallel_scan.py", argv),
  }


def main(argv=None) -> list[dict]:
  args = parse_args(argv)
  cli.retain_freed_memory()  # as lm_throughput's default (--malloc=retain)
  results = []
  for bptt in args.bptt:
    r = one_length(args, bptt, argv)
    print(f"T={bptt} (B={args.batch}, H={args.hidden}, V={args.vocab}, {args.dtype}) "
          f"on {r['device']}, "
          f"load {r['loadavg_1min'][0]:.1f} -> {r['loadavg_1min'][1]:.1f}")
    for name in r["tok_s"]:
      print(f"  {name:10s} {r['tok_s'][name]:>12,.0f} tok/s  x{r['ratio_to_our_gru'][name]:.2f}"
            f" our GRU  (first step {r['first_step_s'][name]:.1f} s, "
            f"{r['params'][name]:,} params)")
    lt.emit(r, args)
    results.append(r)
  return results


if __name__ == "__main__":
  main()
