r"""A/B of our training step against a variant of it, alternating in one process.

Both sides are ``lm_throughput.Ours`` (the real jitted step) at the same
config; the variant is built with one thing changed:

* ``per_step_weight_grad``: ``Recurrent(hoist_weight_grad=False)``, W's
  gradient summed one step at a time inside the backward loop (BENCHMARKS.md,
  A8). The result is the speed-up of the default over it.
* ``no_cross_entropy``: the loss is a mean of the logits instead of the
  cross-entropy. Not a valid step: it measures what the cross-entropy costs
  (A11).
* ``autodiff_softmax``: the output layer's gradient by plain autodiff of
  ``h W + b`` instead of ``cells.projection``'s own VJP (A12).
* ``autodiff_products``: every ``cells.projection`` (the output layer, the
  cells' input projections, ``Recurrent``'s W gradient after the loop) by
  plain autodiff (A12).
* ``flax_dropout``: ``flax.linen.Dropout`` (a Threefry block per element) in
  place of ``rnn_research.dropout.Dropout`` (a 16-bit lane per element); a
  different mask, so the losses differ by the dropout noise (A13).

``--config`` is one of ``lm_throughput.py``'s PTB sizes or
``shakespeare_feng``, ``configs/shakespeare.py:feng`` itself (3 residual
layers of 384, batch 64 x 256, dropout 0.2) on 65 symbols, with any of its
cells (``--cell=mingru``).

    python benchmarks/ab_step.py --config=zaremba_medium --variant=per_step_weight_grad --steps=2 --repeats=8

prints the median time per step of each and the median of the paired ratios
(variant time / default time: above 1, the default is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import lm_throughput as lt

import jax.numpy as jnp  # noqa: E402  (lm_throughput set up the environment first)

from flax import linen as nn  # noqa: E402
from rnn_research import cells  # noqa: E402
from rnn_research import dropout  # noqa: E402
from rnn_research import models  # noqa: E402
from rnn_research import recurrent  # noqa: E402
from rnn_research.studies import lm  # noqa: E402


class _PerStep(recurrent.Recurrent):
  hoist_weight_grad: bool = False


def _autodiff_projection(x, kernel, dtype=None):
  """``cells.projection`` without its VJP: autodiff's products."""
  return cells._dot(x, kernel, dtype or jnp.float32)


def _autodiff_logits(h, kernel, bias, dtype=None):
  return _autodiff_projection(h, kernel, dtype) + bias


VARIANTS = ("per_step_weight_grad", "no_cross_entropy", "autodiff_softmax",
            "autodiff_products", "flax_dropout")


def _build(config, vocab, batches, variant):
  """``Ours`` with ``variant`` patched in while its step is traced."""
  patches = {
      "per_step_weight_grad": (recurrent, "Recurrent", _PerStep),
      "no_cross_entropy": (lm, "token_losses",
                           lambda logits, targets: jnp.mean(logits, axis=-1) * 1e-3),
      "autodiff_softmax": (models, "project_logits", _autodiff_logits),
      "autodiff_products": (cells, "projection", _autodiff_projection),
      "flax_dropout": (dropout, "Dropout", nn.Dropout),
  }
  module, name, value = patches[variant]
  original = getattr(module, name)
  setattr(module, name, value)
  try:
    side = lt.Ours(config, vocab, batches)
    t0 = time.perf_counter()
    side.run(1)  # traces and compiles with the patch in place
    return side, time.perf_counter() - t0
  finally:
    setattr(module, name, original)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  lt.add_config_args(p)
  p.add_argument("--variant", required=True, choices=VARIANTS)
  p.add_argument("--steps", type=int, default=10, help="steps per timed block")
  p.add_argument("--repeats", type=int, default=12, help="timed blocks per side")
  p.add_argument("--out", default="", help="also append the JSON line to this file")
  p.set_defaults(json=True)  # lt.emit: the JSON line always ends the output
  args = p.parse_args(argv)
  lt.cli.retain_freed_memory()  # as the benchmark and the experiment scripts
  load_start = os.getloadavg()[0]
  config, vocab = lt.config_and_vocab(p, args)
  batches = lt.random_batches(config, vocab)
  default = lt.Ours(config, vocab, batches)
  t0 = time.perf_counter()
  default.run(1)
  default_first = time.perf_counter() - t0
  variant, variant_first = _build(config, vocab, batches, args.variant)
  default.run(2)
  variant.run(2)
  ratios, d_ms, v_ms = [], [], []
  for r in range(args.repeats):  # who goes first alternates
    order = [(default, d_ms), (variant, v_ms)][::1 if r % 2 else -1]
    for side, times in order:
      times.append(side.run(args.steps) / args.steps * 1e3)
    ratios.append(v_ms[-1] / d_ms[-1])
  record = {"config": args.config, "cell": args.cell, "dtype": args.dtype,
            "variant": args.variant,
            "default_ms": statistics.median(d_ms), "variant_ms": statistics.median(v_ms),
            "ratio": statistics.median(ratios), "default_first_step_s": default_first,
            "variant_first_step_s": variant_first,
            "default_loss": default.loss(), "variant_loss": variant.loss(),
            "loadavg_1min": [load_start, os.getloadavg()[0]],
            **lt.provenance("ab_step.py", argv)}
  print(f"{args.config} {args.cell}: default {record['default_ms']:.1f} ms/step, "
        f"{args.variant} {record['variant_ms']:.1f} ms/step, paired median "
        f"{args.variant} / default {record['ratio']:.3f}; first step "
        f"{default_first:.1f} / {variant_first:.1f} s")
  lt.emit(record, args)
  return record


if __name__ == "__main__":
  main()
