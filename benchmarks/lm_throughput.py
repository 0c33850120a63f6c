r"""Training throughput: our ``LanguageModel`` against the same model in PyTorch.

Both sides train a 2-layer language model (embedding -> 2 recurrent layers ->
softmax over 10,000 words) with SGD (learning rate 1, loss summed over the BPTT
window) and global-norm clipping, the hidden state carried (detached) from one
batch to the next, on random token batches. Our side is the real training step
of ``rnn_research.studies.lm`` (``build_model``, ``make_train_step``, ``TrainState``,
``optim.make_optimizer``) built from ``configs/ptb.py`` at the benchmark's
sizes; PyTorch's is ``nn.Embedding -> nn.LSTM | nn.GRU | nn.RNN(num_layers=2,
batch_first=True) -> nn.Linear`` (cuDNN on a GPU, PyTorch's own kernels on the
CPU). Both run in one process, alternating blocks of ``--steps`` steps after
warm-up, ``--repeats`` times; the ratio is the median of the per-block ratios.

Both sides start from the same weights: ours are initialised and copied into
PyTorch's modules (``rnn_research.interop`` for the recurrent layers). Before
any timing, the first step's loss and gradients of both sides are computed on
the same batch, in float32 without dropout (the two libraries draw different
masks), with TF32 off, and compared: the loss to ``LOSS_RTOL``, every gradient
to ``GRAD_RTOL`` of its largest entry. Where they differ the benchmark stops
with an error and reports no ratio: a ratio is only reported for two sides
known to compute the same thing. Later steps drift apart slightly: PyTorch's
recurrent modules hold two bias vectors (b_ih, b_hh) that each receive the
gradient, so under SGD their sum moves twice as fast as our single bias; the
work per step is the same.

    python benchmarks/lm_throughput.py --config=zaremba_small --cell=lstm --json

ends its output with one JSON line holding ``ours_tok_s``, ``torch_tok_s`` and
``ratio`` (ours / torch), compile time and peak device memory. Results and the
commands that made them: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

# JAX must not take 75% of a GPU up front: PyTorch shares the device.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from configs import ptb  # noqa: E402
from configs import shakespeare  # noqa: E402
from rnn_research import cli  # noqa: E402
from rnn_research import interop  # noqa: E402
from rnn_research import optim  # noqa: E402
from rnn_research.studies import lm  # noqa: E402

# name: (configs/ptb.py variant, batch, bptt, hidden, vocab, dropout)
CONFIGS = {
    "zaremba_small": ("small", 20, 20, 200, 10000, 0.0),
    "zaremba_medium": ("medium", 20, 35, 650, 10000, 0.5),
    "zaremba_large": ("large", 20, 35, 1500, 10000, 0.65),
    "throughput": ("medium", 256, 64, 1024, 10000, 0.0),
    "tiny": ("small", 4, 5, 16, 50, 0.0),  # for tests only
}
PUBLIC_CONFIGS = tuple(c for c in CONFIGS if c != "tiny")
# Experiment configs that ab_step.py and profile_step.py measure as they are:
# name -> (configs/shakespeare.py variant, vocabulary: Tiny Shakespeare's 65 symbols).
EXPERIMENTS = {"shakespeare_feng": ("feng", 65)}
# Our registered cell and its options -> PyTorch's module (same equations:
# interop.py maps one onto the other; the GRU is the reset-after variant).
CELLS = {
    "lstm": ("lstm", {"forget_bias": 0.0}, "LSTM"),
    "gru": ("gru", {"reset_after": True}, "GRU"),
    "elman": ("elman", {"activation": "tanh"}, "RNN"),
}
NUM_BATCHES = 4  # distinct random batches, cycled
# interop's name for PyTorch's network of each cell.
TORCH_KINDS = {"lstm": "lstm", "gru": "gru", "elman": "rnn_tanh"}
# The first step of the two sides must agree to float32 rounding: the loss
# (relative) and each gradient (largest difference / largest entry).
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4


class NotTheSameComputation(ValueError):
  """The two sides' first-step loss or gradients differ: no ratio is reported."""


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="zaremba_small", choices=tuple(CONFIGS),
                 metavar="{" + ",".join(PUBLIC_CONFIGS) + "}")  # and tiny, for tests
  p.add_argument("--cell", default="lstm", choices=tuple(CELLS))
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                 help="our model.dtype; PyTorch runs under bf16 autocast")
  p.add_argument("--steps", type=int, default=20, help="steps per timed block")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
  p.add_argument("--repeats", type=int, default=5, help="timed blocks per side")
  p.add_argument("--unroll", type=int, default=0,
                 help="model.unroll; 0 keeps the config's")
  p.add_argument("--dropout", type=float, default=None,
                 help="overrides the config's dropout (both sides)")
  p.add_argument("--torch_threads", type=int, default=0,
                 help="torch.set_num_threads on the CPU; 0 keeps PyTorch's default")
  p.add_argument("--malloc", default="retain", choices=("retain", "default"),
                 help="retain (as our experiment scripts do by default): glibc keeps "
                 "freed memory (one arena, no mmap), so large per-step buffers are "
                 "not page-faulted in again every step; default: glibc's own "
                 "settings. The whole process, both sides")
  p.add_argument("--skip_torch", action="store_true", help="time our side only")
  p.add_argument("--json", action="store_true", help="end with one JSON line")
  p.add_argument("--out", default="", help="also append the JSON line to this file")
  return p.parse_args(argv)


