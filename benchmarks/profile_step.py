r"""Where our training step's time goes: XLA's own profile, grouped by part of the step.

Builds ``lm_throughput.Ours`` (the real jitted training step of
``rnn_research.studies.lm``) at a benchmark config, runs it ``--warmup``
steps, then ``--steps`` steps under ``jax.profiler.trace``, and reads the
trace's events: XLA:CPU records one per executed HLO instruction (a thunk),
named as in the compiled module. Each instruction's ``op_name`` metadata in
``train_step.lower(...).compile().as_text()`` says which part of the step it
belongs to (``category``): the softmax products, the recurrent loops forward
and backward (their products apart from their gate arithmetic), the input
projections, the cross-entropy, the embedding, the update, dropout, and for
the linear-recurrence cells (``--config=shakespeare_feng --cell=mingru``)
their coefficients and readout apart from the chunked scan. Times are self
times (an instruction's event less the events nested in it, e.g. a while
loop's body), in ms per step; what the step's wall time has beyond all
instructions is "outside XLA's instructions" (dispatch, Python, waits).

    python benchmarks/profile_step.py --config=zaremba_small --cell=lstm

prints the table and ends with one JSON line (the processor, load average
and command included). Needs nothing beyond jax (``create_perfetto_trace``).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import lm_throughput as lt

import jax  # noqa: E402  (lm_throughput set up the environment first)

# Row order of the table.
CATEGORIES = (
    "softmax products (logits, dh, dW)",
    "softmax bias (add, gradient)",
    "cross-entropy (log-softmax, its gradient)",
    "recurrent loop, forward: products",
    "recurrent loop, forward: gates, bookkeeping",
    "recurrent loop, backward: products",
    "recurrent loop, backward: gates, bookkeeping",
    "recurrent layers outside the loops (input projections, hoisted dW, transposes)",
    "embedding (gather, scatter-add gradient)",
    "gradient norm, clipping, SGD update, non-finite guard",
    "copies without metadata (layout, donation)",
    "dropout (masks and their application, both directions)",
    "linear recurrences: coefficients a_t, b_t, readout, their gradients",
    "linear recurrences: the chunked scan, forward and backward",
)
HOST = "outside XLA's instructions (dispatch, Python, waits)"


def category(op_name: str) -> str:
  """The part of the training step that an HLO instruction with this
  ``op_name`` metadata belongs to (one of ``CATEGORIES``)."""
  if not op_name:
    return CATEGORIES[10]
  if "/dropout/" in op_name or op_name.endswith("/dropout"):
    return CATEGORIES[11]
  if "._parallel/" in op_name:  # Recurrent's parallel form (minGRU, minLSTM, LRU)
    cell_part = re.search(r"/cell\.(log_coefficients|coefficients|readout)/", op_name)
    return CATEGORIES[12] if cell_part else CATEGORIES[13]
  if "/softmax/" in op_name:
    return CATEGORIES[0] if op_name.endswith("dot_general") else CATEGORIES[1]
  if "/rnn/" in op_name:
    if "/while/body/" in op_name:
      first = 5 if "transpose(jvp(LanguageModel))" in op_name else 3  # backward, forward
      return CATEGORIES[first if op_name.endswith("dot_general") else first + 1]
    return CATEGORIES[7]
  if "/embed/" in op_name:
    return CATEGORIES[8]
  if "jvp()" in op_name:  # the loss function, outside the model: optax's cross-entropy
    return CATEGORIES[2]
  return CATEGORIES[9]


def instruction_op_names(hlo: str) -> dict[str, str]:
  """Instruction name -> its ``op_name`` metadata ('' where none), for every
  instruction of a compiled HLO module's text (names are unique in a module)."""
  names = {}
  for line in hlo.splitlines():
    m = re.match(r"\s*(?:ROOT )?%(\S+) = ", line)
    if m:
      op = re.search(r'op_name="([^"]*)"', line)
      names[m.group(1)] = op.group(1).split(";")[0] if op else ""
  return names


