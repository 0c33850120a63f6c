r"""Everything a GPU lease must measure, in one command within a time budget.

    python benchmarks/gpu_suite.py --out=DIR [--budget_s=540]

runs, in order, and writes into DIR (flat: at most 8 files of at most 16 MiB,
64 MiB in all, what the device machine can send back):

1. ``throughput.jsonl``: the throughput matrix, ours against PyTorch in the
   same process, one ``benchmarks/lm_throughput.py`` subprocess per row (so a
   failing row does not end the suite and peak memory is the row's own):
   variants {LSTM float32 (TF32 allowed on both sides), LSTM bfloat16 (ours)
   against PyTorch under bf16 autocast, GRU float32} x configs
   {zaremba_medium, zaremba_large, throughput}, variant by variant, so the
   float32 LSTM rows come first. A row that did not run is a line with
   ``status`` skipped, failed or timeout and the reason. Row output:
   ``throughput.log``.
2. ``parallel_scan.jsonl``: ``benchmarks/parallel_scan.py`` (the minGRU,
   minLSTM and LRU language models against our LSTM and GRU and PyTorch's GRU)
   at ``--parallel_bptt`` (512, 2048, 128, 35), one JSON line per length as it
   finishes, for at most ``--parallel_s`` seconds, which the throughput rows
   leave it. Output: ``throughput.log``.
3. PTB medium (``configs/ptb.py:medium``) by ``python -m
   experiments.lm_perplexity`` in ``KEEP_DIR/ptb_workdir``, sent SIGTERM (the
   trainer then saves a checkpoint and returns) early enough to stop before
   the budget, then SIGKILL if it has not. The workdir is tarred into
   ``ptb_workdir.tar``: in DIR when it fits the limits, else beside the
   workdir (a medium checkpoint is 73 MB; summary.md says so).
   ``--resume_from=TAR_OR_WORKDIR`` continues such a run exactly (rerunning
   the trainer on a workdir resumes it). Trainer output: ``ptb.log``.
4. ``summary.md`` (the tables) and ``suite.json`` (the same, for scripts: the
   stages with their seconds, the rows, the PTB run, the files written).

Before anything it makes ml_collections and tensorboardX importable: where
they do not import, it installs the wheels of ``--wheels`` (default ``.whl``,
made by ``make gpu-bundle``) with ``pip install --no-index --no-deps --target``
into ``--site`` and puts that on sys.path and the subprocesses' PYTHONPATH;
it never uses the network. Every stage checks the time left: a row or stage
that cannot fit is recorded as skipped. Paths in --ptb_config and --ptb_dir are
read from the repository root. BENCHMARKS.md (GPU) has the device call.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback

START = time.monotonic()  # the budget counts from here
REPO = pathlib.Path(__file__).resolve().parents[1]

# What the device machine sends back from $OUT (device README, Limits).
MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
MAX_FOLDERS_DOWN = 2
LOG_KEEP_BYTES = 2 * 2**20  # a log over this keeps its end
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")

# name: (lm_throughput --cell, --dtype, training tokens/s goal over PyTorch's)
VARIANTS = {
    "lstm_f32": ("lstm", "float32", 2.0),
    "lstm_bf16": ("lstm", "bfloat16", 2.0),
    "gru_f32": ("gru", "float32", 1.5),
}
CONFIGS = ("zaremba_medium", "zaremba_large", "throughput")
STAGES = ("throughput", "parallel", "ptb")
WORKDIR_NAME = "ptb_workdir"
TAR_NAME = WORKDIR_NAME + ".tar"
PARALLEL_NAME = "parallel_scan.jsonl"
# Packages the GPU image lacks, and the wheels that carry them (make gpu-bundle).
NEEDED = {"ml_collections": True, "tensorboardX": False}  # module: required


def _names(text: str, valid, what: str) -> list[str]:
  names = [n for n in text.split(",") if n]
  unknown = [n for n in names if n not in valid]
  if unknown:
    raise ValueError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(valid)}")
  return names


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", required=True, help="output folder (new or empty): what comes back")
  p.add_argument("--budget_s", type=float, default=540.0,
                 help="wall-clock seconds for the whole suite, from its start")
  p.add_argument("--stages", default=",".join(STAGES),
                 help="comma-separated: " + ",".join(STAGES))
  # The throughput matrix.
  p.add_argument("--configs", default=",".join(CONFIGS),
                 help="lm_throughput configs (tiny, for tests, too)")
  p.add_argument("--variants", default=",".join(VARIANTS), help=", ".join(VARIANTS))
  p.add_argument("--steps", type=int, default=20, help="lm_throughput --steps per block")
  p.add_argument("--warmup", type=int, default=3, help="lm_throughput --warmup")
  p.add_argument("--repeats", type=int, default=5, help="lm_throughput --repeats")
  p.add_argument("--row_arg", action="append", default=[],
                 help="extra lm_throughput flag for every row (repeatable)")
  p.add_argument("--row_estimate_s", type=float, default=45.0,
                 help="a row's expected seconds before one has been measured; then "
                 "the longest measured row")
  p.add_argument("--row_timeout_s", type=float, default=150.0, help="at most per row")
  # The parallel recurrences.
  p.add_argument("--parallel_bptt", default="512,2048,128,35",
                 help="parallel_scan.py --bptt, in the order run (the issue's 512 first)")
  p.add_argument("--parallel_arg", action="append", default=[],
                 help="extra parallel_scan.py flag (repeatable)")
  p.add_argument("--parallel_s", type=float, default=120.0,
                 help="at most this many seconds for the stage (the rows leave it these)")
  p.add_argument("--parallel_min_s", type=float, default=30.0,
                 help="the stage is skipped when fewer seconds than this are left for it")
  # PTB.
  p.add_argument("--ptb_config", default="configs/ptb.py:medium")
  p.add_argument("--ptb_override", action="append", default=[], metavar="KEY=VALUE",
                 help="passed as --config.KEY=VALUE (repeatable); give the same ones "
                 "when resuming")
  p.add_argument("--ptb_dir", default="data/ptb",
                 help="the corpus (ptb.{train,valid,test}.txt), as data.dir")
  p.add_argument("--ptb_reserve_s", type=float, default=240.0,
                 help="seconds the throughput rows leave for PTB")
  p.add_argument("--ptb_min_s", type=float, default=60.0,
                 help="PTB is skipped when fewer seconds than this are left for it")
  p.add_argument("--ptb_stop_after_steps", type=int, default=0,
                 help="also send SIGTERM once metrics.jsonl logs a training step at or "
                 "past this one (0: only the budget stops it); for short calls and tests")
  p.add_argument("--grace_s", type=float, default=30.0,
                 help="seconds between SIGTERM and SIGKILL of the trainer")
  p.add_argument("--finish_s", type=float, default=15.0,
                 help="seconds kept at the end for the tar and the summary")
  p.add_argument("--keep_dir", default="runs/gpu_suite",
                 help="where the PTB workdir lives (and its tar when too big for --out)")
  p.add_argument("--resume_from", default="",
                 help="a ptb_workdir.tar (or a workdir) to continue")
  # Packages.
  p.add_argument("--wheels", default=".whl", help="folder of wheels to install when needed")
  p.add_argument("--site", default="/tmp/gpu_suite_site", help="pip --target for them")
  args = p.parse_args(argv)
  args.stages = _names(args.stages, STAGES, "stage")
  lengths = args.parallel_bptt.split(",")
  if not all(t.isdigit() and int(t) > 0 for t in lengths):
    raise ValueError(f"--parallel_bptt {args.parallel_bptt!r}: comma-separated lengths, "
                     "each an integer > 0")
  args.parallel_bptt = [int(t) for t in lengths]
  args.variants = _names(args.variants, VARIANTS, "variant")
  args.configs = [c for c in args.configs.split(",") if c]
  return args


class Clock:
  """Seconds left of the budget, counted from the suite's start."""

  def __init__(self, budget_s: float, start: float):
    self.start, self.budget = start, budget_s

  def elapsed(self) -> float:
    return time.monotonic() - self.start

  def left(self) -> float:
    return self.budget - self.elapsed()


