"""Each gradient study end to end on the tiny config, plus the report page."""

import json
import math
import subprocess
import sys
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import gradients as gradients_config
from rnn_research import report
from rnn_research.studies import gradients

from tests import REPO


@pytest.fixture(autouse=True)
def _matplotlib_cache(tmp_path_factory, monkeypatch):
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mpl")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Runs a variant once per module; tests share the workdirs."""
  done = {}

  def get(variant):
    if variant not in done:
      config = gradients_config.get_config("test")
      config.variant = variant
      workdir = tmp_path_factory.mktemp(variant)
      results = gradients.run(config, str(workdir))
      done[variant] = (workdir, results)
    return done[variant]

  return get


def _common_files(workdir, results, figure):
  on_disk = json.loads((workdir / "results.json").read_text())
  assert on_disk["variant"] == results["variant"]
  assert json.loads((workdir / "config.json").read_text())["variant"] == results["variant"]
  assert (workdir / figure).stat().st_size > 1000
  assert f"]({figure})" in (workdir / "results.md").read_text()
  return on_disk


def test_get_config_knows_every_variant_and_lists_them_for_an_unknown_one():
  for variant in gradients_config.STUDIES:
    assert gradients_config.get_config(variant).variant == variant
  with pytest.raises(ValueError, match="spectral, cells, long_range, clipping, depth"):
    gradients_config.get_config("spectra")


def test_spectral_identity_slopes_are_log_rho_and_tanh_stays_below(runs):
  workdir, results = runs("spectral")
  on_disk = _common_files(workdir, results, "spectral.png")
  slopes = on_disk["slopes"]
  assert {tuple(sorted(s)) for s in slopes} >= {
      ("activation", "max_singular_value", "measured_slope", "rho", "theory_slope")}
  assert {(s["activation"], s["rho"]) for s in slopes} == {
      (a, r) for a in ("identity", "tanh") for r in (0.5, 1.1)}
  for s in slopes:
    assert s["theory_slope"] == pytest.approx(math.log(s["rho"]))
    if s["activation"] == "identity":
      assert s["measured_slope"] == pytest.approx(s["theory_slope"], abs=1e-4)
    else:
      assert s["measured_slope"] <= s["theory_slope"] + 1e-6


def test_cells_compares_gated_cells_with_elman_at_init_and_after_training(runs):
  workdir, results = runs("cells")
  on_disk = _common_files(workdir, results, "cells.png")
  stages = {(r["cell"], r["stage"]) for r in on_disk["rows"]}
  assert stages == {(c, s) for c in ("rnn_tanh", "lstm") for s in ("init", "trained")}
  elman_init = next(r for r in on_disk["rows"] if r == {**r, "cell": "rnn_tanh", "stage": "init"})
  assert elman_init["spectral_radius"] == pytest.approx(0.9, abs=1e-5)
  ref = str(on_disk["reference_distance"])
  for stage in ("init", "trained"):
    ratio = on_disk["ratio_to_elman_at_reference"][stage]["lstm"]
    rows = {r["cell"]: r for r in on_disk["rows"] if r["stage"] == stage}
    assert ratio == pytest.approx(rows["lstm"]["norm_at"][ref] / rows["rnn_tanh"]["norm_at"][ref])
  assert (workdir / "runs" / "lstm" / "results.json").exists()  # a real training run
  assert all(len(c["mean_norm"]) == 12 for c in on_disk["curves"])


