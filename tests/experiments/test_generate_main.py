"""experiments/generate.py: sampling flags reach models.generate, bad input is one line."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from rnn_research import models, sampling
from rnn_research.studies import lm

from tests import REPO


def run_main(*flags):
  return subprocess.run([sys.executable, "-m", "experiments.generate", *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def _expected_texts(workdir, num_tokens, temperature, top_k, seed, num_samples):
  """The samples the main should print, from models.generate called here."""
  model, params, vocab = lm.restore_language_model(str(workdir))
  prompt = jnp.asarray(vocab.encode([vocab.tokens[vocab.eos_id]]))[None].repeat(
      num_samples, axis=0)
  tokens = jax.jit(lambda p, x, k: models.generate(model, p, x, num_tokens, k, temperature,
                                                   top_k))(params, prompt,
                                                           jax.random.key(seed))
  texts = [sampling.decode(vocab, "word", row) for row in tokens.tolist()]
  return tokens, texts


def _assert_prints_in_order(stdout, texts):
  position = 0
  for text in texts:
    found = stdout.find(text, position)
    assert found >= 0, (text, stdout)
    position = found + len(text)


def test_temperature_and_top_k_are_the_ones_sampled_with(tiny_lm_run):
  """Catches: --temperature or --top_k not passed on (the same seed then
  samples other words: checked below to differ for these settings)."""
  workdir, _ = tiny_lm_run
  flags = dict(num_tokens=15, temperature=2.0, top_k=3, seed=4, num_samples=2)
  proc = run_main(f"--workdir={workdir}", *(f"--{k}={v}" for k, v in flags.items()))
  assert proc.returncode == 0, proc.stderr[-2000:]
  tokens, texts = _expected_texts(workdir, **flags)
  _assert_prints_in_order(proc.stdout, texts)
  for other in ({"temperature": 1.0}, {"top_k": 0}):  # each flag changes these samples
    assert not jnp.array_equal(_expected_texts(workdir, **{**flags, **other})[0], tokens)


def test_temperature_zero_is_greedy_and_the_same_for_every_sample(tiny_lm_run):
  workdir, _ = tiny_lm_run
  proc = run_main(f"--workdir={workdir}", "--temperature=0", "--num_tokens=10",
                  "--num_samples=2", "--seed=1")
  assert proc.returncode == 0, proc.stderr[-2000:]
  tokens, texts = _expected_texts(workdir, 10, 0.0, 0, seed=7, num_samples=2)  # any seed
  assert texts[0] == texts[1]
  _assert_prints_in_order(proc.stdout, texts)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_directory_that_is_no_run_gives_one_error_line_and_exit_2(tmp_path, verbose):
  proc = run_main(f"--workdir={tmp_path}", *(["--verbose"] if verbose else []))
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "is not a language-model workdir" in errors[0], proc.stderr
  # The traceback only with --verbose.
  assert ("Traceback (most recent call last)" in proc.stderr) == verbose