def _repo_path(path: str) -> pathlib.Path:
  p = pathlib.Path(path)
  return p if p.is_absolute() else REPO / p


def _tail(text: str, n: int = 1) -> str:
  lines = [l for l in text.splitlines() if l.strip()]
  errors = [l for l in lines if l.startswith("error:")]
  return " | ".join((errors or lines)[-n:])[:500] if lines else ""


# --- setup -------------------------------------------------------------------------


def install_wheels(args, log) -> dict:
  """Makes NEEDED importable from --wheels (offline); returns what was done."""
  missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
  done = {"missing": missing, "installed": []}
  if missing:
    wheels = sorted(_repo_path(args.wheels).glob("*.whl"))
    if wheels:
      cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
             "--no-compile", "--no-cache-dir", "--upgrade", "--target", args.site,
             *map(str, wheels)]
      r = subprocess.run(cmd, capture_output=True, text=True)
      log(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
      if r.returncode:
        raise OSError(f"pip could not install the wheels of {args.wheels}: {_tail(r.stderr)}")
      done["installed"] = [w.name for w in wheels]
    if args.site not in sys.path:
      sys.path.insert(0, args.site)
    importlib.invalidate_caches()
  for module, required in NEEDED.items():
    if importlib.util.find_spec(module) is None:
      if required:
        raise OSError(f"{module} does not import and {args.wheels} has no wheel for it "
                      "(make gpu-bundle)")
      log(f"{module} is not installed; going on without it")
  return done


def subprocess_env(args) -> dict:
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  paths = [str(REPO)] + ([args.site] if pathlib.Path(args.site).is_dir() else [])
  env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
  return env


def load_ptb_config(spec: str):
  """The config that ``--config=spec`` names (for the paper's figures and data.source)."""
  path, _, arg = spec.partition(":")
  file = _repo_path(path)
  if not file.exists():
    raise OSError(f"--ptb_config: no file {file}")
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
  module_spec = importlib.util.spec_from_file_location(f"_suite_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def check_ptb_inputs(args, config) -> None:
  source = config.data.source
  for o in args.ptb_override:
    key, _, value = o.partition("=")
    if not _:
      raise ValueError(f"--ptb_override {o!r} is not KEY=VALUE")
    if key == "data.source":
      source = value
  if source == "local":
    data = _repo_path(args.ptb_dir)
    missing = [f for f in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
               if not (data / f).is_file()]
    if missing:
      raise OSError(f"no {missing[0]} in {data} (--ptb_dir; make gpu-bundle copies PTB "
                    "into data/ptb)")
  resume = pathlib.Path(args.resume_from).absolute() if args.resume_from else None
  if resume is not None and not resume.exists():
    raise OSError(f"--resume_from: no {resume}")
  if resume is not None and resume.is_file() and not tarfile.is_tarfile(resume):
    raise ValueError(f"--resume_from: {resume} is not a tar file")
  workdir = ptb_workdir(args)
  if workdir != resume and workdir.exists() and any(workdir.iterdir()):
    raise ValueError(f"{workdir} already holds a run: pass --resume_from={workdir} to "
                     "continue it, or another --keep_dir")


def ptb_workdir(args) -> pathlib.Path:
  """--resume_from when it is a workdir (continued in place), else KEEP_DIR/ptb_workdir."""
  if args.resume_from and pathlib.Path(args.resume_from).is_dir():
    return pathlib.Path(args.resume_from).absolute()
  return _repo_path(args.keep_dir).absolute() / WORKDIR_NAME


def run_logged(cmd: list[str], env: dict, log: pathlib.Path,
               timeout: float) -> tuple[int | None, str, str]:
  """Runs ``cmd`` from the repository root in a process group of its own, its
  stderr and then its stdout appended to ``log`` under a '$ command' line; the
  group is killed after ``timeout`` s. Returns (exit status, None when it was
  killed; its stdout; all it wrote to the log)."""
  with open(log, "a") as f:
    offset = f.tell()
    f.write(f"\n$ {' '.join(cmd[1:])}  (timeout {timeout:.0f} s)\n")
    f.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=f,
                            text=True, start_new_session=True)
    try:
      stdout, _ = proc.communicate(timeout=timeout)
      code = proc.returncode
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      stdout, _ = proc.communicate()
      code = None
    f.write(stdout)
  with open(log, errors="replace") as f:
    f.seek(offset)
    return code, stdout, f.read()


# --- 1. throughput ------------------------------------------------------------------


def run_rows(args, clock: Clock, env: dict, out: pathlib.Path, reserve_s: float) -> list:
  rows, measured = [], []
  log = out / "throughput.log"
  for variant in args.variants:
    cell, dtype, goal = VARIANTS[variant]
    for config in args.configs:
      row = {"config": config, "cell": cell, "dtype": dtype, "variant": variant, "goal": goal}
      room = clock.left() - reserve_s
      estimate = max(measured) if measured else args.row_estimate_s
      if room < estimate:
        row.update(status="skipped", reason=f"{max(room, 0):.0f} s left for rows, a row "
                   f"takes about {estimate:.0f} s")
        rows.append(row)
        _append_row(out, row)
        continue
      cmd = [sys.executable, "benchmarks/lm_throughput.py", f"--config={config}",
             f"--cell={cell}", f"--dtype={dtype}", f"--steps={args.steps}",
             f"--warmup={args.warmup}", f"--repeats={args.repeats}", "--json",
             *args.row_arg]
      timeout = min(args.row_timeout_s, room)
      t0 = time.monotonic()
      code, stdout, text = run_logged(cmd, env, log, timeout)
      seconds = time.monotonic() - t0
      measured.append(seconds)
      line = next((l for l in reversed(stdout.splitlines()) if l.startswith("{")), None)
      if code is None:
        row.update(status="timeout", reason=f"stopped after {timeout:.0f} s")
      elif code == 0 and line:
        row.update(json.loads(line), status="ok")
      else:
        row.update(status="failed", reason=f"exit {code}: {_tail(text)}")
      row["row_s"] = round(seconds, 1)
      rows.append(row)
      _append_row(out, row)
      print(f"[{clock.elapsed():5.0f} s] {variant} {config}: {row['status']}"
            + (f", ratio {row['ratio']:.2f}" if row.get("ratio") else ""), flush=True)
  return rows


def _append_row(out: pathlib.Path, row: dict) -> None:
  """Row by row, so that what was measured comes back also if the call is cut short."""
  with open(out / "throughput.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")


# --- 2. parallel recurrences -------------------------------------------------------


def run_parallel(args, clock: Clock, env: dict, out: pathlib.Path, reserve_s: float) -> dict:
  """``benchmarks/parallel_scan.py`` at --parallel_bptt, one process, its JSON lines
  appended to PARALLEL_NAME length by length (a stage cut short keeps those it
  finished) and its output to throughput.log."""
  lengths = args.parallel_bptt
  room = clock.left() - reserve_s
  if room < args.parallel_min_s:
    return {"status": "skipped", "planned_bptt": lengths,
            "reason": f"{max(room, 0):.0f} s left for it, under "
                      f"--parallel_min_s={args.parallel_min_s:.0f}"}
  timeout = min(args.parallel_s, room)
  path = out / PARALLEL_NAME
  cmd = [sys.executable, "benchmarks/parallel_scan.py", f"--bptt={','.join(map(str, lengths))}",
         "--json", f"--out={path}", *args.parallel_arg]
  t0 = time.monotonic()
  code, _, text = run_logged(cmd, env, out / "throughput.log", timeout)
  done = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
  info = {"command": " ".join(cmd[1:]), "seconds": round(time.monotonic() - t0, 1),
          "planned_bptt": lengths, "lengths": done,
          "status": "ok" if code == 0 else "timeout" if code is None else "failed"}
  if code is None:
    info["reason"] = f"stopped after {timeout:.0f} s"
  elif code:
    info["reason"] = f"exit {code}: {_tail(text)}"
  print(f"[{clock.elapsed():5.0f} s] parallel: {info['status']}, "
        f"{len(done)} of {len(lengths)} lengths", flush=True)
  return info


# --- 3. PTB -------------------------------------------------------------------------


def _checkpoint_steps(workdir: pathlib.Path, which: str = "latest") -> list[int]:
  d = workdir / "checkpoints" / which
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _unpack(tar_path: pathlib.Path, keep: pathlib.Path) -> None:
  with tarfile.open(tar_path) as tar:
    for member in tar.getmembers():
      parts = pathlib.PurePosixPath(member.name).parts
      if not parts or parts[0] != WORKDIR_NAME or ".." in parts or member.name.startswith("/"):
        raise ValueError(f"{tar_path} is not a {TAR_NAME} (member {member.name!r})")
    keep.mkdir(parents=True, exist_ok=True)
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(keep, **extra)


def ptb_command(args, workdir: pathlib.Path) -> list[str]:
  return ([sys.executable, "-m", "experiments.lm_perplexity", f"--config={args.ptb_config}",
           f"--workdir={workdir}", f"--config.data.dir={args.ptb_dir}"]
          + [f"--config.{o}" for o in args.ptb_override])


def run_ptb(args, clock: Clock, env: dict, out: pathlib.Path) -> dict:
  workdir = ptb_workdir(args)
  info = {"workdir": str(workdir), "config": args.ptb_config, "overrides": args.ptb_override}
  if args.resume_from:
    resume = pathlib.Path(args.resume_from).absolute()
    info["resumed_from"] = str(resume)
    if resume.is_file():
      _unpack(resume, workdir.parent)
  info["start_step"] = (_checkpoint_steps(workdir) or [0])[-1]
  cmd = ptb_command(args, workdir)
  info["command"] = " ".join(["python"] + cmd[1:])
  stop_at = args.finish_s + args.grace_s  # seconds left when SIGTERM goes
  log = out / "ptb.log"
  t0 = time.monotonic()
  with open(log, "a") as f:
    f.write(f"$ {info['command']}\n")
    f.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                            start_new_session=True)
    terminated = killed = False
    while proc.poll() is None:
      if not terminated and (clock.left() <= stop_at or _enough_steps(args, workdir)):
        proc.send_signal(signal.SIGTERM)  # the trainer saves a checkpoint and returns
        terminated, info["sigterm_at_s"] = True, round(clock.elapsed(), 1)
      if clock.left() <= args.finish_s:
        os.killpg(proc.pid, signal.SIGKILL)  # its own process group
        killed = True
        proc.wait()
        break
      time.sleep(0.5)
  info["seconds"] = round(time.monotonic() - t0, 1)
  info["returncode"] = proc.returncode
  text = log.read_text(errors="replace")
  m = re.search(r"(\d+) steps per epoch, (\d+) steps", text)
  if m:
    info["steps_per_epoch"], info["total_steps"] = int(m.group(1)), int(m.group(2))
  m = re.findall(r"resumed from \S+ at step (\d+)", text)
  info["trainer_resumed_at"] = int(m[-1]) if m else None
  info["checkpoint_step"] = (_checkpoint_steps(workdir) or [None])[-1]
  results = workdir / "results.json"
  if proc.returncode == 0 and results.exists():
    info["status"] = "completed"
    info["results"] = json.loads(results.read_text())
  elif killed:
    info["status"] = "killed"
    info["reason"] = f"no exit {args.grace_s:.0f} s after SIGTERM; SIGKILL"
  elif proc.returncode == 0 and terminated:
    info["status"] = "stopped"
  elif terminated and proc.returncode == -signal.SIGTERM:
    info["status"] = "stopped"
    info["reason"] = "SIGTERM came before the training loop began: no new checkpoint"
  else:
    info["status"] = "failed"
    info["reason"] = f"exit {proc.returncode}: {_tail(text)}"
  info.update(_progress(workdir))
  print(f"[{clock.elapsed():5.0f} s] PTB: {info['status']} at step "
        f"{info.get('checkpoint_step')}", flush=True)
  return info