def test_long_range_reports_error_against_t_per_task_and_model_with_curves(runs):
  workdir, results = runs("long_range")
  on_disk = _common_files(workdir, results, "long_range.png")
  assert on_disk["tasks"] == ["adding", "copy", "recall"]
  assert on_disk["models"] == {"adding": ["lstm/chrono"], "copy": ["lstm/chrono"],
                               "recall": ["rnn_relu/identity"]}
  assert on_disk["train_steps"] == {"adding": 3, "copy": 3, "recall": 3}
  by_task = {r["task"]: r for r in on_disk["rows"]}
  assert len(on_disk["rows"]) == 3
  for task, row in by_task.items():
    assert row["T"] == 3 and len(row["error_by_seed"]) == on_disk["seeds"] == 2
    assert row["error"] == pytest.approx(np.mean(row["error_by_seed"]))
    assert row["solved"] == all(row["solved_by_seed"])
    assert 0 < row["grad_share_init"] and 0 < row["grad_share_final"]
    assert row["curve"]["step"] == [1, 2, 3] and len(row["curve"]["loss"]) == 3
  assert by_task["adding"]["accuracy"] is None
  assert by_task["adding"]["baseline"] == pytest.approx(1 / 6)
  assert by_task["copy"]["seq_len"] == 23
  assert by_task["copy"]["baseline"] == pytest.approx(10 * math.log(8) / 23)
  # Each seed's recall accuracy counts right answers among the evaluation items.
  eval_size = gradients_config.get_config("test").long_range.eval_size
  assert all(a * eval_size == pytest.approx(round(a * eval_size))
             for a in by_task["recall"]["accuracy_by_seed"])
  # The initialisations reach the cells: chrono's T_max is the sequence length.
  assert by_task["adding"]["cell_options"] == {"chrono_t_max": 3.0}
  assert by_task["recall"]["cell_options"] == {"recurrent_kernel_init": "identity"}
  assert set(on_disk["longest_solved"]) == {"adding", "copy", "recall"}
  # Learning curves in metrics.jsonl, and each run's row for a resume.
  logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [m for m in logged if m["split"] == "train" and m["task"] == "adding"]
  assert [m["step"] for m in train] == [1, 2, 3]
  assert len(train[0]["loss_by_seed"]) == 2
  assert sum(m["split"] == "eval" for m in logged) == 3
  md = (workdir / "results.md").read_text()
  assert "| baseline | 0.167 | - |" in md and "## copy" in md


def test_long_range_default_and_full_grids_are_valid_plans():
  default = gradients._long_range_plan(gradients_config.get_config("long_range"))
  full = gradients._long_range_plan(gradients_config.get_config("long_range_full"))
  assert {(task.name, cell, init) for task, cell, init, _ in default} == {
      (t, c, i) for t in ("adding", "copy", "recall") for c, i in (
          ("rnn_tanh", "default"), ("rnn_relu", "identity"), ("lstm", "default"),
          ("lstm", "chrono"), ("gru", "chrono"))}
  assert sorted({t for *_, t in full}) == [10, 20, 50, 100, 200, 500]


def test_long_range_rerun_keeps_finished_runs(runs):
  workdir, first = runs("long_range")
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  again = gradients.run(config, str(workdir))
  assert again["rows"] == json.loads(json.dumps(first["rows"]))  # not retrained
  logged = (workdir / "metrics.jsonl").read_text().splitlines()
  assert sum('"split": "eval"' in line for line in logged) == 3


def test_a_process_whose_cpu_time_stands_still_is_killed():
  start = time.monotonic()
  status = gradients.run_watched([sys.executable, "-c", "import time; time.sleep(60)"],
                                 stall_seconds=2, poll_seconds=0.2)
  assert status is None and time.monotonic() - start < 30


def test_a_busy_process_is_not_taken_for_a_stalled_one():
  busy = "import time\nend = time.time() + 6\nwhile time.time() < end: pass"
  assert gradients.run_watched([sys.executable, "-c", busy], stall_seconds=4,
                               poll_seconds=0.2) == 0


def test_long_range_restarts_a_stalled_training_process_and_keeps_finished_runs(
    runs, tmp_path, monkeypatch):
  _, reference = runs("long_range")  # trained by a watched process that did not stall
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  workdir = tmp_path / "run"
  real, calls = gradients.run_watched, []

  def stall_once(command, stall_seconds, env=None, poll_seconds=1.0):
    calls.append(command)
    if len(calls) > 1:
      return real(command, stall_seconds, env, poll_seconds)
    # What a process killed in its second run leaves: the first run's lines
    # and the start of the second's.
    with open(workdir / "metrics.jsonl", "w") as f:
      f.write(json.dumps({"step": 3, "split": "eval", "task": "adding",
                          "model": "lstm/chrono", "T": 3, "row": reference["rows"][0]}) + "\n")
      f.write(json.dumps({"step": 1, "split": "train", "task": "copy",
                          "model": "lstm/chrono", "T": 3, "loss": 9.0}) + "\n")
    return None

  monkeypatch.setattr(gradients, "run_watched", stall_once)
  results = gradients.run(config, str(workdir))
  assert len(calls) == 2
  timeless = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
  assert results["rows"][0] == json.loads(json.dumps(reference["rows"][0]))  # kept
  assert timeless(results["rows"]) == timeless(json.loads(json.dumps(reference["rows"])))
  logged = gradients.metrics_lib.read_metrics(workdir)
  assert not [m for m in logged if m.get("loss") == 9.0]  # the stalled run's line is gone
  assert sum(m["split"] == "eval" for m in logged) == 3
  assert [m["step"] for m in logged if m["split"] == "train" and m["task"] == "copy"] == [1, 2, 3]


