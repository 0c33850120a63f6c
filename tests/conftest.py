"""Shared test fixtures."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("RNN_RESEARCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
  """The real PTB / Linzen et al. files; skip where a fresh clone lacks them."""
  if not (SHARED_DATA / "ptb" / "ptb.train.txt").exists():
    pytest.skip(f"real data not found at {SHARED_DATA} "
                "(set RNN_RESEARCH_SHARED_DATA to the shared/data folder)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lm_run(tmp_path_factory):
  """(workdir, results) of one uninterrupted run of the trainer tests' tiny
  config, shared by every module that only reads a trained workdir."""
  from rnn_research.studies import lm
  from tests.studies.test_lm import tiny_config
  workdir = tmp_path_factory.mktemp("tiny_lm")
  return workdir, lm.train_and_evaluate(tiny_config(), str(workdir))
