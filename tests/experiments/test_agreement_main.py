"""The agreement study end to end: the tiny config, the absl main's one-line
error for malformed data, and the language-model evaluation on files in the
Gulordava et al. and minimal-pair formats."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from configs import agreement as agreement_config
from rnn_research.studies import agreement
from rnn_research.data.corpus import DataError, Vocab
from rnn_research.models import LanguageModel

from tests import REPO


def run_main(tmp_path, *flags):
  env = dict(os.environ, MPLCONFIGDIR=str(tmp_path / "mpl"), JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "experiments.agreement", *flags],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_study_on_the_test_config_writes_every_result_file(tmp_path,
                                                              monkeypatch):
  # In-process (the main only forwards to train_and_evaluate): no second JAX
  # start-up, and compilations are shared with the other tests.
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  workdir = tmp_path / "run"
  agreement.train_and_evaluate(agreement_config.get_config("test"), str(workdir))
  results = json.loads((workdir / "results.json").read_text())
  assert results["cell"] == "lstm"
  assert set(results["error_by_attractors"]) == {"0", "1", "2", "3", "4"}
  for entry in results["error_by_attractors"].values():
    assert set(entry) == {"error", "count"} and entry["count"] == 10
  assert results["count"] == 50
  # The overall error is the item-weighted mean of the per-attractor errors.
  by = results["error_by_attractors"].values()
  assert results["error"] == pytest.approx(
      sum(e["error"] * e["count"] for e in by) / sum(e["count"] for e in by))
  assert set(results["error_by_distance"]) == {"1", "3"}
  md = (workdir / "results.md").read_text()
  assert "| attractors | items | lstm error |" in md
  assert (workdir / "error_by_attractors.png").stat().st_size > 1000
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["cell"] == "lstm"
  splits = {json.loads(l)["split"] for l in
            (workdir / "metrics.jsonl").read_text().splitlines()}
  assert {"train", "valid", "test"} <= splits
  # The trainer's files: the cell's checkpoints and, with tensorboardX, events.
  assert sorted(p.name for p in (workdir / "checkpoints" / "lstm").iterdir()) == [
      "best", "latest"]
  if importlib.util.find_spec("tensorboardX"):
    assert any((workdir / "tensorboard" / "train").iterdir())


def test_main_reports_a_malformed_line_by_file_and_line(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  (data / "numpred.val").write_text("VBZ\tthe dog\nVBZ the dog\n")
  (data / "numpred.test.1").write_text("VBP\tthe dogs near the cat\n")
  proc = run_main(tmp_path, "--config=configs/agreement.py:linzen",
                  f"--config.data.dir={data}", f"--workdir={tmp_path / 'run'}")
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and f"{data / 'numpred.val'}:2:" in last


# --- language-model agreement from files --------------------------------------


@pytest.fixture
def lm_files(tmp_path):
  (tmp_path / "s.text").write_text(
      "the dog runs . <eos>\nthe dogs near the cat run . <eos>\n"
      "the dog near the cats runs . <eos>\nthe wug runs . <eos>\n")
  (tmp_path / "s.gold").write_text(
      "2\truns\trun\t0\n5\trun\truns\t1\n5\truns\trun\t1\n2\truns\tblicks\t0\n")
  (tmp_path / "pairs.tsv").write_text(
      "simple\tthe dog runs\tthe dog run\n"
      "across_pp\tthe dogs near the cat run\tthe dogs near the cat runs\n"
      "across_pp\tthe dog near the cats runs\tthe dog near the cats run\n")
  return tmp_path


def lm_config(files, **data):
  config = agreement_config.get_config("lm")
  config.lm_workdir = str(files)
  config.eval_batch_size = 8
  config.data.update(data)
  return config


@pytest.fixture
def fake_restore(monkeypatch):
  """A freshly initialised tiny LM where the study would restore a trained one.

  Its ``cell_options`` is a dict, as in a restored config: the model is then
  unhashable and cannot be a static argument of ``jax.jit``.
  """
  vocab = Vocab.build("<eos> the dog dogs runs run near cat cats .".split())
  model = LanguageModel(vocab_size=len(vocab), cell="lstm", hidden_size=8,
                        num_layers=1, cell_options={"forget_bias": 0.0})
  params = jax.jit(model.init)(jax.random.key(0),
                               jnp.zeros((1, 2), jnp.int32))["params"]
  monkeypatch.setattr(agreement, "load_language_model",
                      lambda workdir: (model, params, vocab))


def test_lm_task_scores_gulordava_files_and_minimal_pairs(lm_files, fake_restore):
  config = lm_config(lm_files, text=str(lm_files / "s.text"),
                     gold=str(lm_files / "s.gold"),
                     minimal_pairs=str(lm_files / "pairs.tsv"))
  workdir = lm_files / "run"
  agreement.train_and_evaluate(config, str(workdir))
  results = json.loads((workdir / "results.json").read_text())
  gul = results["sets"]["gulordava"]
  assert gul["skipped_oov"] == 1  # 'blicks' is not in the vocabulary
  assert {k: v["count"] for k, v in results["error_by_attractors"].items()} == {
      "0": 1, "1": 2}
  assert results["count"] == 3
  mp = results["minimal_pairs"]
  assert mp["count"] == 3
  assert {k: v["count"] for k, v in mp["by_condition"].items()} == {
      "simple": 1, "across_pp": 2}
  md = (workdir / "results.md").read_text()
  assert "Minimal pairs" in md and "gulordava error" in md


def test_lm_task_rejects_a_malformed_gold_line_before_loading_the_model(tmp_path):
  (tmp_path / "s.text").write_text("the dog runs\nthe dog runs\n")
  (tmp_path / "s.gold").write_text("2\truns\trun\t0\n2\truns\n")
  config = lm_config(tmp_path, text=str(tmp_path / "s.text"),
                     gold=str(tmp_path / "s.gold"))
  with pytest.raises(DataError, match=r"s\.gold:2:"):
    agreement.train_and_evaluate(config, str(tmp_path / "run"))


def _figures(workdir):
  results = json.loads((workdir / "results.json").read_text())
  for cell in results["cells"].values():
    del cell["train_seconds"]  # wall-clock time: the only field allowed to differ
  return results


def _metric_rows(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


class _Batches(list):
  """An epoch's batches that record which are fetched and may raise at one."""

  def __init__(self, batches, first, fetched, crash_at=None):
    super().__init__(batches)
    self.first, self.fetched, self.crash_at = first, fetched, crash_at

  def __getitem__(self, i):
    if self.first + i == self.crash_at:
      raise _Stop
    self.fetched.append(self.first + i)
    return super().__getitem__(i)