def test_long_range_keeps_restarting_while_the_restarts_finish_runs(runs, tmp_path,
                                                                   monkeypatch):
  _, reference = runs("long_range")
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  workdir = tmp_path / "run"
  real, calls = gradients.run_watched, []

  def stall_between_runs(command, stall_seconds, env=None, poll_seconds=1.0):
    """Odd calls stall at once; even ones finish the next run, then stall."""
    calls.append(command)
    done = len(calls) // 2
    if done > len(reference["rows"]):
      return real(command, stall_seconds, env, poll_seconds)  # nothing left to train
    if len(calls) % 2 == 0:
      row = reference["rows"][done - 1]
      with open(workdir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "split": "eval", "task": row["task"],
                            "model": row["model"], "T": row["T"], "row": row}) + "\n")
    return None

  monkeypatch.setattr(gradients, "run_watched", stall_between_runs)
  monkeypatch.setattr(gradients, "STALL_RESTARTS", 1)  # 2 stalls in a row would end it
  results = gradients.run(config, str(workdir))
  assert len(calls) == 2 * len(reference["rows"]) + 2  # the last one trains nothing
  assert results["rows"] == json.loads(json.dumps(reference["rows"]))


@pytest.mark.parametrize("status, message", [
    (None, "stalled 11 times in a row without finishing a run"), (1, "exit status 1")])
def test_long_range_gives_up_on_a_process_that_keeps_stalling_or_fails(
    tmp_path, monkeypatch, status, message):
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  calls = []
  monkeypatch.setattr(gradients, "run_watched", lambda *a, **k: calls.append(a) or status)
  with pytest.raises(RuntimeError, match=message):
    gradients.run(config, str(tmp_path / "run"))
  assert len(calls) == (gradients.STALL_RESTARTS + 1 if status is None else 1)


def _lru_moduli(model) -> np.ndarray:
  """|lambda| = exp(-exp(nu)) of the one LRU layer of an initialised ``model``."""
  params = model.init(jax.random.key(0), jnp.zeros((1, 1, 2)))["params"]
  (nu_log,) = [v for k, v in flax.traverse_util.flatten_dict(params).items()
               if k[-1] == "nu_log"]
  return np.exp(-np.exp(np.asarray(nu_log)))


def test_lru_ring_puts_every_eigenvalue_modulus_on_the_long_range_ring():
  cell, init = gradients.parse_model("lru/ring")
  options = gradients.init_options(cell, init, 23)
  assert options == {"r_min": 0.9, "r_max": 0.999} == gradients.LRU_RING
  modulus = _lru_moduli(
      gradients.SequenceModel(1, cell=cell, hidden_size=64, cell_options=options))
  assert modulus.shape == (64,)
  assert 0.9 <= modulus.min() and modulus.max() <= 0.999
  # The cell's own default, the whole disc, puts most of them well inside 0.9.
  default = _lru_moduli(gradients.SequenceModel(1, cell=cell, hidden_size=64))
  assert np.mean(default < 0.9) > 0.5


