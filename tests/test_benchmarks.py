"""The benchmarks run end to end and end with their JSON lines."""

import importlib.util
import json
import pathlib
import sys

import pytest

pytest.importorskip("torch", reason="PyTorch (the [test] extra) is the benchmark's "
                    "other side")

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name="lm_throughput"):
  if str(BENCHMARKS) not in sys.path:  # matmul_floor imports lm_throughput
    sys.path.insert(0, str(BENCHMARKS))
  spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module  # dataclasses (flax modules) look their module up
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
  # The same weights on both sides: the first step's loss and gradients were
  # compared before timing, and the first timed step's losses agree.
  assert record["check_loss_rel_diff"] <= bench.LOSS_RTOL
  assert record["check_grad_rel_diff"] <= bench.GRAD_RTOL
  assert record["torch_first_loss"] == pytest.approx(record["ours_first_loss"], rel=1e-5)
  # The row names its processor.
  assert record["processor"] == bench.processor()


# Two logical CPUs of /proc/cpuinfo, abridged: a Xeon with AMX and an EPYC with AVX2.
XEON_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512dq avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx fma avx2 avx512f avx512dq avx512_bf16 amx_bf16 amx_tile amx_int8
"""
EPYC_CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx fma avx2 vaes

processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx fma avx2 vaes
"""


def test_processor_model_and_isa_flags_are_read_from_cpuinfo():
  bench = load_script()
  xeon = bench.parse_cpuinfo(XEON_CPUINFO)
  assert xeon["model"] == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
  assert xeon["logical_cpus"] == 2
  assert xeon["isa"] == {"avx512f": True, "avx512_bf16": True, "amx_bf16": True,
                         "amx_tile": True, "avx2": True, "fma": True}
  epyc = bench.parse_cpuinfo(EPYC_CPUINFO)
  assert epyc["model"] == "AMD EPYC 7B13"
  assert epyc["isa"] == {"avx512f": False, "avx512_bf16": False, "amx_bf16": False,
                         "amx_tile": False, "avx2": True, "fma": True}
  # A flag is a whole word: avx512f is not found inside avx512fp16.
  assert not bench.parse_cpuinfo("flags : avx512fp16 avx2\n")["isa"]["avx512f"]
  assert bench.parse_cpuinfo("") == {"model": None, "logical_cpus": None,
                                     "isa": dict.fromkeys(bench.ISA_FLAGS, False)}


def test_both_sides_compute_the_same_first_step_for_the_gru():
  """The GRU's sign-flipped update gate and its b_hn, where PyTorch's two
  bias vectors do not simply add: the same first-step loss and gradients."""
  bench = load_script()
  cell = "gru"
  args = bench.parse_args(["--config=tiny", f"--cell={cell}"])
  config = bench.make_config(args)
  batches = bench.random_batches(config, 50)
  ours = bench.Ours(config, 50, batches)
  torch_side = bench.Torch(config, 50, batches, cell, "float32")
  torch_side.load_weights(ours.initial_params, cell, config.model.num_layers)
  check = bench.check_same_computation(config, 50, ours, torch_side, batches[0], cell)
  assert check["check_loss_rel_diff"] <= bench.LOSS_RTOL
  assert check["check_grad_rel_diff"] <= bench.GRAD_RTOL


def test_sides_that_compute_different_things_get_no_ratio(capsys, monkeypatch):
  """Catches: a benchmark that times two different models (here PyTorch's
  copy of one recurrent weight is off by 1%) and still reports a ratio."""
  bench = load_script()
  to_torch = bench.interop.to_torch

  def slightly_wrong(*args, **kwargs):
    state = to_torch(*args, **kwargs)
    state["weight_hh_l1"] = state["weight_hh_l1"] * 1.01
    return state

  monkeypatch.setattr(bench.interop, "to_torch", slightly_wrong)
  with pytest.raises(SystemExit) as exit_info:
    bench.main(["--config=tiny", "--cell=lstm", "--steps=1", "--warmup=0", "--repeats=1",
                "--json"])
  assert exit_info.value.code == 2
  out, err = capsys.readouterr()
  assert "ratio" not in out and "{" not in out  # no JSON line, no figures
  assert "error: the two sides do not compute the same" in err and "no ratio" in err


def test_matmul_floor_times_the_step_products_beside_both_steps(capsys):
  floor = load_script("matmul_floor")
  result = floor.main(["--config=tiny", "--cell=gru", "--steps=1", "--repeats=3", "--json"])
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record == json.loads(json.dumps(result))
  for key in ("floor_ms", "torch_floor_ms", "step_ms", "torch_step_ms"):
    assert record[key] > 0, key
  # The bound uses the faster library's products.
  best = min(record["floor_ms"], record["torch_floor_ms"])
  assert record["max_ratio"] == pytest.approx(record["torch_step_ms"] / best)
  # tiny: batch 4, BPTT 5, hidden 16, vocabulary 50, 2 layers, 3 GRU gates.
  n, h, g = 4 * 5, 16, 3 * 16
  assert record["gflop"] * 1e9 == pytest.approx(2 * (3 * n * h * 50 + 2 * 6 * n * h * g))


