"""Sample text from a trained language model.

    python -m experiments.generate --workdir=runs/ptb_small --prompt="the company said" \
        --num_tokens=50 --temperature=0.8 --top_k=40 --num_samples=3

The model, its vocabulary and its best checkpoint come from the workdir.
Words of the prompt that are not in the vocabulary become <unk>.
"""

import jax
import jax.numpy as jnp
from absl import flags

from rnn_research import cli, models, train

_WORKDIR = flags.DEFINE_string("workdir", None, "a language-model run directory", required=True)
_PROMPT = flags.DEFINE_string("prompt", "", "words to continue (default: start of a sentence)")
_NUM_TOKENS = flags.DEFINE_integer("num_tokens", 50, "words to sample", lower_bound=1)
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "softmax temperature; 0 = greedy",
                                   lower_bound=0.0)
_TOP_K = flags.DEFINE_integer("top_k", 0, "sample among the k most probable words; 0 = all",
                             lower_bound=0)
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1, "independent samples", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "sampling seed", lower_bound=0)


def main(argv):
  cli.no_extra_args(argv)
  model, params, vocab = train.restore_language_model(_WORKDIR.value)
  words = _PROMPT.value.split() or [vocab.tokens[vocab.eos_id]]
  prompt = jnp.asarray(vocab.encode(words))[None].repeat(_NUM_SAMPLES.value, axis=0)
  sample = jax.jit(lambda params, prompt, rng: models.generate(
      model, params, prompt, _NUM_TOKENS.value, rng, _TEMPERATURE.value, _TOP_K.value))
  tokens = sample(params, prompt, jax.random.key(_SEED.value))
  for row in tokens.tolist():
    text = " ".join(vocab.decode(row)).replace(" <eos>", "\n")
    print(" ".join(w for w in words if w != "<eos>"), "|", text, "\n")


if __name__ == "__main__":
  cli.run(main)