@pytest.mark.parametrize("field, value, message", [
    ("tasks", "adding,copying", "long_range.tasks = 'adding,copying': unknown task "
     "'copying'; valid: adding, copy, recall"),
    ("adding.lengths", "1", "long_range.adding.lengths = '1': item '1' is not valid; "
     "valid: comma-separated items, each an integer >= 2"),
    ("copy.lengths", "ten", "long_range.copy.lengths.*'ten'"),
    ("recall.lengths", "5,0", "long_range.recall.lengths = '5,0': item '0' is not valid"),
    ("models", "lstm/warp", "unknown initialisation 'warp'"),
    ("models", "rnn_tanh/chrono", "cell 'rnn_tanh'.*chrono_t_max"),
    ("models", "gru/ring", "cell 'gru'.*r_min"),
])
def test_long_range_refuses_a_bad_task_length_or_model_before_training(tmp_path, field,
                                                                       value, message):
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  section, _, name = field.rpartition(".")
  (config.long_range[section] if section else config.long_range)[name] = value
  with pytest.raises(ValueError, match=message):
    gradients.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # nothing written, not even config.json


@pytest.mark.parametrize("options, models, message", [
    ({"glu": True}, "lru/ring,lstm", "config.long_range.cell_options: cell 'lstm' has no "
     "option 'glu'; its options: .* \\(model 'lstm'\\)"),
    ({"glu": "yes"}, "lru", "config.long_range.cell_options.glu = 'yes' is not valid"),
    ({"r_min": 0.5}, "lru/ring", "config.long_range.cell_options sets r_min, which model "
     "'lru/ring' sets itself"),
])
def test_long_range_refuses_cell_options_a_model_cannot_take(tmp_path, options, models,
                                                             message):
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  config.long_range.models = models
  config.long_range.recall.models = ""
  config.long_range.cell_options = options
  with pytest.raises(ValueError, match=message):
    gradients.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_long_range_trains_a_residual_stack_with_the_cell_options(tmp_path):
  config = gradients_config.get_config("test")
  config.variant = "long_range"
  config.long_range.tasks = "adding"
  config.long_range.models = "lru/ring"
  config.long_range.num_layers = 2
  config.long_range.connection = "residual"
  config.long_range.cell_options = {"glu": True}
  results = gradients.run(config, str(tmp_path))
  (row,) = results["rows"]
  assert row["cell_options"] == {**gradients.LRU_RING, "glu": True}
  assert (row["num_layers"], row["connection"]) == (2, "residual")
  hidden = config.long_range.hidden_size
  model = gradients.SequenceModel(1, cell="lru", hidden_size=hidden, num_layers=2,
                                  connection="residual", cell_options=row["cell_options"])
  params = model.init(jax.random.key(0), jnp.zeros((1, 1, 2)))["params"]
  assert row["num_params"] == sum(x.size for x in jax.tree.leaves(params))
  one_layer = gradients.SequenceModel(1, cell="lru", hidden_size=hidden,
                                      cell_options=gradients.LRU_RING)
  one = one_layer.init(jax.random.key(0), jnp.zeros((1, 1, 2)))["params"]
  assert row["num_params"] > 2 * sum(x.size for x in jax.tree.leaves(one))  # 2 layers, mixers
  assert np.isfinite(row["error"]) and 0 < row["grad_share_init"]
  md = (tmp_path / "results.md").read_text()
  assert (f"2 recurrent layers (residual connection) of {hidden} units with cell options "
          "r_min=0.9, r_max=0.999, glu=True") not in md  # the study's options, not the init's
  assert f"2 recurrent layers (residual connection) of {hidden} units with cell options glu=True" in md


def test_main_says_a_bad_length_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.vanishing_gradients",
       "--config=configs/gradients.py:test", "--config.variant=long_range",
       "--config.long_range.adding.lengths=1", f"--workdir={tmp_path}"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert errors == ["error: config.long_range.adding.lengths = '1': item '1' is not valid; "
                    "valid: comma-separated items, each an integer >= 2 (at least one)"], (
                        proc.stderr[-500:])
  assert not (tmp_path / "results.json").exists()