@pytest.mark.parametrize("variant", ["per_step_weight_grad", "autodiff_products",
                                     "flax_dropout"])
def test_ab_step_times_the_default_against_a_variant_of_the_same_step(variant, capsys):
  ab = load_script("ab_step")
  result = ab.main(["--config=tiny", f"--variant={variant}", "--steps=1",
                    "--repeats=2"])
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record == json.loads(json.dumps(result))
  assert record["default_ms"] > 0 and record["variant_ms"] > 0
  # The same computation up to float rounding: the same training losses.
  assert record["variant_loss"] == pytest.approx(record["default_loss"], rel=1e-5)


def test_step_scripts_take_the_shakespeare_experiment_config_with_any_cell():
  """ab_step and profile_step: --config=shakespeare_feng is configs/shakespeare.py:feng."""
  import argparse
  from configs import shakespeare
  lt = load_script()
  p = argparse.ArgumentParser()
  lt.add_config_args(p)
  config, vocab = lt.config_and_vocab(p, p.parse_args(["--config=shakespeare_feng",
                                                       "--cell=minlstm"]))
  assert vocab == 65
  assert config.to_dict() == shakespeare.get_config("feng,minlstm").to_dict()
  with pytest.raises(SystemExit):  # PyTorch's side has no minLSTM: a PTB size refuses it
    lt.config_and_vocab(p, p.parse_args(["--config=zaremba_small", "--cell=minlstm"]))