def make_config(args) -> ml_collections.ConfigDict:
  """configs/ptb.py's variant at the benchmark's sizes."""
  variant, batch, bptt, hidden, _, dropout = CONFIGS[args.config]
  name, options, _ = CELLS[args.cell]
  c = ptb.get_config(variant)
  c.model.cell = name
  c.model.hidden_size = hidden
  c.model.dropout_rate = dropout if args.dropout is None else args.dropout
  c.model.cell_options = ml_collections.ConfigDict(options)
  c.model.dtype = args.dtype
  if args.unroll:
    c.model.unroll = args.unroll
  c.data.batch_size = batch
  c.data.bptt = bptt
  return c


def add_config_args(p: argparse.ArgumentParser) -> None:
  """--config, --cell and --dtype of the scripts that time our side only."""
  p.add_argument("--config", default="zaremba_small", choices=tuple(CONFIGS) + tuple(EXPERIMENTS),
                 metavar="{" + ",".join(PUBLIC_CONFIGS + tuple(EXPERIMENTS)) + "}")
  p.add_argument("--cell", default="lstm", choices=tuple(shakespeare.CELLS),
                 help=f"with a PTB size: {', '.join(CELLS)}; with an experiment config, any")
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))


def config_and_vocab(p: argparse.ArgumentParser, args) -> tuple[ml_collections.ConfigDict, int]:
  """The config of ``add_config_args``' flags and its vocabulary size."""
  if args.config in EXPERIMENTS:
    variant, vocab = EXPERIMENTS[args.config]
    config = shakespeare.get_config(f"{variant},{args.cell}")
    config.model.dtype = args.dtype
    return config, vocab
  if args.cell not in CELLS:
    p.error(f"--cell={args.cell} runs with --config={'/'.join(EXPERIMENTS)}; "
            f"with {args.config}: {', '.join(CELLS)}")
  config = make_config(parse_args([f"--config={args.config}", f"--cell={args.cell}",
                                   f"--dtype={args.dtype}"]))
  return config, CONFIGS[args.config][4]


def random_batches(config, vocab: int, seed: int = 0) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  shape = (config.data.batch_size, config.data.bptt + 1)
  return [rng.integers(0, vocab, shape, dtype=np.int32) for _ in range(NUM_BATCHES)]


