"""rnn_research/checkpoint.py: save and restore, a step saved twice, damage, misfits."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_research import checkpoint as ckpt_lib


def _state(scale=1.0):
  return {"w": np.arange(6, dtype=np.float32).reshape(2, 3) * scale,
          "step": np.array(7, np.int32), "nested": {"b": np.ones(4, np.float32) * scale}}


def _assert_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_restore_returns_what_was_saved_into_the_targets_structure(tmp_path):
  ck = ckpt_lib.Checkpointer(tmp_path / "c")
  ck.save(3, _state(), {"step": 3, "history": [1.5]})
  ck.wait()
  state, meta, step = ck.restore(_state(scale=0.0))
  _assert_equal(state, _state())
  assert (meta, step) == ({"step": 3, "history": [1.5]}, 3)
  assert ck.read_meta(3) == meta
  _assert_equal(ck.read_state(3), _state())
  ck.close()


def test_a_step_saved_twice_keeps_the_first_and_only_the_newest_are_kept(tmp_path):
  ck = ckpt_lib.Checkpointer(tmp_path / "c", max_to_keep=2)
  ck.save(1, _state(1.0), {"step": 1})
  ck.save(1, _state(5.0), {"step": 1, "again": True})  # ignored: step 1 exists
  for step in (2, 3):
    ck.save(step, _state(float(step)), {"step": step})
  ck.wait()
  assert ck.steps() == [2, 3] and ck.latest_step() == 3
  ck.close()
  ck = ckpt_lib.Checkpointer(tmp_path / "d")
  ck.save(1, _state(1.0), {"step": 1})
  ck.save(1, _state(5.0), {"step": 1, "again": True})
  ck.wait()
  state, meta, _ = ck.restore(_state())
  _assert_equal(state, _state(1.0))
  assert meta == {"step": 1}
  ck.close()


def test_a_damaged_newest_checkpoint_falls_back_and_is_removed(tmp_path, caplog):
  ck = ckpt_lib.Checkpointer(tmp_path / "c")
  ck.save(1, _state(1.0), {"step": 1})
  ck.save(2, _state(2.0), {"step": 2})
  ck.wait()
  for f in (tmp_path / "c" / "2" / "state").rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  with caplog.at_level(logging.WARNING):
    state, _, step = ck.restore(_state())
  assert step == 1
  _assert_equal(state, _state(1.0))
  assert ck.steps() == [1]  # step 2 can be saved again by the resumed run
  assert any("could not be read" in r.getMessage() for r in caplog.records)
  ck.close()


def test_another_shape_is_a_checkpoint_error_naming_the_folder(tmp_path):
  ck = ckpt_lib.Checkpointer(tmp_path / "c")
  ck.save(1, _state(), {"step": 1})
  ck.wait()
  # A target of JAX arrays, as the trainers pass (orbax checks shapes
  # against those; a NumPy target is restored as stored, whatever its shape).
  other = jax.tree.map(jnp.asarray, dict(_state(), w=np.zeros((3, 3), np.float32)))
  with pytest.raises(ckpt_lib.CheckpointError,
                     match=r"c/1 does not fit this config: Requested shape: \(3, 3\)"):
    ck.restore(other)
  ck.close()


def test_an_empty_folder_has_no_checkpoint_to_restore(tmp_path):
  ck = ckpt_lib.Checkpointer(tmp_path / "c")
  assert ck.steps() == [] and ck.latest_step() is None
  with pytest.raises(ckpt_lib.CheckpointError, match="no checkpoint in"):
    ck.restore(_state())
  ck.close()


def test_describe_mismatch_names_the_first_differing_leaf():
  shapes = lambda tree: jax.tree.map(lambda x: f"{np.shape(x)} {np.asarray(x).dtype}", tree)
  assert ckpt_lib.describe_mismatch(shapes(_state()), shapes(_state())) is None
  other = dict(_state(), w=np.zeros((3, 3), np.float32))
  text = ckpt_lib.describe_mismatch(shapes(_state()), shapes(other))
  assert text.startswith("['w']") and "(2, 3)" in text and "(3, 3)" in text
