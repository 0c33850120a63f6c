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