class Ours:
  """Our real training step (rnn_research.studies.lm), jitted with the state donated."""

  name = "ours"

  def __init__(self, config, vocab: int, batches):
    model = lm.build_model(config, vocab)
    steps_per_epoch = 10**9  # the learning rate stays at its base value
    schedule = optim.learning_rate_schedule(config.optim, steps_per_epoch, steps_per_epoch)
    tx = optim.make_optimizer(config.optim, steps_per_epoch, steps_per_epoch)
    init_key, self.dropout_key = jax.random.split(jax.random.key(config.seed))
    b, t = config.data.batch_size, config.data.bptt
    carries = model.initial_carries(b)
    params = jax.jit(model.init)(init_key, jnp.zeros((b, t), jnp.int32), carries)["params"]
    self.state = lm.TrainState(  # zeros_like: distinct buffers, as the state is donated
        step=jnp.int32(0), params=params, opt_state=tx.init(params),
        carries=jax.tree.map(jnp.zeros_like, carries),
        skipped=jnp.int32(0), first_nonfinite=jnp.int32(-1))
    self.num_params = sum(x.size for x in jax.tree.leaves(params))
    self.initial_params = jax.tree.map(np.array, params)  # copies: the state is donated
    self.train_step = jax.jit(lm.make_train_step(model, tx, schedule, config),
                              donate_argnums=0)
    self.batches = [(jax.device_put(x[:, :-1]), jax.device_put(x[:, 1:])) for x in batches]
    self.metrics = None
    self.i = 0

  def run(self, steps: int) -> float:
    """Seconds for ``steps`` training steps, finished on the device."""
    t0 = time.perf_counter()
    for _ in range(steps):
      inputs, targets = self.batches[self.i % NUM_BATCHES]
      self.state, self.metrics = self.train_step(self.state, inputs, targets,
                                                 self.dropout_key)
      self.i += 1
    jax.block_until_ready((self.state, self.metrics))
    return time.perf_counter() - t0

  def loss(self) -> float:
    return float(self.metrics["loss"])

  def peak_bytes(self):
    stats = jax.devices()[0].memory_stats()  # None on the CPU
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


class Torch:
  """The same model in PyTorch: nn.LSTM / nn.GRU / nn.RNN (cuDNN on a GPU)."""

  name = "torch"

  def __init__(self, config, vocab: int, batches, cell: str, dtype: str,
               threads: int = 0):
    import torch
    from torch import nn
    self.torch = torch
    self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if threads:
      torch.set_num_threads(threads)
    if self.device.type == "cuda":
      torch.backends.cuda.matmul.allow_tf32 = True  # as the anchors (and XLA's default)
      torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(config.seed)
    m, d = config.model, config.data
    hidden, scale, p = m.hidden_size, m.init_scale, m.dropout_rate

    class LM(nn.Module):

      def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = getattr(nn, CELLS[cell][2])(
            hidden, hidden, num_layers=m.num_layers, batch_first=True,
            dropout=p if m.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(p)
        self.softmax = nn.Linear(hidden, vocab)

      def forward(self, tokens, state):
        x = self.dropout(self.embed(tokens))  # (B, T, H)
        h, state = self.rnn(x, state)
        return self.softmax(self.dropout(h)), state  # (B, T, V)

    self.model = LM().to(self.device).train()
    with torch.no_grad():  # ours: uniform(-s, s) kernels, zero biases
      for w in self.model.parameters():
        w.uniform_(-scale, scale) if w.dim() > 1 else w.zero_()
    self.num_params = sum(w.numel() for w in self.model.parameters())
    self.opt = torch.optim.SGD(self.model.parameters(), lr=config.optim.learning_rate)
    self.clip_norm = config.optim.clip_norm
    self.sum_over_time = config.optim.loss_sum_over_time
    self.autocast = dtype == "bfloat16"
    zeros = torch.zeros(m.num_layers, d.batch_size, hidden, device=self.device)
    self.state = (zeros, zeros.clone()) if cell == "lstm" else zeros
    self.batches = [(torch.from_numpy(x[:, :-1]).long().to(self.device),
                     torch.from_numpy(x[:, 1:]).long().to(self.device)) for x in batches]
    self.last_loss = None
    self.i = 0

  def load_weights(self, params, cell: str, num_layers: int) -> None:
    """Our parameters (``Ours.initial_params``) into this model."""
    state = {f"rnn.{k}": v for k, v in interop.to_torch(
        {"params": params["rnn"]}, TORCH_KINDS[cell], num_layers).items()}
    state["embed.weight"] = params["embed"]["embedding"]  # (V, H)
    state["softmax.weight"] = params["softmax"]["kernel"].T  # (H, V) -> (V, H)
    state["softmax.bias"] = params["softmax"]["bias"]
    self.model.load_state_dict({k: self.torch.from_numpy(np.array(v, np.float32))
                                for k, v in state.items()})

  def loss_and_grads(self, inputs, targets):
    """Float32 loss (per token) and gradients of the training objective, from
    a zero state, without dropout and without TF32; nothing is updated."""
    torch = self.torch
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
      self.model.eval()
      self.model.zero_grad(set_to_none=True)
      zeros = torch.zeros_like(self.state[0] if isinstance(self.state, tuple) else self.state)
      state = (zeros, zeros.clone()) if isinstance(self.state, tuple) else zeros
      logits, _ = self.model(inputs, state)
      loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                               targets.reshape(-1))
      (loss * inputs.shape[1] if self.sum_over_time else loss).backward()
      grads = {k: w.grad.detach().cpu().numpy().copy()
               for k, w in self.model.named_parameters()}
    finally:
      self.model.zero_grad(set_to_none=True)
      self.model.train()
      torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    return loss.item(), grads

  def step(self, inputs, targets):
    torch = self.torch
    state = (tuple(s.detach() for s in self.state) if isinstance(self.state, tuple)
             else self.state.detach())
    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
      logits, self.state = self.model(inputs, state)
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
    objective = loss * inputs.shape[1] if self.sum_over_time else loss
    self.opt.zero_grad(set_to_none=True)
    objective.backward()
    if self.clip_norm > 0:
      torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
    self.opt.step()
    self.last_loss = loss.detach()

  def sync(self):
    if self.device.type == "cuda":
      self.torch.cuda.synchronize()

  def run(self, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
      self.step(*self.batches[self.i % NUM_BATCHES])
      self.i += 1
    self.sync()
    return time.perf_counter() - t0

  def loss(self) -> float:
    return float(self.last_loss)

  def peak_bytes(self):
    if self.device.type == "cuda":
      return int(self.torch.cuda.max_memory_allocated())
    return None


def _capture_gradients():
  """An optax transformation that applies nothing and keeps the gradients as
  its state: our real training step then hands its gradients back."""
  import optax
  return optax.GradientTransformation(
      lambda params: jax.tree.map(jnp.zeros_like, params),
      lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), grads))


