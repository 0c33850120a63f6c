"""metrics: perplexity of a diverged model, and its JSON."""

import json
import math

import pytest

from rnn_research import metrics


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
