"""Data parallelism over 4 simulated CPU devices gives the single-device run."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from rnn_research import parallel

from tests import REPO

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from rnn_research import checkpoint
    from rnn_research.studies import lm
    from tests.test_parallel import small_config
    assert jax.device_count() == 4, jax.devices()
    # How the step's arguments are laid out over the devices, as the compiled
    # step sees them (inspect_array_sharding reports at compile time).
    layouts = {}
    make_train_step = lm.make_train_step

    def inspecting_make_train_step(*args):
      step = make_train_step(*args)

      def inspected(state, inputs, targets, key):
        arrays = {"inputs": inputs, "targets": targets,
                  "carry": jax.tree.leaves(state.carries)[0],
                  "param": jax.tree.leaves(state.params)[0]}
        for name, x in arrays.items():
          jax.debug.inspect_array_sharding(x, callback=lambda s, name=name, shape=x.shape:
              layouts.__setitem__(name, {"devices": len(s.device_set),
                                         "shard_shape": list(s.shard_shape(shape)),
                                         "shape": list(shape)}))
        return step(state, inputs, targets, key)

      return inspected

    lm.make_train_step = inspecting_make_train_step
    out = {}
    for name, dp in (("one", False), ("four", True)):
      c = small_config()
      c.data_parallel = dp
      workdir = f"{sys.argv[1]}/{name}"
      layouts.clear()
      results = lm.train_and_evaluate(c, workdir)
      ck = checkpoint.Checkpointer(workdir + "/checkpoints/latest")
      params = ck.read_state(ck.latest_step())["params"]
      out[name] = {"valid_ppl": results["valid_ppl"], "test_ppl": results["test_ppl"],
                   "params": [np.asarray(x).tolist() for x in jax.tree.leaves(params)],
                   "losses": [r["loss"] for r in map(json.loads, open(workdir + "/metrics.jsonl"))
                              if r["split"] == "train"],
                   "layouts": dict(layouts)}
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def one_and_four_devices(tmp_path_factory):
  """The same run on one device and data-parallel over 4 simulated CPU devices."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path_factory.mktemp("dp"))],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
  return json.loads(line[len("RESULT"):])


def test_four_device_data_parallel_matches_one_device(one_and_four_devices):
  one, four = one_and_four_devices["one"], one_and_four_devices["four"]
  np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
  assert four["valid_ppl"] == pytest.approx(one["valid_ppl"], rel=1e-5)
  assert four["test_ppl"] == pytest.approx(one["test_ppl"], rel=1e-5)
  for a, b in zip(four["params"], one["params"]):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_data_parallel_splits_the_batch_and_replicates_the_parameters(one_and_four_devices):
  """Catches: data_parallel ignored (no mesh built): the step would then see
  every array whole on one device, and the run above would still match."""
  four, one = one_and_four_devices["four"]["layouts"], one_and_four_devices["one"]["layouts"]
  batch = small_config().data.batch_size
  for name in ("inputs", "targets", "carry"):  # batch axis first, split 4 ways
    assert four[name]["shape"][0] == batch, name
    assert four[name]["devices"] == 4, name
    assert four[name]["shard_shape"] == [batch // 4] + four[name]["shape"][1:], name
  assert four["param"]["devices"] == 4
  assert four["param"]["shard_shape"] == four["param"]["shape"]  # a full copy on each
  for name, layout in one.items():  # without data_parallel: one device, whole arrays
    assert layout["devices"] == 1 and layout["shard_shape"] == layout["shape"], name


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


_WORKER = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from rnn_research import parallel
    workdir = sys.argv[1]
    parallel.initialize_distributed()  # JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID
    assert jax.process_count() == 2 and jax.device_count() == 4
    from rnn_research.studies import lm
    from tests.test_parallel import small_config
    c = small_config()
    c.data_parallel = True
    r = lm.train_and_evaluate(c, workdir)
    print("RESULT", r["valid_ppl"], r["test_ppl"], flush=True)
    jax.distributed.shutdown()
""")


def small_config():
  """The trainer tests' tiny run, one epoch, batch 8 (divisible by 4 devices)."""
  from tests.studies.test_lm import tiny_config
  return tiny_config(**{"num_epochs": 1, "data.batch_size": 8})


def test_two_processes_on_localhost_match_one_process(tmp_path):
  """Multi-host data parallelism through jax.distributed, with gloo CPU
  collectives, each process set up from the environment variables alone.

  Catches: initialize_distributed not reading the environment (each process
  would then run alone on its 2 devices)."""
  import socket
  from rnn_research.studies import lm
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "multi")],
                              cwd=REPO, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              env=dict(env, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                       JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
             for i in range(2)]
  outs = [w.communicate(timeout=600) for w in workers]
  for w, (out, err) in zip(workers, outs):
    assert w.returncode == 0, err[-3000:]
  figures = [tuple(map(float, next(l for l in out.splitlines()
                                   if l.startswith("RESULT")).split()[1:]))
             for out, _ in outs]
  assert figures[0] == figures[1]  # every host computes the same global step
  single = lm.train_and_evaluate(small_config(), str(tmp_path / "single"))
  assert figures[0][0] == pytest.approx(single["valid_ppl"], rel=1e-5)
  assert figures[0][1] == pytest.approx(single["test_ppl"], rel=1e-5)
  # One host wrote the run's files; the checkpoint is shared.
  assert (tmp_path / "multi" / "results.json").exists()


def test_initialize_distributed_reads_the_environment_and_arguments_win(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  parallel.initialize_distributed()  # one process: nothing to set up
  assert calls == []
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "8")
  monkeypatch.setenv("JAX_PROCESS_ID", "3")
  parallel.initialize_distributed()
  parallel.initialize_distributed("10.0.0.2:99", 2, 0)  # process id 0 is not "unset"
  assert calls == [
      {"coordinator_address": "10.0.0.1:1234", "num_processes": 8, "process_id": 3},
      {"coordinator_address": "10.0.0.2:99", "num_processes": 2, "process_id": 0}]
