"""benchmarks/gpu_suite.py on the CPU: tiny configs, budgets of seconds.

Three runs of the real command: PTB stopped mid-way and tarred; the throughput
row and PTB resumed from that tar to completion; a budget too short for
everything, which must still end in time and say what it skipped. Then, in
process: the limits of what comes back, the offline wheel install, a stage
that breaks.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

import pytest

pytest.importorskip("torch", reason="PyTorch (the [test] extra) is the benchmark's "
                    "other side")

from tests import REPO
SUITE = REPO / "benchmarks" / "gpu_suite.py"
# configs/test.py (synthetic data), long enough that only the suite stops it.
PTB = ["--ptb_config=configs/test.py", "--ptb_override=num_epochs=1000"]
ROW_KEYS = ("ours_tok_s", "torch_tok_s", "ratio", "ours_peak_bytes", "torch_peak_bytes",
            "config", "cell", "dtype", "command")


def load_suite():
  spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_suite(*flags, budget):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  t0 = time.monotonic()
  r = subprocess.run([sys.executable, str(SUITE), f"--budget_s={budget}", "--finish_s=3",
                      *flags], cwd=REPO, env=env, capture_output=True, text=True,
                     timeout=budget + 60)
  wall = time.monotonic() - t0
  assert r.returncode == 0, r.stderr[-2000:]
  return wall, r.stdout


def assert_comes_back(out: pathlib.Path):
  """What the device machine sends back: <= 8 files, <= 16 MiB each, <= 2 folders down."""
  files = [p for p in out.rglob("*") if p.is_file()]
  assert 0 < len(files) <= 8, files
  for p in files:
    assert p.stat().st_size <= 16 * 2**20, p
    assert len(p.relative_to(out).parts) <= 3, p
  assert sum(p.stat().st_size for p in files) <= 64 * 2**20


def table_row(summary: str, first_cell: str) -> list[str]:
  rows = [l for l in summary.splitlines() if l.startswith(f"| {first_cell} ")]
  assert len(rows) == 1, summary
  return [c.strip() for c in rows[0].strip("|").split("|")]


def test_stops_ptb_tars_it_and_resumes_from_the_checkpoint(tmp_path):
  a, b, keep_a, keep_b = (tmp_path / n for n in ("a", "b", "keep_a", "keep_b"))
  # 1. PTB only, stopped by SIGTERM once step 10 is logged.
  run_suite(f"--out={a}", f"--keep_dir={keep_a}", "--stages=ptb", *PTB,
            "--ptb_stop_after_steps=10", "--ptb_min_s=1", "--grace_s=60", budget=240)
  suite_a = json.loads((a / "suite.json").read_text())
  ptb_a = suite_a["ptb"]
  assert ptb_a["status"] == "stopped"
  stopped_at = ptb_a["checkpoint_step"]
  assert stopped_at >= 10 and stopped_at < ptb_a["total_steps"]
  tar = a / "ptb_workdir.tar"
  assert ptb_a["tar"] == str(tar) and tarfile.is_tarfile(tar)
  summary_a = (a / "summary.md").read_text()
  assert table_row(summary_a, "configs/test.py")[1] == "stopped"
  assert f"--resume_from=ptb_workdir.tar {PTB[0]} {PTB[1]}" in summary_a
  assert_comes_back(a)

  # 2. The throughput row, then PTB from the tar (not from a's workdir) to step +5.
  wall, _ = run_suite(
      f"--out={b}", f"--keep_dir={keep_b}", f"--resume_from={tar}",
      "--stages=throughput,ptb", "--configs=tiny",
      "--variants=lstm_f32", "--steps=2", "--warmup=0", "--repeats=1",
      "--ptb_reserve_s=1", "--ptb_min_s=1", "--grace_s=60", *PTB,
      f"--ptb_override=max_steps={stopped_at + 5}", budget=300)
  suite_b = json.loads((b / "suite.json").read_text())
  rows = [json.loads(l) for l in (b / "throughput.jsonl").read_text().splitlines()]
  assert len(rows) == 1 and rows[0]["status"] == "ok"
  for key in ROW_KEYS:
    assert key in rows[0], key
  assert rows[0]["ours_tok_s"] > 0 and rows[0]["torch_tok_s"] > 0
  ptb_b = suite_b["ptb"]
  assert ptb_b["start_step"] == stopped_at
  assert ptb_b["trainer_resumed_at"] == stopped_at  # the trainer's own log line
  assert ptb_b["status"] == "completed" and ptb_b["results"]["steps"] == stopped_at + 5
  summary_b = (b / "summary.md").read_text()
  row = table_row(summary_b, "tiny")
  assert row[1:3] == ["lstm", "float32"] and row[-1] == "ok"
  assert float(row[6]) == pytest.approx(rows[0]["ratio"], abs=0.006)
  ptb_row = table_row(summary_b, "configs/test.py")
  assert ptb_row[1] == "completed"
  assert float(ptb_row[3]) == pytest.approx(ptb_b["results"]["valid_ppl"], abs=0.006)
  assert float(ptb_row[4]) == pytest.approx(ptb_b["results"]["test_ppl"], abs=0.006)
  assert suite_b["limit_problems"] == []
  assert_comes_back(b)
  assert wall < 300


def test_a_short_budget_ends_in_time_and_records_what_it_skipped(tmp_path):
  out, budget = tmp_path / "out", 20
  wall, _ = run_suite(f"--out={out}", f"--keep_dir={tmp_path / 'keep'}",
                      "--stages=throughput,ptb", "--configs=tiny", "--variants=lstm_f32,gru_f32", "--steps=2",
                      "--row_estimate_s=3", "--ptb_reserve_s=4", "--ptb_min_s=1",
                      "--grace_s=2", *PTB, budget=budget)
  assert wall < budget
  suite = json.loads((out / "suite.json").read_text())
  # The trainer had 4 s: SIGTERM by the budget, not SIGKILL at its end.
  assert suite["ptb"]["status"] == "stopped" and suite["ptb"]["sigterm_at_s"] < budget
  rows = [json.loads(l) for l in (out / "throughput.jsonl").read_text().splitlines()]
  assert [r["cell"] for r in rows] == ["lstm", "gru"]
  assert rows[-1]["status"] == "skipped" and "left for rows" in rows[-1]["reason"]
  summary = (out / "summary.md").read_text()
  lines = [l for l in summary.splitlines() if l.startswith("| tiny | ")]
  assert len(lines) == 2 and "| gru |" in lines[1] and "skipped:" in lines[1]
  assert suite["elapsed_s"] < budget
  assert_comes_back(out)


# parallel_scan.py at toy sizes: our GRU and minGRU, PyTorch's GRU.
PARALLEL = ["--parallel_bptt=8,4"] + [f"--parallel_arg=--{flag}" for flag in (
    "hidden=8", "batch=2", "vocab=16", "cells=gru,mingru", "steps=1", "repeats=1",
    "warmup=0")]


def test_the_parallel_stage_measures_every_length_and_the_rows_leave_it_its_time(tmp_path):
  out = tmp_path / "out"
  # The row would leave the parallel stage less than its 140 s: skipped.
  run_suite(f"--out={out}", "--stages=throughput,parallel", "--configs=tiny",
            "--variants=lstm_f32", "--parallel_s=140", *PARALLEL, budget=150)
  suite = json.loads((out / "suite.json").read_text())
  (row,) = suite["rows"]
  assert row["status"] == "skipped" and "left for rows" in row["reason"]
  lines = [json.loads(l) for l in (out / "parallel_scan.jsonl").read_text().splitlines()]
  assert suite["parallel"]["status"] == "ok"
  assert [r["bptt"] for r in lines] == [8, 4] == suite["parallel"]["planned_bptt"]
  summary = (out / "summary.md").read_text()
  for r in lines:
    assert set(r["tok_s"]) == {"gru", "mingru", "torch_gru"}
    assert r["ratio_to_our_gru"]["gru"] == 1.0 and r["tok_s"]["mingru"] > 0
    cells = table_row(summary, str(r["bptt"]))
    assert cells[1:] == [f"{r['tok_s'][n]:,.0f} (x{r['ratio_to_our_gru'][n]:.2f})"
                         for n in ("gru", "mingru", "torch_gru")]
  assert "$ benchmarks/parallel_scan.py --bptt=8,4" in (out / "throughput.log").read_text()
  assert_comes_back(out)


def test_a_parallel_stage_cut_short_says_which_lengths_it_did_not_measure(tmp_path):
  out = tmp_path / "out"
  wall, _ = run_suite(f"--out={out}", "--stages=parallel", "--parallel_s=3",
                      "--parallel_min_s=1", *PARALLEL, budget=60)
  assert wall < 60
  suite = json.loads((out / "suite.json").read_text())
  assert suite["parallel"]["status"] == "timeout" and suite["parallel"]["lengths"] == []
  assert ("Timeout: stopped after 3 s; lengths not measured: 8, 4."
          in (out / "summary.md").read_text())


def test_limits_are_checked_and_a_tar_too_big_stays_behind(tmp_path):
  suite = load_suite()
  out = tmp_path / "out"
  (out / "a" / "b").mkdir(parents=True)
  for i in range(8):
    (out / f"f{i}").write_text("x")
  (out / "a" / "b" / "deep").mkdir()
  (out / "a" / "b" / "deep" / "g").write_text("x")
  (out / "bad name").write_text("x")
  with open(out / "big", "wb") as f:
    f.truncate(17 * 2**20)  # sparse: 17 MiB on paper
  problems = " ; ".join(suite.check_limits(out))
  for expected in ("11 files, over 8", "big: 17.0 MiB", "folders down", "bad name: name"):
    assert expected in problems

  keep = tmp_path / "keep" / suite.WORKDIR_NAME
  keep.mkdir(parents=True)
  (keep / "state").write_bytes(os.urandom(4096))
  small = tmp_path / "small"
  small.mkdir()
  suite.MAX_FILE_BYTES = 2048  # the tar (> 4 KiB) no longer fits
  info = {"workdir": str(keep)}
  suite.tar_workdir(None, info, small)
  assert not (small / suite.TAR_NAME).exists()
  assert info["tar"] == str(keep.parent / suite.TAR_NAME) and "MiB" in info["tar_too_big"]
  with tarfile.open(info["tar"]) as t:
    assert f"{suite.WORKDIR_NAME}/state" in t.getnames()


def make_wheel(folder: pathlib.Path, module: str) -> pathlib.Path:
  """A minimal pure-Python wheel of ``module`` (VALUE = 42), as pip takes it offline."""
  import zipfile
  dist = f"{module}-0.1.dist-info"
  files = {f"{module}/__init__.py": "VALUE = 42\n",
           f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n",
           f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                            "Tag: py3-none-any\n"}
  files[f"{dist}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{dist}/RECORD,,\n"
  path = folder / f"{module}-0.1-py3-none-any.whl"
  with zipfile.ZipFile(path, "w") as z:
    for name, text in files.items():
      z.writestr(name, text)
  return path


def test_missing_packages_are_installed_from_the_wheels_folder_only(tmp_path, monkeypatch):
  suite = load_suite()
  wheels, site = tmp_path / "whl", tmp_path / "site"
  wheels.mkdir()
  make_wheel(wheels, "gpu_suite_probe")
  monkeypatch.setattr(suite, "NEEDED", {"gpu_suite_probe": True})
  monkeypatch.setattr(sys, "path", list(sys.path))
  args = suite.parse_args([f"--out={tmp_path}/o", f"--wheels={wheels}", f"--site={site}"])
  done = suite.install_wheels(args, lambda text: None)
  assert done == {"missing": ["gpu_suite_probe"],
                  "installed": ["gpu_suite_probe-0.1-py3-none-any.whl"]}
  # The subprocesses find it too.
  env = suite.subprocess_env(args)
  r = subprocess.run([sys.executable, "-c", "import gpu_suite_probe as p; print(p.VALUE)"],
                     env=env, capture_output=True, text=True)
  assert r.stdout.strip() == "42", r.stderr
  # Present now: nothing to install.
  assert suite.install_wheels(args, lambda text: None)["missing"] == []
  monkeypatch.setattr(suite, "NEEDED", {"gpu_suite_absent": True})
  with pytest.raises(OSError, match="gpu_suite_absent does not import"):
    suite.install_wheels(args, lambda text: None)


def test_a_stage_that_breaks_is_recorded_and_the_summary_still_written(tmp_path,
                                                                       monkeypatch):
  suite = load_suite()

  def broken(*args):
    raise RuntimeError("the trainer's stage broke")

  monkeypatch.setattr(suite, "run_ptb", broken)
  monkeypatch.setattr(sys, "path", list(sys.path))
  out = tmp_path / "out"
  result = suite.main([f"--out={out}", f"--keep_dir={tmp_path / 'keep'}", "--stages=ptb",
                       *PTB, "--ptb_min_s=0", "--budget_s=60"])
  assert result["error"] == "RuntimeError: the trainer's stage broke"
  assert "broke off**: RuntimeError: the trainer's stage broke" in (
      out / "summary.md").read_text()
  assert "Traceback" in (out / "suite.log").read_text()
  assert json.loads((out / "suite.json").read_text())["error"] == result["error"]
