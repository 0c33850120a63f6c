"""WikiText-2 with the Zaremba et al. 2014 recipes (variants small, medium, large).

    python -m experiments.get_data wikitext2    # once: data/wikitext2/wiki.*.tokens
    python -m experiments.lm_perplexity --config=configs/wikitext2.py:medium \
        --workdir=runs/wt2_medium

or from the Hugging Face hub when online: ``--config.data.source=hf``.
WikiText-2 has a 33,278-word vocabulary and about twice PTB's training tokens;
no published figure for exactly this recipe is reproduced here.
"""

from configs import ptb

VARIANTS = ptb.VARIANTS


def get_config(arg: str | None = None):
  c = ptb.get_config(arg or "medium")
  c.name = f"WikiText-2 {arg or 'medium'}"
  c.data.dir = "data/wikitext2"  # python -m experiments.get_data wikitext2
  c.data.hf_name = "wikitext"
  c.data.hf_config = "wikitext-2-v1"
  c.paper.source, c.paper.valid, c.paper.test, c.paper.params = "", 0.0, 0.0, ""
  return c