def _enough_steps(args, workdir: pathlib.Path) -> bool:
  if not args.ptb_stop_after_steps:
    return False
  step = _progress(workdir)["last_train_step"]
  return step is not None and step >= args.ptb_stop_after_steps


def _progress(workdir: pathlib.Path) -> dict:
  path = workdir / "metrics.jsonl"
  records = []
  for line in (path.read_text().splitlines() if path.exists() else []):
    try:
      records.append(json.loads(line))
    except ValueError:  # a line being written
      pass
  train = [r for r in records if r.get("split") == "train"]
  valid = [r for r in records if r.get("split") == "valid"]
  return {"last_train_step": train[-1]["step"] if train else None,
          "last_train_ppl": train[-1].get("ppl") if train else None,
          "tokens_per_sec": train[-1].get("tokens_per_sec") if train else None,
          "valid_history": [(r["epoch"], r["ppl"]) for r in valid]}


def tar_workdir(args, info: dict, out: pathlib.Path) -> None:
  """ptb_workdir.tar beside the workdir, moved into --out when it fits what comes back."""
  workdir = pathlib.Path(info["workdir"])
  if not workdir.is_dir():
    return
  kept = workdir.parent / TAR_NAME
  with tarfile.open(kept, "w") as tar:
    tar.add(workdir, arcname=WORKDIR_NAME)
  size = kept.stat().st_size
  others = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
  info["tar_bytes"] = size
  if size > MAX_FILE_BYTES or others + size + LOG_KEEP_BYTES > MAX_TOTAL_BYTES:
    info["tar"] = str(kept)
    info["tar_too_big"] = (f"{TAR_NAME} is {size / 2**20:.1f} MiB, over what comes back "
                           f"({MAX_FILE_BYTES // 2**20} MiB a file, "
                           f"{MAX_TOTAL_BYTES // 2**20} MiB in all): left at {kept}")
  else:
    info["tar"] = str(shutil.move(str(kept), out / TAR_NAME))


