"""Character-level language models of Tiny Shakespeare (char-rnn, nanoGPT's shakespeare_char).

Variants ``cpu``, ``target`` and ``gpu``; all read the text as characters on
nanoGPT's split (the first 90% train, the last 10% validation, no test), where
nanoGPT's 10.7M-parameter Transformer reaches 1.4697 nats per character
(2.12 bits) and the bigram floor is 2.484 nats (REFERENCES.md). The data:

    python -m experiments.get_data tinyshakespeare   # writes data/tinyshakespeare/input.txt

or ``--config.data.dir=`` any text file or folder of ``*.txt`` files. TFDS's
90/5/5 split, with a test part: ``--config.data.valid_fraction=0.05
--config.data.test_fraction=0.05``.

cpu: 1x256 LSTM (0.56M parameters), trains in a few minutes on 2 CPU cores:

    python -m experiments.lm_perplexity --config=configs/shakespeare.py:cpu \
        --workdir=runs/shakespeare_cpu --config.max_steps=120

  measured with --config.max_steps=120 (a quarter of an epoch, about 3
  minutes of training on a loaded 2-core machine): 2.0292 nats/char, 2.9275
  bpc on the validation split (docs/results/shakespeare_cells_lstm).

target: 2x512 LSTM (4.27M parameters) with dropout, aimed at 1.47 nats per
character:

    python -m experiments.lm_perplexity --config=configs/shakespeare.py:target \
        --workdir=runs/shakespeare_target

  measured: 1.7767 nats/char (2.5632 bpc) after 200 of its 2,450 updates,
  about 53 minutes of wall clock on a loaded 2-core CPU (docs/char_lm.md has
  the curve and the exact commands); the target was not reached in that time.

gpu: 3x1024 LSTM, larger batch and window, for an accelerator; the variant
expected to reach 1.47 nats per character (not measured):

    python -m experiments.lm_perplexity --config=configs/shakespeare.py:gpu \
        --workdir=runs/shakespeare_gpu

feng: Feng et al. 2024's comparison ("Were RNNs All We Needed?"): 3 residual
layers of 384 units, nanoGPT's shakespeare_char training (batch 64, window
256, dropout 0.2, AdamW 1e-3 with beta2 0.99 and weight decay 0.1, 100
warm-up updates and a cosine to 1e-4, clip 1, 5,000 updates = 82 epochs), for
the parallel cells, where the paper reports 1.548 (minGRU) and 1.555
(minLSTM) nats per character:

    python -m experiments.lm_perplexity --config=configs/shakespeare.py:feng,mingru \
        --workdir=runs/shakespeare_feng_mingru

  measured, minGRU, all 5,002 updates (77 minutes on a 2-core CPU): 1.549
  nats/char on the validation split, the paper's 1.548
  (docs/results/shakespeare_feng_nanogpt/mingru); minLSTM, all 5,002
  updates with ``--config.model.dtype=bfloat16`` (69 minutes on a 2-vCPU
  Xeon): 1.541, the paper's 1.555 (docs/results/shakespeare_feng_nanogpt/
  minlstm_bf16; its float32 run's first 1,037 updates, minlstm_first_1037,
  agree with it to 0.001 at updates 250-1,000); with ``--config.seed=1``
  1.549 (minGRU) and 1.536 (minLSTM, bf16); the minGRU with bf16
  products 1.541 (mingru_bf16, 49 minutes);
  docs/parallel_recurrences.md has the curve, shorter runs of both cells
  and how the set-up differs from the paper's.

Any variant with another cell: ``--config=configs/shakespeare.py:cpu,gru``
(lstm, gru, elman, mingru, minlstm or lru).

docs/char_lm.md has every measured figure with the command behind it.
"""

import ml_collections

from configs import default

# Cells of the comparison (``:cpu,gru``) and their options.
CELLS = {"lstm": {"forget_bias": 1.0}, "gru": {}, "elman": {},
         "mingru": {}, "minlstm": {}, "lru": {}}

VARIANTS = {
    # layers, hidden, dropout, batch, bptt, epochs, learning rate, steps between
    # validations, connection between layers
    "cpu": (1, 256, 0.0, 32, 64, 2, 3e-3, 100, "none"),
    "target": (2, 512, 0.2, 32, 128, 10, 2e-3, 100, "none"),
    "gpu": (3, 1024, 0.3, 64, 256, 30, 1e-3, 0, "none"),
    # nanoGPT's shakespeare_char schedule: 5,000 updates of 64 x 256 characters
    # are 82 epochs of the 1,003,854 training characters.
    "feng": (3, 384, 0.2, 64, 256, 82, 1e-3, 250, "residual"),
}


def get_config(arg: str | None = None):
  """``arg`` is ``variant`` or ``variant,cell`` (e.g. ``cpu,gru``; default lstm)."""
  variant, _, cell = (arg or "cpu").partition(",")
  cell = cell or "lstm"
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r} of configs/shakespeare.py; "
                     f"valid: {', '.join(VARIANTS)}")
  if cell not in CELLS:
    raise ValueError(f"unknown cell {cell!r} in configs/shakespeare.py:{arg}; "
                     f"valid: {', '.join(CELLS)}")
  layers, hidden, dropout, batch, bptt, epochs, lr, eval_every, connection = VARIANTS[variant]
  c = default.get_config()
  c.name = f"{layers}x{hidden} {cell} character model ({variant})"
  c.num_epochs = epochs
  c.log_every_steps = 50
  c.eval_every_steps = eval_every
  c.checkpoint_every_steps = 200
  c.model.cell = cell
  c.model.num_layers = layers
  c.model.hidden_size = hidden
  c.model.embed_size = 0
  c.model.dropout_rate = dropout
  c.model.connection = connection
  c.model.init_scale = 0.0  # LeCun-normal inputs, orthogonal recurrence
  # The LSTM's forget gate starts open (Gers et al. 2000; Jozefowicz et al. 2015).
  c.model.cell_options = ml_collections.ConfigDict(CELLS[cell])
  c.data.source = "local"
  c.data.unit = "char"
  c.data.dir = "data/tinyshakespeare"
  c.data.valid_fraction = 0.1  # nanoGPT's split: first 90% train, last 10% valid
  c.data.test_fraction = 0.0
  c.data.batch_size = batch
  c.data.bptt = bptt
  # 16 streams, state carried within each: 16x fewer sequential steps than
  # batch 1, at the cost of 16 cold starts instead of one.
  c.data.eval_batch_size = 16
  c.data.eval_bptt = 256
  c.optim.name = "adam"
  c.optim.learning_rate = lr
  c.optim.schedule = "cosine"
  c.optim.clip_norm = 1.0
  if variant == "feng":
    # The rest of nanoGPT's shakespeare_char recipe (config and train.py):
    # AdamW with beta2 0.99 and weight decay 0.1 on the matrices, 100 warm-up
    # updates, the cosine down to min_lr = 1e-4.
    c.optim.name = "adamw"
    c.optim.weight_decay = 0.1
    c.optim.b2 = 0.99
    c.optim.warmup_steps = 100
    c.optim.end_learning_rate = 1e-4
  c.optim.loss_sum_over_time = False
  c.samples.temperatures = (0.5, 0.8, 1.0)
  c.samples.num = 1
  c.samples.length = 400
  return c