def _ours_loss_and_grads(config, vocab: int, params, inputs, targets):
  """Our training step's loss and gradients (``lm.make_train_step``), in
  float32 without dropout, at the highest matmul precision."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.model.dropout_rate, c.model.dtype = 0.0, "float32"
  model = lm.build_model(c, vocab)
  tx = _capture_gradients()
  schedule = optim.learning_rate_schedule(c.optim, 1, 1)
  carries = model.initial_carries(c.data.batch_size)
  state = lm.TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                           carries=carries, skipped=jnp.int32(0),
                           first_nonfinite=jnp.int32(-1))
  with jax.default_matmul_precision("highest"):
    new_state, metrics = jax.jit(lm.make_train_step(model, tx, schedule, c))(
        state, inputs, targets, jax.random.key(0))
  return float(metrics["loss"]), jax.tree.map(np.asarray, new_state.opt_state)


def check_same_computation(config, vocab: int, ours: "Ours", torch_side: "Torch",
                           batch: np.ndarray, cell: str) -> dict:
  """Compares both sides' first-step loss and gradients on ``batch``.

  Returns the relative differences; raises ``NotTheSameComputation`` naming
  the first quantity beyond ``LOSS_RTOL`` / ``GRAD_RTOL``.
  """
  inputs, targets = batch[:, :-1], batch[:, 1:]
  loss, grads = _ours_loss_and_grads(config, vocab, jax.tree.map(jnp.asarray,
                                                                 ours.initial_params),
                                     jnp.asarray(inputs), jnp.asarray(targets))
  t = torch_side.torch
  torch_loss, torch_grads = torch_side.loss_and_grads(
      t.from_numpy(inputs).long().to(torch_side.device),
      t.from_numpy(targets).long().to(torch_side.device))
  kind = TORCH_KINDS[cell]
  want = {f"rnn.{k}": v for k, v in interop.to_torch(
      {"params": grads["rnn"]}, kind, config.model.num_layers).items()}
  # PyTorch adds b_ih and b_hh in every gate, so both receive our bias's
  # gradient, except the GRU candidate's b_hn (our recurrent_bias).
  h = config.model.hidden_size
  for k in [k for k in want if "bias_hh" in k]:
    b_ih = want[k.replace("bias_hh", "bias_ih")]
    want[k] = (np.concatenate([b_ih[:2 * h], want[k][2 * h:]]) if kind == "gru"
               else b_ih.copy())
  want["embed.weight"] = grads["embed"]["embedding"]
  want["softmax.weight"] = grads["softmax"]["kernel"].T
  want["softmax.bias"] = grads["softmax"]["bias"]
  if set(want) != set(torch_grads):
    raise NotTheSameComputation(f"the two sides have different parameters: ours "
                                f"{sorted(want)}, PyTorch's {sorted(torch_grads)}")
  loss_err = abs(loss - torch_loss) / abs(torch_loss)
  grad_errs = {k: float(np.max(np.abs(want[k] - g)) / max(float(np.max(np.abs(g))), 1e-30))
               for k, g in torch_grads.items()}
  worst = max(grad_errs, key=grad_errs.get)
  if not loss_err <= LOSS_RTOL:
    raise NotTheSameComputation(
        f"the two sides do not compute the same loss: ours {loss:.7g}, PyTorch's "
        f"{torch_loss:.7g} (relative difference {loss_err:.2g} > {LOSS_RTOL:g}); no ratio")
  if not grad_errs[worst] <= GRAD_RTOL:
    raise NotTheSameComputation(
        f"the two sides do not compute the same gradients: {worst} differs by "
        f"{grad_errs[worst]:.2g} of its largest entry (> {GRAD_RTOL:g}); no ratio")
  return {"check_loss": loss, "check_loss_rel_diff": loss_err,
          "check_grad_rel_diff": grad_errs[worst], "check_grad_worst": worst}


def versions() -> dict:
  import flax
  import jaxlib
  import optax
  v = {"python": platform.python_version(), "jax": jax.__version__,
       "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__}
  try:
    import torch
    v["torch"] = torch.__version__
    v["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
  except ImportError:
    v["torch"] = None
  return v


# The instruction-set extensions that decide which CPU kernels run (and so
# the ratios): AVX-512 and its bfloat16 dot, Intel's AMX tiles, AVX2 and FMA.
ISA_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2", "fma")


def parse_cpuinfo(text: str) -> dict:
  """The processor in ``/proc/cpuinfo``'s ``text``: model name, logical CPU
  count and, for each of ``ISA_FLAGS``, whether the first CPU lists it."""
  fields = {}
  count = 0
  for line in text.splitlines():
    key, sep, value = line.partition(":")
    if not sep:
      continue
    key = key.strip()
    if key == "processor":
      count += 1
    fields.setdefault(key, value.strip())  # the first CPU's value
  flags = set(fields.get("flags", "").split())
  return {"model": fields.get("model name") or None, "logical_cpus": count or None,
          "isa": {f: f in flags for f in ISA_FLAGS}}


def processor() -> dict:
  """This machine's processor (``parse_cpuinfo`` of ``/proc/cpuinfo``), or
  ``platform``'s name where there is no such file."""
  try:
    return parse_cpuinfo(pathlib.Path("/proc/cpuinfo").read_text())
  except OSError:
    return {"model": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "isa": None}