# --- 3. summary ---------------------------------------------------------------------


def trim_logs(out: pathlib.Path) -> None:
  for log in out.glob("*.log"):
    size = log.stat().st_size
    if size > LOG_KEEP_BYTES:
      with open(log, "rb") as f:
        f.seek(size - LOG_KEEP_BYTES)
        end = f.read()
      log.write_bytes(f"[first {size - LOG_KEEP_BYTES} bytes left out]\n".encode() + end)


def check_limits(out: pathlib.Path) -> list[str]:
  """What under ``out`` would not come back from the device machine (empty: all)."""
  problems, files, total = [], [], 0
  for path in sorted(out.rglob("*")):
    rel = path.relative_to(out)
    if not NAME_OK.match(path.name):
      problems.append(f"{rel}: name not in letters, digits, '.', '_', '-'")
    if path.is_symlink() or not (path.is_file() or path.is_dir()):
      problems.append(f"{rel}: not a plain file")
    elif path.is_file():
      files.append(rel)
      size = path.stat().st_size
      total += size
      if size > MAX_FILE_BYTES:
        problems.append(f"{rel}: {size / 2**20:.1f} MiB, over {MAX_FILE_BYTES // 2**20} MiB")
      if len(rel.parts) - 1 > MAX_FOLDERS_DOWN:
        problems.append(f"{rel}: more than {MAX_FOLDERS_DOWN} folders down")
  if len(files) > MAX_FILES:
    problems.append(f"{len(files)} files, over {MAX_FILES}")
  if total > MAX_TOTAL_BYTES:
    problems.append(f"{total / 2**20:.1f} MiB in all, over {MAX_TOTAL_BYTES // 2**20} MiB")
  return problems