class _Stop(Exception):
  pass


def _watch_fit(monkeypatch, crash_cell=None, crash_at=None):
  """Wraps supervised.fit: {cell: batches fetched}; ``crash_cell`` dies
  fetching batch ``crash_at`` (a process killed there)."""
  from rnn_research.studies import supervised
  real, fetched = supervised.fit, {}

  def fit(workdir, *, train_batches, log_fields, **kwargs):
    cell = log_fields["cell"]
    seen = fetched.setdefault(cell, [])
    crash = crash_at if cell == crash_cell else None
    batches = lambda epoch: _Batches(b := train_batches(epoch), epoch * len(b), seen, crash)
    return real(workdir, train_batches=batches, log_fields=log_fields, **kwargs)

  monkeypatch.setattr(supervised, "fit", fit)
  return fetched


def test_a_stopped_cell_resumes_from_its_checkpoint_and_the_study_ends_the_same(
    tmp_path, monkeypatch):
  """Three epochs of 10 batches. Elman dies fetching its batch 23 (epoch 3;
  checkpoint at 21, metrics logged to 22): the rerun reuses LSTM's figures,
  resumes Elman at step 21, drops the logged step 22, and ends with the
  figures and metrics.jsonl of a run that never stopped.

  Catches: the cell retrained from its start (batches 0-20 fetched again);
  metrics.jsonl not trimmed (step 22 logged twice); an epoch's order drawn
  from a generator carried across epochs (the resumed process draws epoch
  3's order second, after the count of epoch 1's batches)."""
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  config = agreement_config.get_config("test")
  config.update(cells="lstm,elman", num_epochs=3, max_steps=24, eval_every_steps=4,
                checkpoint_every_steps=3, log_every_steps=2)
  agreement.train_and_evaluate(config, str(tmp_path / "whole"))

  fetched = _watch_fit(monkeypatch, crash_cell="elman", crash_at=23)
  workdir = tmp_path / "stopped"
  with pytest.raises(_Stop):
    agreement.train_and_evaluate(config, str(workdir))
  assert fetched["elman"] == list(range(23))
  assert max(r["step"] for r in _metric_rows(workdir) if r.get("cell") == "elman") == 22
  assert (workdir / "cells" / "lstm.json").exists()
  assert not (workdir / "cells" / "elman.json").exists()

  monkeypatch.undo()
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  fetched = _watch_fit(monkeypatch)
  agreement.train_and_evaluate(config, str(workdir))
  assert fetched == {"elman": [21, 22, 23]}  # lstm reused, elman resumed at 21
  assert _figures(workdir) == _figures(tmp_path / "whole")
  assert _metric_rows(workdir) == _metric_rows(tmp_path / "whole")

  config.seed = 1  # another run: refused, nothing touched
  before = (workdir / "results.json").read_text()
  with pytest.raises(ValueError, match="holds another run"):
    agreement.train_and_evaluate(config, str(workdir))
  assert (workdir / "results.json").read_text() == before


def test_other_data_under_the_same_workdir_is_refused_before_anything_is_written(
    tmp_path, monkeypatch):
  """A workdir whose vocab.json the data no longer gives (a run on other
  data): one-line error before config.json, metrics or checkpoints are written.

  Catches: the stored vocabulary not compared (the run trains over it)."""
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  workdir = tmp_path / "run"
  workdir.mkdir()
  Vocab.build("the dog dogs runs".split()).to_json(workdir / "vocab.json")
  before = (workdir / "vocab.json").read_bytes()
  with pytest.raises(ValueError, match=r"^vocabulary mismatch: .*vocab.json has \d+ types"):
    agreement.train_and_evaluate(agreement_config.get_config("test"), str(workdir))
  assert [p.name for p in workdir.iterdir()] == ["vocab.json"]
  assert (workdir / "vocab.json").read_bytes() == before