def self_times(events: list[dict], names: set[str]) -> dict[str, float]:
  """Microseconds per instruction name: the duration of each complete event
  named in ``names``, less that of the named events nested in it on the same
  thread."""
  by_thread = collections.defaultdict(list)
  for e in events:
    if e.get("ph") == "X" and e.get("name") in names:
      by_thread[(e.get("pid"), e.get("tid"))].append(e)
  total = collections.Counter()
  for evs in by_thread.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack = []  # [end, name, child time]
    for e in evs:
      while stack and e["ts"] >= stack[-1][0]:
        end, name, child = stack.pop()
        total[name] -= child
      if stack:
        stack[-1][2] += e["dur"]
      total[e["name"]] += e["dur"]
      stack.append([e["ts"] + e["dur"], e["name"], 0.0])
    for _, name, child in stack:
      total[name] -= child
  return dict(total)


def busy_time(events: list[dict], names: set[str]) -> float:
  """Microseconds during which at least one event named in ``names`` ran, on
  any thread (the union of their intervals)."""
  spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                 if e.get("ph") == "X" and e.get("name") in names)
  total, end = 0.0, float("-inf")
  for start, stop in spans:
    if stop > end:
      total += stop - max(start, end)
      end = stop
  return total


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  lt.add_config_args(p)
  p.add_argument("--steps", type=int, default=10, help="profiled steps")
  p.add_argument("--warmup", type=int, default=5, help="steps before the profile")
  p.add_argument("--out", default="", help="also append the JSON line to this file")
  p.set_defaults(json=True)  # lt.emit: the JSON line always ends the output
  args = p.parse_args(argv)
  lt.cli.retain_freed_memory()  # as the benchmark and the experiment scripts
  load_start = os.getloadavg()[0]
  config, vocab = lt.config_and_vocab(p, args)
  ours = lt.Ours(config, vocab, lt.random_batches(config, vocab))
  ours.run(1 + args.warmup)
  inputs, targets = ours.batches[0]
  hlo = ours.train_step.lower(ours.state, inputs, targets, ours.dropout_key).compile().as_text()
  op_names = instruction_op_names(hlo)
  unprofiled_ms = ours.run(args.steps) / args.steps * 1e3
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      t0 = time.perf_counter()
      ours.run(args.steps)
      wall_ms = (time.perf_counter() - t0) / args.steps * 1e3
    (path,) = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)
    with gzip.open(path) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  times = self_times(events, set(op_names))
  ms = collections.Counter()
  top = collections.defaultdict(list)
  for name, us in times.items():
    c = category(op_names[name])
    ms[c] += us / 1e3 / args.steps
    top[c].append((us / 1e3 / args.steps, name))
  busy_ms = busy_time(events, set(op_names)) / 1e3 / args.steps
  rows = [(c, ms.get(c, 0.0)) for c in CATEGORIES]
  instructions_ms = sum(v for _, v in rows)
  print(f"{args.config} {args.cell} {args.dtype}: {wall_ms:.1f} ms per profiled step "
        f"({unprofiled_ms:.1f} ms without the profiler), load {load_start:.1f}")
  print(f"  instruction time by part (summed over threads: {instructions_ms:.1f} ms; "
        f"independent instructions may overlap)")
  for c, v in rows:
    print(f"  {v:8.2f} ms  {100 * v / instructions_ms:5.1f}%  {c}")
  print(f"  {wall_ms - busy_ms:8.2f} ms  {100 * (wall_ms - busy_ms) / wall_ms:5.1f}% of "
        f"the wall time: {HOST}")
  record = {
      "config": args.config, "cell": args.cell, "dtype": args.dtype, "steps": args.steps,
      "wall_ms": wall_ms, "unprofiled_ms": unprofiled_ms, "busy_ms": busy_ms,
      "host_ms": wall_ms - busy_ms, "instructions_ms": instructions_ms,
      "ms": dict(rows), "share": {c: v / instructions_ms for c, v in rows},
      "top": {c: [[round(t, 3), n, op_names[n]] for t, n in sorted(v, reverse=True)[:3]]
              for c, v in top.items()},
      "loadavg_1min": [load_start, os.getloadavg()[0]],
      **lt.provenance("profile_step.py", argv)}
  lt.emit(record, args)
  return record


if __name__ == "__main__":
  main()
