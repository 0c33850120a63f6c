"""experiments/evaluate.py: the best checkpoint's perplexity as JSON, nothing written."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests import REPO


def run_main(*flags):
  return subprocess.run([sys.executable, "-m", "experiments.evaluate", *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def _snapshot(workdir):
  return {p: p.stat().st_mtime_ns for p in pathlib.Path(workdir).rglob("*") if p.is_file()}


def test_own_splits_and_another_folder_match_the_run_and_write_nothing(tiny_lm_run, tmp_path):
  workdir, results = tiny_lm_run
  for split in ("train", "valid", "test"):  # another corpus, one word unseen
    (tmp_path / f"{split}.txt").write_text("the dog sees the cats\nzebra walks\n")
  before = _snapshot(workdir)
  proc = run_main(f"--workdir={workdir}", "--split=valid,test", "--bptt=50")
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout)
  assert out["valid"]["ppl"] == pytest.approx(results["valid_ppl"], rel=1e-6)
  assert out["test"]["ppl"] == pytest.approx(results["test_ppl"], rel=1e-6)
  other = run_main(f"--workdir={workdir}", f"--data_dir={tmp_path}", "--split=test")
  assert other.returncode == 0, other.stderr[-2000:]
  test = json.loads(other.stdout)["test"]
  assert test["tokens"] == 9 and test["oov_rate"] == pytest.approx(1 / 9)
  assert _snapshot(workdir) == before


def test_unknown_split_gives_one_error_line_and_exit_2(tiny_lm_run):
  workdir, _ = tiny_lm_run
  proc = run_main(f"--workdir={workdir}", "--split=dev")
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "dev" in errors[0], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
