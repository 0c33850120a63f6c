"""experiments.generate with a character model: raw-text prompts, seeded
samples, --output, and one-line errors for bad requests."""

import os
import subprocess
import sys

import pytest

from configs import test as test_config
from rnn_research import sampling
from rnn_research.studies import lm

from tests import REPO
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 6


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
  root = tmp_path_factory.mktemp("char_lm")
  (root / "play.txt").write_text(TEXT, encoding="utf-8")
  c = test_config.get_config()
  c.num_epochs = 1
  c.model.hidden_size = 8
  c.data.source, c.data.unit, c.data.dir = "local", "char", str(root / "play.txt")
  c.data.valid_fraction, c.data.test_fraction = 0.2, 0.0
  c.data.bptt = 8
  c.samples.temperatures = ()
  lm.train_and_evaluate(c, str(root / "run"))
  return root / "run"


def run_generate(tmp_path, *flags):
  env = dict(os.environ, MPLCONFIGDIR=str(tmp_path / "mpl"), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "experiments.generate", *flags], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300)


def test_char_prompt_is_raw_text_and_samples_are_seeded(char_model, tmp_path):
  out = tmp_path / "samples.txt"
  proc = run_generate(tmp_path, f"--workdir={char_model}", "--prompt=Speak, ",
                      "--num_tokens=20", "--num_samples=2", "--seed=1", "--top_p=0.9",
                      f"--output={out}")
  assert proc.returncode == 0, proc.stderr
  written = out.read_text(encoding="utf-8")
  assert proc.stdout.rstrip("\n") == written.rstrip("\n")
  # The same seed in another process gives the same characters.
  model, params, vocab = lm.restore_language_model(str(char_model))
  expected = sampling.sample_texts(model, params, vocab, "char", "Speak, ", 20, 2, seed=1,
                                   top_p=0.9)
  assert all(len(t) == 20 for t in expected)
  assert written == "\n\n".join(("Speak, " + t).rstrip("\n") for t in expected) + "\n"


def test_prompt_characters_never_seen_are_named_in_one_line(char_model, tmp_path):
  out = tmp_path / "samples.txt"
  proc = run_generate(tmp_path, f"--workdir={char_model}", "--prompt=Zeus é", f"--output={out}")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: prompt characters not in the model's vocabulary of "
      f"{len(set(TEXT[:388])) + 1}: 'Z', 'é'")
  assert not out.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"num_samples": 0}, "num_samples must be positive"),
    ({"num_samples": -3}, "num_samples must be positive"),
    ({"num_tokens": 0}, "num_tokens must be positive"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"temperature": -1.0}, "temperature must be >= 0"),
])
def test_bad_sampling_requests_are_refused(kwargs, message):
  request = {"num_tokens": 5, "num_samples": 1, **kwargs}
  with pytest.raises(ValueError, match=message):
    sampling.check_request(**request)


def test_bad_flag_is_one_line_before_anything_is_loaded(tmp_path):
  proc = run_generate(tmp_path, f"--workdir={tmp_path / 'none'}", "--num_samples=0")
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert errors == ["error: num_samples must be positive, got 0"]
  assert proc.stderr.strip().splitlines()[-1] == errors[0]