def device_name() -> str:
  d = jax.devices()[0]
  if d.platform == "cpu":
    return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
  return f"{d.platform} ({d.device_kind})"


def provenance(script: str, argv=None) -> dict:
  """The fields that end every benchmark's JSON line: the processor, the
  library versions, the date, and the command that reruns it. ``argv`` is
  the arguments of a call from Python; None means this process's command
  line."""
  return {"processor": processor(), "versions": versions(),
          "date": datetime.datetime.now().isoformat(timespec="seconds"),
          "command": " ".join(["python", f"benchmarks/{script}"]
                              + (sys.argv[1:] if argv is None else list(argv)))}


def first_step(side) -> float:
  """Seconds of the first step: compilation (ours) or first-call setup (PyTorch)."""
  return side.run(1)


def benchmark(args, argv=None) -> dict:
  malloc = args.malloc
  if malloc == "retain" and not cli.retain_freed_memory():
    malloc = "default (mallopt unavailable)"
  load_start = os.getloadavg()[0]
  config = make_config(args)
  vocab = CONFIGS[args.config][4]
  batches = random_batches(config, vocab)
  sides = [Ours(config, vocab, batches)]
  check = {}
  if not args.skip_torch:
    sides.append(Torch(config, vocab, batches, args.cell, args.dtype, args.torch_threads))
    sides[1].load_weights(sides[0].initial_params, args.cell, config.model.num_layers)
    check = check_same_computation(config, vocab, sides[0], sides[1], batches[0], args.cell)
  first = {s.name: first_step(s) for s in sides}
  first_loss = {s.name: s.loss() for s in sides}  # the same weights and batch on both sides
  for s in sides:
    s.run(args.warmup)
  seconds = {s.name: [] for s in sides}
  cpu_ms = {s.name: [] for s in sides}  # process CPU time: all threads, spinning included
  for r in range(args.repeats):
    for s in (sides if r % 2 == 0 else sides[::-1]):  # alternate who goes first
      cpu0 = time.process_time()
      seconds[s.name].append(s.run(args.steps))
      cpu_ms[s.name].append((time.process_time() - cpu0) / args.steps * 1e3)
  tokens = args.steps * config.data.batch_size * config.data.bptt
  tok_s = {name: [tokens / t for t in ts] for name, ts in seconds.items()}
  ratios = ([o / t for o, t in zip(tok_s["ours"], tok_s["torch"])]
            if "torch" in tok_s else None)
  torch_side = sides[1] if len(sides) > 1 else None
  return {
      "config": args.config, "cell": args.cell, "dtype": args.dtype,
      "batch": config.data.batch_size, "bptt": config.data.bptt,
      "hidden": config.model.hidden_size, "layers": config.model.num_layers,
      "vocab": vocab, "dropout": config.model.dropout_rate, "unroll": config.model.unroll,
      "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
      "ours_tok_s": statistics.median(tok_s["ours"]),
      "torch_tok_s": statistics.median(tok_s["torch"]) if torch_side else None,
      "ratio": statistics.median(ratios) if ratios else None,
      "ours_tok_s_best": max(tok_s["ours"]),
      "torch_tok_s_best": max(tok_s["torch"]) if torch_side else None,
      "ours_tok_s_all": tok_s["ours"], "torch_tok_s_all": tok_s.get("torch"),
      "ratios": ratios,
      "ours_cpu_ms_per_step": statistics.median(cpu_ms["ours"]),
      "torch_cpu_ms_per_step": statistics.median(cpu_ms["torch"]) if torch_side else None,
      "ours_compile_s": first["ours"], "torch_first_step_s": first.get("torch"),
      "ours_peak_bytes": sides[0].peak_bytes(),
      "torch_peak_bytes": torch_side.peak_bytes() if torch_side else None,
      "ours_loss": sides[0].loss(), "torch_loss": torch_side.loss() if torch_side else None,
      "ours_first_loss": first_loss["ours"], "torch_first_loss": first_loss.get("torch"),
      **check,
      "ours_params": int(sides[0].num_params),
      "torch_params": int(torch_side.num_params) if torch_side else None,
      "torch_threads": torch_side.torch.get_num_threads() if torch_side else None,
      "device": device_name(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""), "malloc": malloc,
      "loadavg_1min": [load_start, os.getloadavg()[0]],  # other users of the CPU
      **provenance("lm_throughput.py", argv),
  }


