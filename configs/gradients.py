"""Gradient-flow studies (Pascanu, Mikolov & Bengio 2013): variants of one experiment.

    python -m experiments.vanishing_gradients --config=configs/gradients.py:VARIANT \\
        --workdir=runs/gradients_VARIANT

Each runs offline on a 2-core CPU in a few minutes and writes PNG figures,
results.md and results.json into the workdir (docs/gradients.md has the
measured numbers):

* ``spectral``: Elman RNN (identity and tanh) with W_h rescaled to spectral
  radius rho in {0.5, 0.9, 1.0, 1.1, 1.5}. The log of dJ(i)/dh(i-l) relative
  to dJ(i)/dh(i) falls on a line of slope log(rho) per step for the identity
  activation (exactly, with the default orthogonal W_h) and at or below it
  for tanh (tanh' <= 1).
* ``cells``: Elman (tanh, rho = 0.9) vs LSTM vs GRU language models, at
  initialisation and after a short training run on the synthetic grammar:
  gradient norm against distance up to 127. Measured at distance 50: LSTM
  1.6e7x and GRU 835x Elman's at initialisation, 24x and 8x after 300 steps.
  On PTB (after ``python -m experiments.get_data ptb``)::

    python -m experiments.vanishing_gradients --config=configs/gradients.py:cells \\
        --config.lm.data.source=local \\
        --workdir=runs/gradients_cells_ptb

* ``long_range``: the long-memory benchmarks (rnn_research.data.memory_tasks):
  the adding problem, copy memory and recall k steps back, for each cell x
  initialisation (tanh Elman, IRNN = rnn_relu/identity, LSTM with forget bias
  1, LSTM and GRU with chrono initialisation): held-out error and
  solved-or-not against T beside each task's memoryless baseline, over 3
  seeds with a fixed step budget, and the share of the gradient reaching the
  first step at initialisation and after training. The default grid is
  small (minutes); the runs in docs/gradients.md override tasks, models,
  lengths and steps on the command line. ``long_range_full`` is the papers'
  range, T in {10, 20, 50, 100, 200, 500} for every task (hours on 2 cores).
* ``clipping``: the one-unit RNN of Pascanu et al.'s Fig. 6, h_t = sigmoid(w
  h_{t-1} + b), whose loss over (w, b) has a cliff: SGD without clipping is
  thrown off the cliff onto a plateau, with global-norm clipping it settles
  in the valley (mean final loss 0.082 vs 0.013 clipped, 4 starts).
* ``depth``: 1, 2, 4, 8 LSTM layers x connection none / residual / dense /
  highway, short runs on the synthetic grammar: validation perplexity and the
  gradient norm reaching the bottom layer, as one table. Measured: 8 plain
  layers 46.5 perplexity and 100x less gradient at the bottom than 1 layer;
  with residual connections 15.1 and no loss of gradient. On PTB add
  ``--config.lm.data.source=local``
  (10,000-word softmax: several times slower on a CPU).
* ``test``: every variant tiny, seconds on a CPU, for tests; choose the
  variant with ``--config.variant=NAME``.
"""

import ml_collections

from configs import demo

VARIANTS = ("spectral", "cells", "long_range", "clipping", "depth", "long_range_full", "test")
STUDIES = VARIANTS[:5]


def _lm_config() -> ml_collections.ConfigDict:
  """The language-model run that ``cells`` and ``depth`` train: the `make run`
  recipe (synthetic grammar, Adam 3e-3, cosine, clip 1, batch 32 x 35), with
  64 units, 300 steps and each cell's own initialisation."""
  c = demo.get_config()
  c.name = "gradient study"
  c.num_epochs = 2
  c.max_steps = 300
  c.checkpoint_every_steps = 0
  c.tensorboard = False
  c.model.hidden_size = 64
  # Each cell's own initialisers (orthogonal W_h, LSTM forget bias 1): the
  # models probed at initialisation are the ones training starts from.
  c.model.init_scale = 0.0
  c.model.cell_options = ml_collections.ConfigDict()
  c.data.num_valid_sentences = 500
  c.data.num_test_sentences = 500
  c.data.eval_batch_size = 10
  c.data.eval_bptt = 100
  return c


