"""The encoder study: a tiny run of every variant, its result files, the grid,
and bad input (one line, exit status 2, nothing overwritten)."""

import json
import os
import subprocess
import sys

import pytest

from configs import encoders as encoders_config
from rnn_research import checkpoint as ckpt_lib
from rnn_research.data.corpus import DataError
from rnn_research.studies import encoders

from tests import REPO

TREEBANK = """# sent_id = 1
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3-4\tdidn't\t_\t_\t_\t_\t_\t_\t_\t_
3\tdid\tdo\tAUX\tVBD\t_\t0\troot\t_\t_
4\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
5\tbark\tbark\tVERB\tVB\t_\t3\txcomp\t_\t_
5.1\tbark\tbark\tVERB\tVB\t_\t_\t_\t_\t_

1\tCats\tcat\tNOUN\tNNS\t_\t2\tnsubj\t_\t_
2\tsleep\tsleep\tVERB\tVBP\t_\t0\troot\t_\t_
3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

"""
TREES = ("(3 (2 A) (4 (3 lovely) (2 film)))\n(1 (2 A) (0 (0 dull) (2 film)))\n"
         "(4 (4 great) (2 fun))\n(0 (0 awful) (2 .))\n")


def tiny(variant, **changes):
  config = encoders_config.get_config(variant)
  config.model.hidden_size = 4
  config.model.embed_size = 4
  config.model.char_embed_size = 3
  config.model.char_hidden_size = 2
  # One batch per split: one compiled shape for training and few for evaluation.
  config.batch_size = 64
  config.eval_batch_size = 64
  config.num_epochs = 2
  config.max_steps = 2
  config.eval_every_steps = 0
  config.log_every_steps = 1
  config.directions = "bi"
  config.cells = "lstm"
  config.data.min_count = 1
  for key, value in changes.items():
    node = config
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return config


def _treebank(directory, name="xx_tiny"):
  directory.mkdir(parents=True, exist_ok=True)
  for split in ("train", "dev", "test"):
    (directory / f"{name}-ud-{split}.conllu").write_text(TREEBANK, encoding="utf-8")
  return directory


def _sst(directory):
  directory.mkdir(parents=True, exist_ok=True)
  for name in ("train.txt", "dev.txt", "test.txt"):
    (directory / name).write_text(TREES, encoding="utf-8")
  return directory


def test_the_synthetic_test_config_trains_the_grid_and_writes_every_file(tmp_path, monkeypatch):
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  workdir = tmp_path / "run"
  config = tiny("test", directions="uni,bi")
  results = encoders.train_and_evaluate(config, str(workdir))
  stored = json.loads((workdir / "results.json").read_text())
  assert [(r["cell"], r["direction"], r["num_layers"]) for r in stored["runs"]] == [
      ("lstm", "uni", 1), ("lstm", "bi", 1)]
  for run in stored["runs"]:
    assert set(run) >= {"cell", "direction", "num_layers", "dev_accuracy",
                        "test_accuracy", "params", "train_seconds"}
    assert 0 <= run["test_accuracy"] <= 1 and run["params"] > 0
  uni, bi = stored["runs"]
  assert bi["params"] > uni["params"]  # a second direction's weights
  assert 0.8 < stored["left_to_right_cap"] < 1  # the exact cap of these test sentences
  assert stored == json.loads(json.dumps(results))
  md = (workdir / "results.md").read_text()
  assert "| cell | direction | layers | dev acc % | test acc % | params | train s |" in md
  assert "best left-to-right tagger" in md
  assert (workdir / "accuracy.png").stat().st_size > 1000
  assert {json.loads(line)["run"] for line in
          (workdir / "metrics.jsonl").read_text().splitlines()
          if "run" in json.loads(line)} == {"lstm-uni-1", "lstm-bi-1"}
  # A rerun reuses the finished runs: the same figures, no training logged again.
  before = (workdir / "metrics.jsonl").read_text()
  again = encoders.train_and_evaluate(config, str(workdir))
  assert again["runs"] == results["runs"]
  assert (workdir / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("variant, changes, classes", [
    ("ud_upos", {}, 6),  # words + characters on any *-ud-*.conllu treebank
    ("sst2", {}, 2),
    ("sst5", {"model.pooling": "attention"}, 5),
    ("synthetic", {"data.task": "classification", "data.num_train": 30,
                   "data.num_valid": 10, "data.num_test": 10, "cells": "gru"}, 2),
])
def test_a_tiny_version_of_each_variant_runs(tmp_path, monkeypatch, variant, changes, classes):
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  if variant == "ud_upos":
    changes = {"data.dir": str(_treebank(tmp_path / "some_treebank"))}
  elif variant.startswith("sst"):
    changes = {**changes, "data.dir": str(_sst(tmp_path / "sst"))}
  results = encoders.train_and_evaluate(tiny(variant, **changes), str(tmp_path / "run"))
  assert len(results["classes"]) == classes
  (run,) = results["runs"]
  assert run["direction"] == "bi" and 0 <= run["test_accuracy"] <= 1
  if variant == "ud_upos":
    assert results["data"]["test"] == 8  # syntactic words: ranges and empty nodes skipped
    assert results["anchors"][0]["accuracy"] == 94.6
  if variant == "sst2":  # all phrases of the training trees, test sentences only
    assert results["data"]["train_examples"] == 10 and results["data"]["test"] == 4


def test_grid_is_cells_by_layers_by_directions():
  config = encoders_config.get_config("synthetic")
  config.cells, config.num_layers = "lstm,gru", "1,2"
  assert encoders.grid(config) == [
      ("lstm", "uni", 1), ("lstm", "bi", 1), ("lstm", "uni", 2), ("lstm", "bi", 2),
      ("gru", "uni", 1), ("gru", "bi", 1), ("gru", "uni", 2), ("gru", "bi", 2)]


def _bad(tmp_path, case):
  """(config, expected message) of one kind of bad input."""
  if case == "conllu_line":
    d = _treebank(tmp_path / "tb")
    (d / "xx_tiny-ud-dev.conllu").write_text(TREEBANK.replace("2\tsleep", "2\tsleep\tX"))
    return tiny("ud_upos", **{"data.dir": str(d)}), r"xx_tiny-ud-dev.conllu:11: expected 10"
  if case == "tree_line":
    d = _sst(tmp_path / "sst")
    (d / "test.txt").write_text(TREES + "(3 (2 unclosed)\n")
    return tiny("sst2", **{"data.dir": str(d)}), r"test.txt:5: malformed tree"
  if case == "empty_split":
    d = _treebank(tmp_path / "tb")
    (d / "xx_tiny-ud-test.conllu").write_text("# nothing\n")
    return tiny("ud_upos", **{"data.dir": str(d)}), r"xx_tiny-ud-test.conllu: no sentences"
  if case == "tag_column":
    d = _treebank(tmp_path / "tb")
    return (tiny("ud_upos", **{"data.dir": str(d), "data.tag_column": "feats"}),
            r"config.data.tag_column: unknown tag column 'feats'; valid: upos, xpos")
  d = tmp_path / "tsv"
  d.mkdir()
  for name in ("train.tsv", "dev.tsv", "test.tsv"):
    (d / name).write_text("1\tgood film\n0\tbad film\n")
  (d / "dev.tsv").write_text("1\tgood film\njust one field\n")
  return (tiny("sst2", **{"data.source": "tsv", "data.dir": str(d)}),
          r"dev.tsv:2: expected LABEL<TAB>TEXT")


BAD = ("conllu_line", "tree_line", "empty_split", "tag_column", "tsv_one_field")


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, case):
  config, message = _bad(tmp_path, case)
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "results.json").write_text('{"earlier": true}')
  with pytest.raises(ValueError, match=message):
    encoders.train_and_evaluate(config, str(workdir))
  assert sorted(p.name for p in workdir.iterdir()) == ["results.json"]
  assert (workdir / "results.json").read_text() == '{"earlier": true}'