def _fmt(x, spec):
  return "-" if x is None else format(x, spec)


def main(argv=None) -> dict:
  args = parse_args(argv)
  try:
    result = benchmark(args, argv)
  except NotTheSameComputation as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  r = result
  print(f"{r['config']} {r['cell']} {r['dtype']} (B={r['batch']}, T={r['bptt']}, "
        f"H={r['hidden']}, V={r['vocab']}) on {r['device']}")
  print(f"  ours : {_fmt(r['ours_tok_s'], ',.0f')} tok/s, first step "
        f"{r['ours_compile_s']:.2f} s, peak {_fmt(r['ours_peak_bytes'], ',')} B, "
        f"loss {r['ours_loss']:.3f}")
  if r["torch_tok_s"] is not None:
    print(f"  torch: {_fmt(r['torch_tok_s'], ',.0f')} tok/s, first step "
          f"{r['torch_first_step_s']:.2f} s, peak {_fmt(r['torch_peak_bytes'], ',')} B, "
          f"loss {r['torch_loss']:.3f}")
    print(f"  ratio (ours / torch, median of {len(r['ratios'])} blocks): {r['ratio']:.2f}")
  emit(result, args)
  return result


def emit(result: dict, args) -> None:
  """Appends ``result`` as a JSON line to ``args.out`` and prints it with ``--json``."""
  line = json.dumps(result)
  if args.out:
    with open(args.out, "a") as f:
      f.write(line + "\n")
  if args.json:
    print(line, flush=True)


if __name__ == "__main__":
  main()