def get_config(arg: str = "spectral") -> ml_collections.ConfigDict:
  """The config of variant ``arg``; an unknown variant lists the valid ones."""
  arg = arg or "spectral"
  if arg not in VARIANTS:
    raise ValueError(f"unknown gradients variant {arg!r}; valid: {', '.join(VARIANTS)}")
  config = ml_collections.ConfigDict()
  # Which study runs: spectral, cells, long_range, clipping or depth.
  config.variant = {"test": "spectral", "long_range_full": "long_range"}.get(arg, arg)
  # Seed of initialisation and of the synthetic tasks' data.
  config.seed = 0
  # Language-model runs (cells, depth) and the text that spectral/cells probe
  # (the valid split of lm.data); fields as configs/default.py.
  config.lm = _lm_config()

  config.spectral = ml_collections.ConfigDict()
  # Elman activations compared (comma-separated).
  config.spectral.activations = "identity,tanh"
  # Spectral radii W_h is rescaled to.
  config.spectral.rhos = "0.5,0.9,1.0,1.1,1.5"
  # Units of the one-layer Elman language model.
  config.spectral.hidden_size = 64
  # W_h before rescaling: 'orthogonal' (the cell's own; all singular values
  # equal, so the identity case is exactly rho^l) or 'gaussian' (non-normal).
  config.spectral.recurrent_init = "orthogonal"
  # Probe batch: rows and length (distances 0 .. seq_len - 1).
  config.spectral.batch_size = 16
  config.spectral.seq_len = 64
  # First distance of the least-squares slope fit.
  config.spectral.fit_from = 1
  # Eigenvalue moduli |lambda| in (0, 1) of LRU language models probed the same
  # way (every unit on one circle, r_min = r_max; comma-separated; '' = none).
  config.spectral.lru_moduli = "0.5,0.9,0.99"

  config.cells = ml_collections.ConfigDict()
  # Cells compared (registry names); Elman ones get W_h rescaled at init.
  config.cells.cells = "rnn_tanh,lstm,gru"
  # Spectral radius of the Elman cells' W_h at initialisation (0 = as initialised).
  config.cells.elman_rho = 0.9
  # Also train each cell (lm.max_steps steps) and probe the trained model.
  config.cells.train = True
  # Probe batch: rows and length (distances 0 .. seq_len - 1).
  config.cells.batch_size = 8
  config.cells.seq_len = 128
  # Distances shown in the table; the reference distance heads results.json.
  config.cells.distances = "1,10,50,100"
  config.cells.reference_distance = 50

  config.long_range = ml_collections.ConfigDict()
  # Tasks run (rnn_research.data.memory_tasks): adding, copy, recall.
  config.long_range.tasks = "adding,copy,recall"
  # Models 'cell' or 'cell/init' (gradients.INITS: default, identity,
  # orthogonal, chrono, forget0); rnn_relu/identity is IRNN. 'lstm' has the
  # cell's forget bias 1.
  config.long_range.models = "rnn_tanh,rnn_relu/identity,lstm,lstm/chrono,gru/chrono"
  # Per task: sequence lengths T (recall: k), the fixed step budget of every
  # run, and the task's own models ('' = long_range.models).
  for task, lengths in (("adding", "10,50"), ("copy", "10"), ("recall", "10,50")):
    config.long_range[task] = ml_collections.ConfigDict(
        {"lengths": lengths, "train_steps": 500, "models": ""})
  # Units per recurrent layer (the papers use 128; 64 fits the CPU).
  config.long_range.hidden_size = 64
  # Recurrent layers (the papers: one) and the connection between them
  # (recurrent.CONNECTIONS; residual, as Orvieto et al. stack the LRU).
  config.long_range.num_layers = 1
  config.long_range.connection = "none"
  # Options added to every model's cell, beside its initialisation's (e.g.
  # '{"glu": True}' for the LRU's GELU + GLU mixer); each must suit every cell.
  config.long_range.cell_options = ml_collections.ConfigDict()
  # Sequences per training step (Arjovsky et al.: 20); held-out sequences
  # for the final error.
  config.long_range.batch_size = 20
  config.long_range.eval_size = 500
  # Independent runs (initialisation and data) per (task, model, T), trained
  # side by side.
  config.long_range.seeds = 3
  # Symbols of the recall task (chance accuracy 1 / vocab_size).
  config.long_range.vocab_size = 8
  # Solved: held-out MSE below solved_mse (adding), accuracy of the answers
  # at least solved_accuracy (copy: the 10 copied symbols; recall), every seed.
  config.long_range.solved_mse = 0.01
  config.long_range.solved_accuracy = 0.99
  # Steps between metrics.jsonl lines (learning curves; the first and last
  # step are always logged; 0 = none).
  config.long_range.log_every_steps = 25
  # Time steps per compiled loop iteration (speed only).
  config.long_range.unroll = 1
  # The runs train in a child process that is restarted (finished runs kept)
  # when its CPU time stands still this many seconds: jaxlib 0.10.2's CPU
  # runtime can block for good at a run's start (docs/gradients.md). 0 = train
  # in this process, unwatched.
  config.long_range.stall_seconds = 60
  # Optimizer (rnn_research.optim fields; 'rmsprop' is Arjovsky et al.'s).
  config.long_range.optim = ml_collections.ConfigDict({
      "name": "adam", "learning_rate": 3e-3, "clip_norm": 1.0, "schedule": "constant",
      "lr_decay": 1.0, "decay_after_epochs": 0, "momentum": 0.0, "weight_decay": 0.0})

  config.clipping = ml_collections.ConfigDict()
  # Steps of h_t = sigmoid(w h_{t-1} + b); the loss is (h_T - sigmoid(target))^2.
  config.clipping.seq_len = 50
  # x_0 and the target x_T of Pascanu et al.'s x_t = w sigmoid(x_{t-1}) + b
  # (h = sigmoid(x)).
  config.clipping.x0 = 0.5
  config.clipping.target = 0.7
  # Surface: w and b ranges ('low,high') and grid points per axis.
  config.clipping.w_range = "-1,10"
  config.clipping.b_range = "-7,3"
  config.clipping.grid = 161
  # SGD starting points 'w,b;w,b;...', learning rate and steps.
  config.clipping.starts = "3,-3.5;4,-4;5,-4.2;6,-4.6"
  config.clipping.learning_rate = 0.5
  config.clipping.steps = 200
  # Global-norm threshold of the clipped runs.
  config.clipping.clip_norm = 1.0

  config.depth = ml_collections.ConfigDict()
  # Stack depths and connections between layers (recurrent.CONNECTIONS).
  config.depth.layers = "1,2,4,8"
  config.depth.connections = "none,residual,dense,highway"
  # Probe batch for the gradient reaching the bottom layer: rows and length.
  config.depth.batch_size = 8
  config.depth.seq_len = 35

  if arg == "depth":
    config.lm.model.hidden_size = 32
    config.lm.max_steps = 150
    config.lm.data.num_train_sentences = 10000
  if arg == "long_range_full":
    # The papers' range of T (hours on a 2-core CPU).
    for task in ("adding", "copy", "recall"):
      config.long_range[task].lengths = "10,20,50,100,200,500"
      config.long_range[task].train_steps = 1000
  if arg == "test":
    _shrink(config)
  return config


