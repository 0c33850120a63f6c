"""benchmarks/lm_throughput.py runs end to end and ends with its JSON line."""

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("torch", reason="PyTorch (the [test] extra) is the benchmark's "
                    "other side")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "lm_throughput.py"


def load_script():
  spec = importlib.util.spec_from_file_location("lm_throughput", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_tiny_config_prints_json_line_with_both_sides(capsys):
  bench = load_script()
  result = bench.main(["--config=tiny", "--cell=lstm", "--steps=2", "--warmup=0",
                       "--repeats=1", "--json"])
  last = capsys.readouterr().out.strip().splitlines()[-1]
  record = json.loads(last)
  assert record == json.loads(json.dumps(result))
  for key in ("ours_tok_s", "torch_tok_s", "ratio"):
    assert record[key] > 0, key
  assert record["ratio"] == pytest.approx(record["ours_tok_s"] / record["torch_tok_s"])
  # The same model on the same batches: both losses near log(vocab) = log(50).
  assert abs(record["ours_loss"] - record["torch_loss"]) < 0.5
