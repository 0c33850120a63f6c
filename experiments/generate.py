"""Sample text from a trained language model.

    python -m experiments.generate --workdir=runs/ptb_small --prompt="the company said" \
        --num_tokens=50 --temperature=0.8 --top_k=40 --num_samples=3
    python -m experiments.generate --workdir=runs/shakespeare_target --prompt="ROMEO:" \
        --num_tokens=300 --temperature=0.8 --top_p=0.95 --seed=1 --output=samples.txt

The model, its vocabulary and its best checkpoint come from the workdir. A
word model reads the prompt as words (one it never saw becomes <unk>) and
prints "prompt | continuation"; a character model reads the prompt as raw
text, character by character, refuses characters it never saw (naming them),
and prints the prompt followed by its continuation. Samples are separated by
a blank line; --output also writes them to a file. The same --seed gives the
same samples.
"""

import pathlib

from absl import flags

from rnn_research import cli, sampling
from rnn_research.studies import lm

_WORKDIR = flags.DEFINE_string("workdir", None, "a language-model run directory", required=True)
_PROMPT = flags.DEFINE_string(
    "prompt", "", "text to continue: words for a word model, raw text for a "
    "character model (default: start of a sentence / of a line)")
_NUM_TOKENS = flags.DEFINE_integer("num_tokens", 50, "tokens (words or characters) to sample")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "softmax temperature; 0 = greedy")
_TOP_K = flags.DEFINE_integer("top_k", 0, "sample among the k most probable tokens; 0 = all")
_TOP_P = flags.DEFINE_float(
    "top_p", 1.0, "nucleus sampling: among the fewest most probable tokens "
    "holding this probability, in (0, 1]; 1 = all")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "independent samples")
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed")
_OUTPUT = flags.DEFINE_string("output", None, "also write the samples to this file")


def main(argv):
  cli.no_extra_args(argv)
  # Check the request before the (slower) restore, so bad flags fail fast.
  sampling.check_request(_NUM_TOKENS.value, _NUM_SAMPLES.value, _TEMPERATURE.value,
                         _TOP_K.value, _TOP_P.value)
  config, model, params, vocab = lm.load_run(_WORKDIR.value)
  unit = config.data.get("unit", "word")
  texts = sampling.sample_texts(
      model, params, vocab, unit, _PROMPT.value, _NUM_TOKENS.value,
      _NUM_SAMPLES.value, _SEED.value, _TEMPERATURE.value, _TOP_K.value, _TOP_P.value)
  if unit == "char":
    samples = [_PROMPT.value + text for text in texts]
  else:
    words = [w for w in _PROMPT.value.split() if w != vocab.eos]
    samples = [f"{' '.join(words)} | {text}" for text in texts]
  out = "\n\n".join(s.rstrip("\n") for s in samples) + "\n"
  print(out)
  if _OUTPUT.value:
    path = pathlib.Path(_OUTPUT.value)
    try:
      path.write_text(out, encoding="utf-8")
    except OSError as e:
      raise OSError(f"cannot write {path}: {e.strerror or e}") from None


if __name__ == "__main__":
  cli.run(main)