def test_profile_assigns_each_instruction_to_its_part_of_the_step():
  """op_name metadata of the compiled Zaremba-small and Shakespeare-feng steps -> its row."""
  profile = load_script("profile_step")
  step = "jit(train_step)/"
  bwd = step + "transpose(jvp(LanguageModel))/"
  loop = "rnn/layer_1/layer_1._hoisted/"
  cases = {
      bwd + "softmax/dot_general": "softmax products (logits, dh, dW)",
      step + "jvp(LanguageModel)/softmax/add": "softmax bias (add, gradient)",
      step + "jvp()/exp": "cross-entropy (log-softmax, its gradient)",
      step + "jvp(LanguageModel)/" + loop + "jvp()/while/body/closed_call/cell.recurrent/"
      "dot_general": "recurrent loop, forward: products",
      step + "jvp(LanguageModel)/" + loop + "jvp()/while/body/closed_call/"
      "cell.step_from_product/tanh": "recurrent loop, forward: gates, bookkeeping",
      bwd + loop + "transpose(jvp())/while/body/closed_call/cell.recurrent/"
      "dot_general": "recurrent loop, backward: products",
      bwd + loop + "transpose(jvp())/while/body/closed_call/cell.step_from_product/mul":
      "recurrent loop, backward: gates, bookkeeping",
      bwd + "rnn/layer_1/cell.project_inputs/input/dot_general":
      "recurrent layers outside the loops (input projections, hoisted dW, transposes)",
      bwd + "embed/jit(_take)/scatter-add": "embedding (gather, scatter-add gradient)",
      step + "reduce_sum": "gradient norm, clipping, SGD update, non-finite guard",
      "": "copies without metadata (layout, donation)",
      # configs/shakespeare.py:feng's minGRU and minLSTM step
      step + "jvp(LanguageModel)/rnn/dropout/concatenate":
      "dropout (masks and their application, both directions)",
      bwd + "dropout/div": "dropout (masks and their application, both directions)",
      step + "jvp(LanguageModel)/rnn/layer_1/layer_1._parallel/cell.coefficients/"
      "jit(softplus)/log1p": "linear recurrences: coefficients a_t, b_t, readout, their gradients",
      bwd + "rnn/layer_0/layer_0._parallel/cell.readout/mul":
      "linear recurrences: coefficients a_t, b_t, readout, their gradients",
      bwd + "rnn/layer_0/layer_0._parallel/concatenate":
      "linear recurrences: the chunked scan, forward and backward",
  }
  assert set(cases.values()) == set(profile.CATEGORIES)
  for op_name, want in cases.items():
    assert profile.category(op_name) == want, op_name
  # Self time: a loop's body events are not counted twice.
  events = [{"ph": "X", "name": "while.1", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
            {"ph": "X", "name": "dot.1", "ts": 2, "dur": 3, "pid": 1, "tid": 1},
            {"ph": "X", "name": "dot.1", "ts": 6, "dur": 3, "pid": 1, "tid": 1},
            {"ph": "X", "name": "copy.1", "ts": 20, "dur": 4, "pid": 1, "tid": 2}]
  assert profile.self_times(events, {"while.1", "dot.1", "copy.1"}) == {
      "while.1": 4, "dot.1": 6, "copy.1": 4}
  assert profile.busy_time(events, {"while.1", "dot.1", "copy.1"}) == 14


def test_profile_of_the_tiny_step_attributes_the_time(capsys):
  profile = load_script("profile_step")
  result = profile.main(["--config=tiny", "--steps=2", "--warmup=1"])
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record == json.loads(json.dumps(result))
  assert record["ms"]["softmax products (logits, dh, dW)"] > 0
  assert record["ms"]["recurrent loop, forward: products"] > 0
  assert record["instructions_ms"] == pytest.approx(sum(record["ms"].values()))
  assert 0 < record["busy_ms"] <= record["wall_ms"]


def test_parallel_scan_benchmark_reports_ratios_to_our_gru(capsys):
  bench = load_script("parallel_scan")
  (result,) = bench.main(["--bptt=6", "--cells=gru,mingru", "--batch=2", "--hidden=8",
                          "--vocab=20", "--steps=1", "--warmup=0", "--repeats=1",
                          "--json"])
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record == json.loads(json.dumps(result))
  assert set(record["tok_s"]) == {"gru", "mingru", "torch_gru"}
  assert record["ratio_to_our_gru"]["gru"] == 1.0
  assert record["ratio_to_our_gru"]["mingru"] == pytest.approx(
      record["tok_s"]["mingru"] / record["tok_s"]["gru"])


def test_parallel_scan_benchmark_runs_the_dtype_it_names_and_records_the_processor():
  """--dtype=bfloat16 reaches both sides' models: each loss differs from the
  float32 run's on the same batches (in the third decimal or so)."""
  bench = load_script("parallel_scan")
  flags = ["--bptt=6", "--cells=gru,mingru", "--batch=2", "--hidden=8", "--vocab=20",
           "--steps=1", "--warmup=0", "--repeats=1"]
  (f32,) = bench.main(flags)
  (bf16,) = bench.main(flags + ["--dtype=bfloat16"])
  assert (f32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")
  for side in ("gru", "mingru", "torch_gru"):
    assert bf16["loss"][side] != f32["loss"][side], side
    assert bf16["loss"][side] == pytest.approx(f32["loss"][side], rel=0.05), side
  assert bf16["processor"]["logical_cpus"] >= 1 and bf16["processor"]["model"]


def test_loop_product_times_the_recurrent_loop_per_size_batch_and_dtype(capsys):
  bench = load_script("loop_product")
  flags = ["--hidden=8,16", "--batch=1,3", "--dtype=float32,bfloat16", "--steps=4",
           "--repeats=2", "--json"]
  results = bench.main(flags)
  lines = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
  assert lines == json.loads(json.dumps(results))
  assert [(r["hidden"], r["batch"], r["dtype"]) for r in results] == [
      (h, b, d) for h in (8, 16) for b in (1, 3) for d in ("float32", "bfloat16")]
  for r in results:
    assert len(r["us_per_step_all"]) == 2 and r["us_per_step"] > 0
    itemsize = 4 if r["dtype"] == "float32" else 2
    assert r["matrix_bytes"] == 3 * r["hidden"] ** 2 * itemsize
    assert r["gb_s"] == pytest.approx(r["matrix_bytes"] / r["us_per_step"] / 1e3)
    assert r["gflop_s"] == pytest.approx(
        2 * r["batch"] * 3 * r["hidden"] ** 2 / r["us_per_step"] / 1e3)
    assert r["processor"] == bench.lt.processor()
    assert r["command"] == " ".join(["python", "benchmarks/loop_product.py"] + flags)


def test_loop_product_runs_the_cells_recurrent_product():
  bench = load_script("loop_product")
  import jax
  import jax.numpy as jnp
  import numpy as np
  h = jax.random.normal(jax.random.key(1), (2, 4))
  kernel = jax.random.normal(jax.random.key(2), (4, 12))
  got = bench.loop(4, 3, None)(h, kernel)
  want = np.asarray(h)
  for _ in range(3):  # the loop's equation, step by step in NumPy
    r = want @ np.asarray(kernel)
    want = np.tanh(r[:, :4] + r[:, 4:8] * r[:, 8:])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flag, message", [
    ("--hidden=0", "must be positive"), ("--batch=a", "comma-separated integers"),
    ("--dtype=float16", "--dtype takes float32 and bfloat16")])
def test_loop_product_rejects_bad_flags(flag, message, capsys):
  bench = load_script("loop_product")
  with pytest.raises(SystemExit) as e:
    bench.main([flag])
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_provenance_names_the_command_that_reruns_a_measurement(monkeypatch):
  lt = load_script()
  monkeypatch.setattr(sys, "argv", ["benchmarks/parallel_scan.py", "--bptt=512", "--batch=1"])
  from_shell = lt.provenance("parallel_scan.py")
  assert from_shell["command"] == "python benchmarks/parallel_scan.py --bptt=512 --batch=1"
  from_python = lt.provenance("parallel_scan.py", ["--bptt=35"])
  assert from_python["command"] == "python benchmarks/parallel_scan.py --bptt=35"
  assert from_python["processor"] == lt.processor() and from_python["versions"] == lt.versions()
  assert from_python["date"][:4].isdigit()
