"""rnn_research/metrics.py: JSON-safe values, atomic files, metrics.jsonl, tables, progress."""

import json
import logging
import math

import numpy as np
import pytest

from rnn_research import metrics


def test_jsonable_turns_numpy_and_non_finite_values_into_json():
  value = {1: np.float32(0.5), "a": (np.int64(3), [float("nan"), -math.inf]),
           "b": {"c": np.array(2.0)}}
  out = metrics.jsonable(value)
  assert out == {"1": 0.5, "a": [3, ["nan", "-inf"]], "b": {"c": 2.0}}
  assert type(out["a"][0]) is int
  json.dumps(out, allow_nan=False)  # strictly valid JSON


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "sub" / "results.json"
  metrics.write_json(path, {"b": 1, "a": float("inf")})
  metrics.atomic_write(path, "replaced\n")
  assert path.read_text() == "replaced\n"
  assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]
  metrics.write_json(path, {"b": 1, "a": float("inf")})
  assert json.loads(path.read_text()) == {"a": "inf", "b": 1}
  assert path.read_text().index('"a"') < path.read_text().index('"b"')  # sorted keys


def test_metric_writer_appends_records_and_a_disabled_one_writes_nothing(tmp_path):
  writer = metrics.MetricWriter(tmp_path / "run", tensorboard=False)
  writer.write(5, "train", loss=np.float32(2.5), skipped=0)
  writer.close()
  writer = metrics.MetricWriter(tmp_path / "run", tensorboard=False)  # a resumed run appends
  writer.write(10, "valid", ppl=float("nan"))
  writer.close()
  assert metrics.read_metrics(tmp_path / "run") == [
      {"step": 5, "split": "train", "loss": 2.5, "skipped": 0},
      {"step": 10, "split": "valid", "ppl": "nan"}]
  assert not (tmp_path / "run" / "tensorboard").exists()
  idle = metrics.MetricWriter(tmp_path / "other", enabled=False)  # a non-primary host
  idle.write(1, "train", loss=1.0)
  idle.close()
  assert not (tmp_path / "other").exists()
  assert metrics.read_metrics(tmp_path / "other") == []


def test_keep_metrics_drops_what_a_resumed_run_logs_again(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(
      "".join(json.dumps({"step": s, "split": "train"}) + "\n" for s in (2, 4, 6)) + "\n")
  metrics.keep_metrics(tmp_path, lambda r: r["step"] <= 4)
  assert [r["step"] for r in metrics.read_metrics(tmp_path)] == [2, 4]
  before = (tmp_path / "metrics.jsonl").stat().st_mtime_ns
  metrics.keep_metrics(tmp_path, lambda r: True)  # nothing to drop: left as it is
  assert (tmp_path / "metrics.jsonl").stat().st_mtime_ns == before
  metrics.keep_metrics(tmp_path / "none", lambda r: False)  # no file yet: nothing to do
  assert not (tmp_path / "none").exists()


def test_markdown_table_shows_floats_with_four_significant_digits():
  table = metrics.markdown_table(["model", "ppl"], [["a", 118.3612], ["b", 7]])
  assert table.splitlines() == ["| model | ppl |", "|---|---|", "| a | 118.4 |", "| b | 7 |"]


def test_progress_logs_at_most_every_interval_and_always_at_the_end(caplog):
  progress = metrics.Progress(total_steps=10, every_s=3600)
  with caplog.at_level(logging.INFO):
    progress.update(2, 100.0, "first")
    progress.update(5, 100.0, "middle")  # within the interval: silent
    progress.update(10, 250.0, "last")
  lines = [r.getMessage() for r in caplog.records if "step " in r.getMessage()]
  assert len(lines) == 1 and "step 10/10 (100%)" in lines[0] and "250 tok/s" in lines[0]


@pytest.mark.parametrize("seconds, text", [(59.9, "0m59s"), (61, "1m01s"),
                                           (3725, "1h02m"), (float("nan"), "?")])
def test_format_seconds(seconds, text):
  assert metrics._format_seconds(seconds) == text



def test_perplexity_is_inf_where_exp_overflows_and_nan_stays_nan():
  assert metrics.perplexity(math.log(120.0)) == pytest.approx(120.0)
  assert metrics.perplexity(metrics.MAX_LOG_PERPLEXITY - 1) < math.inf
  assert metrics.perplexity(1e6) == math.inf  # math.exp raises OverflowError here
  assert metrics.perplexity(math.inf) == math.inf
  assert math.isnan(metrics.perplexity(math.nan))


def test_inf_perplexity_is_written_as_valid_json(tmp_path):
  metrics.write_json(tmp_path / "r.json", {"valid_ppl": metrics.perplexity(1e6)})
  strict = json.loads((tmp_path / "r.json").read_text(),
                      parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
  assert strict == {"valid_ppl": "inf"}
