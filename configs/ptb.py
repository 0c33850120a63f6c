"""Zaremba, Sutskever & Vinyals 2014, Penn Treebank: variants small, medium, large.

Hyper-parameters as in the paper and its reference code (REFERENCES.md): 2
LSTM layers, batch 20, plain SGD at learning rate 1 on the loss summed over the
BPTT window, global-norm clipping, uniform init, forget-gate bias 0, dropout on
non-recurrent connections only, state carried across windows.

    python -m experiments.get_data ptb    # once: data/ptb/ptb.{train,valid,test}.txt
    python -m experiments.lm_perplexity --config=configs/ptb.py:small \
        --workdir=runs/ptb_small

Should reach (paper, valid / test): small 120.7 / 114.5, medium 86.2 / 82.7,
large 82.2 / 78.4. A PTB epoch of `small` takes about 6 minutes on 2 CPU cores.
"""

from configs import default

VARIANTS = {
    # hidden, bptt, dropout, init, epochs, lr decay, decay after, clip, paper valid/test, params
    "small": (200, 20, 0.0, 0.1, 13, 0.5, 4, 5.0, 120.7, 114.5, "4.7M"),
    "medium": (650, 35, 0.5, 0.05, 39, 0.8, 6, 5.0, 86.2, 82.7, "20M"),
    "large": (1500, 35, 0.65, 0.04, 55, 1 / 1.15, 14, 10.0, 82.2, 78.4, "66M"),
}


def get_config(arg: str | None = None):
  variant = arg or "small"
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r} of configs/ptb.py; "
                     f"valid: {', '.join(VARIANTS)}")
  hidden, bptt, dropout, init, epochs, decay, after, clip, valid, test, params = (
      VARIANTS[variant])
  c = default.get_config()
  c.name = f"Zaremba et al. 2014 {variant} (ours)"
  c.num_epochs = epochs
  c.model.cell = "lstm"
  c.model.num_layers = 2
  c.model.hidden_size = hidden
  c.model.dropout_rate = dropout
  c.model.init_scale = init
  c.model.cell_options.forget_bias = 0.0
  c.data.source = "local"
  c.data.dir = "data/ptb"  # python -m experiments.get_data ptb
  c.data.batch_size = 20
  c.data.bptt = bptt
  c.optim.name = "sgd"
  c.optim.learning_rate = 1.0
  c.optim.schedule = "epoch_decay"
  c.optim.lr_decay = decay
  c.optim.decay_after_epochs = after
  c.optim.clip_norm = clip
  c.optim.loss_sum_over_time = True
  c.paper.source = f"Zaremba et al. 2014 {variant} (paper)"
  c.paper.valid, c.paper.test, c.paper.params = valid, test, params
  return c