def _mib(x):
  return "-" if x is None else f"{x / 2**20:,.0f}"


def _num(x, spec=",.0f"):
  return "-" if x is None else format(x, spec)


def parallel_markdown(args, suite: dict) -> list[str]:
  from rnn_research.metrics import markdown_table
  lines = ["## Parallel recurrences: training tokens/s against our GRU (parallel_scan.py)",
           ""]
  info = suite.get("parallel")
  if info is None:
    return lines + ["Skipped (not among --stages)." if "parallel" not in args.stages
                    else "Skipped.", ""]
  done = info.get("lengths") or []
  if done:
    names = list(done[0]["tok_s"])
    table = [[r["bptt"]] + [f"{r['tok_s'][n]:,.0f} (x{r['ratio_to_our_gru'][n]:.2f})"
                            for n in names] for r in done]
    first = done[0]
    lines += [markdown_table(["BPTT"] + names, table), "",
              f"tokens/s (x ratio to our GRU: median over blocks in the same process); "
              f"batch {first['batch']}, {first['layers']} layers of {first['hidden']}, "
              f"vocabulary {first['vocab']}; {first['device']}. Lines: {PARALLEL_NAME}.", ""]
  missing = [t for t in info.get("planned_bptt", []) if t not in {r["bptt"] for r in done}]
  if info["status"] != "ok":
    lines.append(f"{info['status'].capitalize()}: {info.get('reason', '')}"
                 + (f"; lengths not measured: {', '.join(map(str, missing))}" if missing
                    else "") + ".")
    lines.append("")
  return lines