def _shrink(config: ml_collections.ConfigDict) -> None:
  """Every variant at toy size: the real code paths in seconds."""
  lm = config.lm
  lm.max_steps = 3
  lm.num_epochs = 1
  lm.log_every_steps = 2
  lm.model.hidden_size = 8
  lm.data.num_train_sentences = 300
  lm.data.num_valid_sentences = 60
  lm.data.num_test_sentences = 20
  lm.data.batch_size = 4
  lm.data.bptt = 8
  lm.data.eval_batch_size = 4
  lm.data.eval_bptt = 20
  config.spectral.hidden_size = 8
  config.spectral.rhos = "0.5,1.1"
  config.spectral.batch_size = 2
  config.spectral.seq_len = 12
  config.spectral.lru_moduli = "0.5,0.9"
  config.cells.cells = "rnn_tanh,lstm"
  config.cells.batch_size = 2
  config.cells.seq_len = 12
  config.cells.distances = "1,5,10"
  config.cells.reference_distance = 5
  lr = config.long_range
  lr.models = "lstm/chrono"
  lr.recall.models = "rnn_relu/identity"
  for task in ("adding", "copy", "recall"):
    lr[task].lengths = "3"
    lr[task].train_steps = 3
  lr.hidden_size = 8
  lr.batch_size = 4
  lr.eval_size = 6
  lr.seeds = 2
  lr.log_every_steps = 2
  config.clipping.seq_len = 10
  config.clipping.grid = 9
  # On the cliff's face: the gradient's norm is about 19 there, over clip_norm 1.
  config.clipping.starts = "6.4,-3.5"
  config.clipping.steps = 5
  config.depth.layers = "2"
  config.depth.connections = "highway"
  config.depth.batch_size = 2
  config.depth.seq_len = 6