def test_clipping_bounds_every_step_by_learning_rate_times_threshold(runs):
  workdir, results = runs("clipping")
  on_disk = _common_files(workdir, results, "clipping.png")
  assert (workdir / "surface.npz").exists()
  lr, clip = on_disk["learning_rate"], on_disk["clip_norm"]
  clipped = [r for r in on_disk["runs"] if r["clip_norm"] > 0]
  unclipped = [r for r in on_disk["runs"] if r["clip_norm"] == 0]
  assert len(clipped) == len(unclipped) == 1
  # The test config starts on the cliff: the gradient exceeds the threshold,
  # so without clipping a step is longer than lr * clip and with it never.
  (c,), (u,) = clipped, unclipped
  assert max(u["grad_norms"]) > 5 * clip and u["max_step"] > 5 * lr * clip
  assert c["max_step"] == pytest.approx(lr * clip, rel=1e-5)  # the clipped first step
  for r in on_disk["runs"]:
    assert len(r["trajectory"]) == on_disk["steps"] + 1
    assert len(r["grad_norms"]) == on_disk["steps"]


def test_depth_reports_perplexity_and_bottom_layer_gradient(runs):
  workdir, results = runs("depth")
  on_disk = _common_files(workdir, results, "depth.png")
  (row,) = on_disk["rows"]
  assert (row["layers"], row["connection"]) == (2, "highway")
  # 3 steps from a uniform(-0.1, 0.1) start: still about the perplexity of a
  # uniform guess, the vocabulary size (91 measured, 79 words).
  vocab = len(json.loads(next(workdir.rglob("vocab.json")).read_text())["tokens"])
  assert 0.5 * vocab < row["valid_ppl"] < 2 * vocab
  assert row["bottom_grad_init"] > 0 and row["bottom_grad_trained"] > 0
  assert len(row["grad_by_layer_trained"]) == 2
  assert "| 2 | highway |" in (workdir / "results.md").read_text()


def test_report_collects_workdirs_into_one_page_with_working_links(runs, tmp_path):
  spectral, _ = runs("spectral")
  clipping, _ = runs("clipping")
  output = tmp_path / "page" / "report.md"
  page = report.collect([str(spectral), str(clipping)], output)
  assert output.read_text() == page
  assert "identity: largest abs(measured slope - log(rho))" in page
  assert "final loss clipped" in page
  links = [line[line.index("](") + 2:-1] for line in page.splitlines() if line.startswith("![")]
  assert len(links) == 2
  for link in links:
    assert (output.parent / link).resolve().exists(), link
  with pytest.raises(FileNotFoundError, match="results.json"):
    report.collect([str(tmp_path)], tmp_path / "x.md")


def test_main_refuses_an_unknown_variant_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.vanishing_gradients",
       "--config=configs/gradients.py:nope", f"--workdir={tmp_path}"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "unknown gradients variant 'nope'" in proc.stderr
  assert not (tmp_path / "results.json").exists()


def test_a_workdir_of_another_study_is_refused_and_left_alone(runs):
  workdir, _ = runs("spectral")
  before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
  config = gradients_config.get_config("test")
  config.variant = "clipping"
  with pytest.raises(ValueError, match="holds another run"):
    gradients.run(config, str(workdir))
  assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == before


def test_spectral_lru_slopes_are_log_of_the_eigenvalue_modulus(runs):
  workdir, results = runs("spectral")
  on_disk = json.loads((workdir / "results.json").read_text())
  assert [s["modulus"] for s in on_disk["lru_slopes"]] == [0.5, 0.9]
  for s in on_disk["lru_slopes"]:
    assert s["theory_slope"] == pytest.approx(math.log(s["modulus"]))
    assert s["max_modulus"] == pytest.approx(s["modulus"], rel=1e-6)
    assert s["measured_slope"] == pytest.approx(s["theory_slope"], abs=0.02)
  assert "theory log|lambda|" in (workdir / "results.md").read_text()


def test_cells_study_probes_the_linear_recurrence_cells(tmp_path):
  config = gradients_config.get_config("test")
  config.variant = "cells"
  config.cells.cells = "rnn_tanh,mingru,minlstm,lru"
  config.cells.train = False
  results = gradients.run(config, str(tmp_path))
  rows = {r["cell"]: r for r in results["rows"]}
  assert rows["mingru"]["spectral_radius"] is None  # no recurrent matrix
  assert 0.0 < rows["lru"]["spectral_radius"] < 1.0  # max |lambda|
  for cell in ("mingru", "minlstm", "lru"):
    assert all(v is not None and v > 0 for v in rows[cell]["norm_at"].values())
  assert set(results["ratio_to_elman_at_reference"]["init"]) == {"mingru", "minlstm", "lru"}