def summary_markdown(args, suite: dict, paper) -> str:
  from rnn_research.metrics import markdown_table
  lines = [f"# GPU suite, {suite['date']}", ""] + (
      [f"**The suite broke off**: {suite['error']} (suite.log).", ""]
      if suite.get("error") else []) + [
           f"Device: {suite.get('device') or '-'}. Command: `{suite['command']}`.",
           f"Budget {args.budget_s:.0f} s, used {suite['elapsed_s']:.0f} s; stages (s): "
           + ", ".join(f"{k} {v if isinstance(v, str) else format(v, '.0f')}"
                       for k, v in suite["stage_s"].items()) + ".", ""]
  lines += ["## Training throughput, ours against PyTorch (same process, same precision)", ""]
  rows = suite.get("rows")
  if rows is None:
    lines += ["Skipped (not among --stages)." if "throughput" not in args.stages
              else "Skipped.", ""]
  else:
    header = ["config", "cell", "dtype", "batch x BPTT x hidden", "ours tok/s",
              "PyTorch tok/s", "ratio", "goal", "ours peak MiB", "PyTorch peak MiB",
              "ours first step s", "status"]
    table = []
    for r in rows:
      ok = r["status"] == "ok"
      table.append([r["config"], r["cell"], r["dtype"],
                    f"{r['batch']} x {r['bptt']} x {r['hidden']}" if ok else "-",
                    _num(r.get("ours_tok_s")), _num(r.get("torch_tok_s")),
                    _num(r.get("ratio"), ".2f"), f">= {r['goal']}",
                    _mib(r.get("ours_peak_bytes")), _mib(r.get("torch_peak_bytes")),
                    _num(r.get("ours_compile_s"), ".1f"),
                    "ok" if ok else f"{r['status']}: {r.get('reason', '')}"])
    lines += [markdown_table(header, table), "",
              "Ratio: median over blocks of ours / PyTorch tokens/s (lm_throughput.py). "
              "Peak: jax `memory_stats()['peak_bytes_in_use']`, "
              "`torch.cuda.max_memory_allocated()` ('-' where the device has none). "
              "bfloat16: our model.dtype, PyTorch under bf16 autocast. "
              "Rows: throughput.jsonl.", ""]
  lines += parallel_markdown(args, suite)
  lines += ["## PTB", ""]
  ptb = suite.get("ptb")
  if ptb is None:
    lines += ["Skipped (not among --stages)." if "ptb" not in args.stages
              else f"Skipped: {suite.get('ptb_skipped', '')}", ""]
    return "\n".join(lines) + "\n"
  res = ptb.get("results") or {}
  spe, total = ptb.get("steps_per_epoch"), ptb.get("total_steps")
  step = ptb.get("checkpoint_step")
  where = (f"step {_num(res.get('steps'), 'd')}" if res else
           f"checkpoint at step {_num(step, 'd')}" + (f" of {total:,}" if total else "")
           + (f" (epoch {step / spe:.2f} of {total / spe:.0f})" if spe and step and total
              else ""))
  history = ptb.get("valid_history") or []
  last_valid = f"{history[-1][1]:.2f} (epoch {history[-1][0]})" if history else "-"
  header = ["run", "status", "reached", "valid ppl", "test ppl", "paper valid / test",
            "tokens/s"]
  lines += [markdown_table(header, [[
      args.ptb_config + "".join(f" {o}" for o in args.ptb_override), ptb["status"], where,
      _num(res.get("valid_ppl"), ".2f") if res else f"last epoch's: {last_valid}",
      _num(res.get("test_ppl"), ".2f"),
      f"{paper[0]} / {paper[1]}" if paper and paper[1] else "-",
      _num(res.get("tokens_per_sec") if res else ptb.get("tokens_per_sec"))]]), ""]
  lines.append(f"Trainer: `{ptb['command']}` ({ptb['seconds']:.0f} s; started at step "
               f"{ptb['start_step']}, log: ptb.log).")
  if ptb.get("reason"):
    lines.append(f"Reason: {ptb['reason']}.")
  if ptb.get("tar_too_big"):
    lines.append(f"The workdir's tar did not come back: {ptb['tar_too_big']}. A later call "
                 "on the same machine, while it is still held, continues it from there.")
  if ptb["status"] != "completed" and ptb.get("tar"):
    tar = TAR_NAME if not ptb.get("tar_too_big") else ptb["tar"]
    lines += ["", "Resume (from the repository root, with the tar where this command "
              "can read it):", "",
              "    python benchmarks/gpu_suite.py --out=NEW_DIR --stages=ptb "
              f"--resume_from={tar} --ptb_config={args.ptb_config}"
              + "".join(f" --ptb_override={o}" for o in args.ptb_override)
              + (f" --ptb_dir={args.ptb_dir}" if args.ptb_dir != "data/ptb" else "")]
  return "\n".join(lines) + "\n"