def test_main_prints_one_error_line_and_exits_2(tmp_path):
  d = _treebank(tmp_path / "tb")
  (d / "xx_tiny-ud-train.conllu").write_text(TREEBANK.replace("1\tCats", "one\tCats"))
  env = dict(os.environ, MPLCONFIGDIR=str(tmp_path / "mpl"), JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "experiments.encoders", "--config=configs/encoders.py:ud_upos",
       f"--config.data.dir={d}", f"--workdir={tmp_path / 'run'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr
  lines = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "xx_tiny-ud-train.conllu:10: ID must be an integer" in lines[0]
  assert not (tmp_path / "run").exists()


def test_a_source_reading_files_needs_a_directory():
  config = encoders_config.get_config("sst2")
  config.data.dir = ""
  with pytest.raises(ValueError, match="config.data.dir = '' but config.data.source = 'sst'"):
    encoders.train_and_evaluate(config, "/nonexistent/never-written")
  with pytest.raises(DataError, match="is not a directory"):
    encoders.load_examples(tiny("sst2", **{"data.dir": "/nonexistent/sst"}))


def test_a_signal_stops_the_grid_without_results_and_the_rerun_finishes_it(
    tmp_path, monkeypatch, preempt_after):
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  workdir = tmp_path / "run"
  config = tiny("test", directions="uni")
  with preempt_after(0):  # a SIGTERM that arrived before the first step
    stopped = encoders.train_and_evaluate(config, str(workdir))
  assert stopped == {"preempted": True, "run": stopped["run"]}
  assert not (workdir / "results.json").exists()
  assert (workdir / "checkpoints" / stopped["run"] / "latest").is_dir()
  results = encoders.train_and_evaluate(config, str(workdir))
  assert [r["direction"] for r in results["runs"]] == ["uni"]
  assert (workdir / "results.json").exists()


# Each parallel cell once, bidirectional, as a tagger (the synthetic tagging
# task) or as a sentence classifier, under its registered name.
@pytest.mark.parametrize("variant, cells", [("test", "lru"), ("sst2", "mingru,minlstm")])
def test_the_parallel_cells_run_by_name_as_tagger_and_classifier(tmp_path, monkeypatch,
                                                                variant, cells):
  monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
  directions = "bi"
  data = {"data.dir": str(_sst(tmp_path / "sst"))} if variant == "sst2" else {}
  config = tiny(variant, **data, cells=cells, directions=directions)
  results = encoders.train_and_evaluate(config, str(tmp_path / "run"))
  assert [(r["cell"], r["direction"]) for r in results["runs"]] == [
      (c, d) for c in cells.split(",") for d in directions.split(",")]
  for run in results["runs"]:
    assert 0 <= run["test_accuracy"] <= 1 and run["params"] > 0
