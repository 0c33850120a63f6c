"""Data parallelism over 4 simulated CPU devices gives the single-device run."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from rnn_research import parallel

REPO = pathlib.Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from configs import test as test_config
    from rnn_research import checkpoint, train
    assert jax.device_count() == 4, jax.devices()
    out = {}
    for name, dp in (("one", False), ("four", True)):
      c = test_config.get_config()
      c.num_epochs = 1
      c.data.num_train_sentences = 120
      c.data.num_valid_sentences = 20
      c.data.num_test_sentences = 20
      c.data.batch_size = 8
      c.model.hidden_size = 8
      c.data_parallel = dp
      workdir = f"{sys.argv[1]}/{name}"
      results = train.train_and_evaluate(c, workdir)
      ck = checkpoint.Checkpointer(workdir + "/checkpoints/latest")
      params = ck.read_state(ck.latest_step())["params"]
      out[name] = {"valid_ppl": results["valid_ppl"], "test_ppl": results["test_ppl"],
                   "params": [np.asarray(x).tolist() for x in jax.tree.leaves(params)],
                   "losses": [r["loss"] for r in map(json.loads, open(workdir + "/metrics.jsonl"))
                              if r["split"] == "train"]}
    print("RESULT" + json.dumps(out))
""")


def test_four_device_data_parallel_matches_one_device(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
  out = json.loads(line[len("RESULT"):])
  one, four = out["one"], out["four"]
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
  assert four["valid_ppl"] == pytest.approx(one["valid_ppl"], rel=1e-5)
  assert four["test_ppl"] == pytest.approx(one["test_ppl"], rel=1e-5)
  for a, b in zip(four["params"], one["params"]):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_batch_not_divisible_by_devices_is_refused():
  mesh = parallel.make_mesh(jax.devices()[:1] * 1)
  parallel.check_divisible(mesh, 3)  # one device divides everything
  fake = type("M", (), {"devices": np.zeros(4)})()
  with pytest.raises(ValueError, match="batch size 6 is not divisible by the 4 devices"):
    parallel.check_divisible(fake, 6)


def test_shard_batch_splits_the_leading_axis():
  mesh = parallel.make_mesh()
  x = parallel.shard_batch(mesh, np.arange(8 * 3).reshape(8, 3))
  assert x.sharding.spec == jax.sharding.PartitionSpec(parallel.AXIS)
  np.testing.assert_array_equal(np.asarray(x), np.arange(24).reshape(8, 3))