# --- main ---------------------------------------------------------------------------


def main(argv=None) -> dict:
  args = parse_args(argv)
  clock = Clock(args.budget_s, START if argv is None else time.monotonic())
  out = pathlib.Path(args.out).absolute()
  if out.exists() and any(out.iterdir()):
    raise ValueError(f"--out {out} is not empty")
  suite_log = []
  log = lambda text: suite_log.append(text)
  suite = {"command": " ".join(["python", "benchmarks/gpu_suite.py"]
                               + list(sys.argv[1:] if argv is None else argv)),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "budget_s": args.budget_s, "stage_s": {}}

  t = time.monotonic()
  suite["wheels"] = install_wheels(args, log)
  env = subprocess_env(args)
  paper = None
  if "ptb" in args.stages:
    config = load_ptb_config(args.ptb_config)
    check_ptb_inputs(args, config)
    paper = (config.paper.valid, config.paper.test) if config.get("paper") else None
  if "throughput" in args.stages:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import lm_throughput  # noqa: E402  (after the wheels: it imports ml_collections)
    for c in args.configs:
      if c not in lm_throughput.CONFIGS:
        raise ValueError(f"unknown config {c!r}; valid: {', '.join(lm_throughput.CONFIGS)}")
  suite["stage_s"]["setup"] = time.monotonic() - t
  out.mkdir(parents=True, exist_ok=True)

  ptb_reserve = (args.ptb_reserve_s + args.grace_s + args.finish_s
                 if "ptb" in args.stages else args.finish_s)
  parallel_reserve = args.parallel_s if "parallel" in args.stages else 0.0
  try:  # from here on, what breaks is recorded and the summary still written
    if "throughput" in args.stages:
      t = time.monotonic()
      suite["rows"] = run_rows(args, clock, env, out, ptb_reserve + parallel_reserve)
      suite["stage_s"]["throughput"] = time.monotonic() - t
      suite["device"] = next((r["device"] for r in suite["rows"] if r.get("device")), None)
    if "parallel" in args.stages:
      t = time.monotonic()
      suite["parallel"] = run_parallel(args, clock, env, out, ptb_reserve)
      suite["stage_s"]["parallel"] = (time.monotonic() - t
                                      if suite["parallel"]["status"] != "skipped" else "skipped")
      suite["device"] = suite.get("device") or next(
          (r["device"] for r in suite["parallel"].get("lengths", [])), None)
    if "ptb" in args.stages:
      room = clock.left() - args.finish_s - args.grace_s
      if room < args.ptb_min_s:
        suite["ptb_skipped"] = (f"{max(room, 0):.0f} s left for it, under "
                                f"--ptb_min_s={args.ptb_min_s:.0f}")
        suite["stage_s"]["ptb"] = "skipped"
      else:
        t = time.monotonic()
        suite["ptb"] = run_ptb(args, clock, env, out)
        trim_logs(out)
        tar_workdir(args, suite["ptb"], out)
        suite["stage_s"]["ptb"] = time.monotonic() - t
        suite["device"] = (suite.get("device")
                           or (suite["ptb"].get("results") or {}).get("device"))
  except Exception as e:  # pylint: disable=broad-except
    suite["error"] = f"{type(e).__name__}: {e}"
    log(traceback.format_exc())

  if suite_log:  # pip's output, when the wheels were installed
    (out / "suite.log").write_text("\n".join(suite_log) + "\n")
  trim_logs(out)
  suite["elapsed_s"] = clock.elapsed()
  # summary.md and suite.json are small; count them in before checking.
  (out / "summary.md").write_text(summary_markdown(args, suite, paper))
  suite["files"] = {}
  (out / "suite.json").write_text(json.dumps(suite, indent=1))
  suite["limit_problems"] = check_limits(out)
  suite["files"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
  suite["elapsed_s"] = clock.elapsed()
  summary = summary_markdown(args, suite, paper)
  files = ", ".join(f"{k} ({v / 2**20:.2f} MiB)" for k, v in suite["files"].items())
  summary += (f"\nFiles: {files}. "
              + ("All within what comes back (8 files, 16 MiB each, 64 MiB in all, "
                 "2 folders down)." if not suite["limit_problems"] else
                 "Over the limits of what comes back: " + "; ".join(suite["limit_problems"]))
              + "\n")
  (out / "summary.md").write_text(summary)
  (out / "suite.json").write_text(json.dumps(suite, indent=1))
  print(summary, flush=True)
  return suite


if __name__ == "__main__":
  try:
    result = main()
  except (ValueError, OSError) as e:  # bad input, found before anything ran
    print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
    sys.exit(2)
  sys.exit(1 if result.get("error") else 0)
