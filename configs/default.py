"""Base language-model config: every field the study reads, with its default.

Variants (ptb.py, wikitext2.py, demo.py, test.py) import this and override a
few fields. Any field can be overridden on the command line, e.g.
``--config.model.cell=gru --config.optim.clip_norm=1``.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  # Short name shown in results.md.
  c.name = ""
  # Seed of parameter initialisation and dropout.
  c.seed = 0
  # Training epochs (full passes over the training split).
  c.num_epochs = 13
  # Caps the number of training steps (smoke runs); 0 = no cap.
  c.max_steps = 0
  # Steps between train-metric lines in metrics.jsonl and progress output.
  c.log_every_steps = 100
  # Steps between validations (and best-checkpoint checks) inside an epoch; 0 = only at epoch end.
  c.eval_every_steps = 0
  # Steps between checkpoints inside an epoch (one is always saved at epoch end); 0 = only there.
  c.checkpoint_every_steps = 500
  # On a non-finite loss or gradient: 'stop' (error naming the step) or 'skip' (drop the update, count it).
  c.nonfinite = "stop"
  # Also write TensorBoard event files (tensorboardX) under workdir/tensorboard.
  c.tensorboard = True
  # Log ||dJ/dh_t|| per layer and BPTT-window position with the train metrics (one extra gradient).
  c.record_step_gradients = False
  # Shard the batch over all local devices (jax.sharding); parameters replicated.
  c.data_parallel = False

  c.model = ml_collections.ConfigDict()
  # Registered cell name: elman, rnn_tanh, rnn_relu, lstm, gru, mingru, minlstm, lru
  # (rnn_research.cells.CELLS).
  c.model.cell = "lstm"
  # Units per recurrent layer.
  c.model.hidden_size = 200
  # Stacked recurrent layers.
  c.model.num_layers = 2
  # Embedding size; 0 = hidden_size.
  c.model.embed_size = 0
  # Non-recurrent dropout (embedding output, between layers, before the softmax).
  c.model.dropout_rate = 0.0
  # One dropout mask per sequence, shared across time steps.
  c.model.variational_dropout = False
  # Between layers: none, residual, dense, highway.
  c.model.connection = "none"
  # Softmax weights = embedding matrix (needs embed_size == hidden_size).
  c.model.tie_weights = False
  # uniform(-s, s) initialisation of all weights when > 0; else LeCun-normal / orthogonal.
  c.model.init_scale = 0.1
  # Extra cell attributes, e.g. forget_bias (lstm), activation (elman), reset_after (gru).
  c.model.cell_options = ml_collections.ConfigDict({"forget_bias": 0.0})
  # Language models must be unidirectional; True is refused with an error.
  c.model.bidirectional = False
  # Matrix-product dtype: float32 or bfloat16 (gates and cell state stay float32).
  c.model.dtype = "float32"
  # Time steps per iteration of the compiled loop.
  c.model.unroll = 1

  c.data = ml_collections.ConfigDict()
  # local (files in data.dir), hf (Hugging Face hub), synthetic (embedded grammar).
  c.data.source = "local"
  # Folder with ptb.{train,valid,test}.txt, wiki.*.tokens or {train,valid,test}.txt;
  # `python -m experiments.get_data ptb` fills data/ptb (docs/data.md).
  c.data.dir = "data/ptb"
  # Tokens: word (whitespace-separated, <eos> at each line end) or char (every character, newlines too).
  c.data.unit = "word"
  # One text (a file, or for char a folder of *.txt) is cut in order: train, valid, test; nanoGPT's split is 0.1/0.0, TFDS's 0.05/0.05.
  c.data.valid_fraction = 0.05
  c.data.test_fraction = 0.05
  # Hugging Face dataset and config name, for source=hf (e.g. ptb_text_only, wikitext).
  c.data.hf_name = "ptb_text_only"
  c.data.hf_config = ""
  # Synthetic grammar: seed and sentences per split.
  c.data.grammar_seed = 0
  c.data.num_train_sentences = 20000
  c.data.num_valid_sentences = 2000
  c.data.num_test_sentences = 2000
  # Training streams (batch) and BPTT window length.
  c.data.batch_size = 20
  c.data.bptt = 20
  # Evaluation: batch 1 with the state carried over the whole split gives exact full-context perplexity.
  c.data.eval_batch_size = 1
  c.data.eval_bptt = 200

  c.optim = ml_collections.ConfigDict()
  # sgd, adam or adamw.
  c.optim.name = "sgd"
  # Base learning rate.
  c.optim.learning_rate = 1.0
  # Global-norm clipping threshold applied before the optimizer; 0 = off.
  c.optim.clip_norm = 5.0
  # constant, epoch_decay (x lr_decay per epoch after decay_after_epochs) or cosine.
  c.optim.schedule = "epoch_decay"
  c.optim.lr_decay = 0.5
  c.optim.decay_after_epochs = 4
  # cosine: linear warm-up steps first (0 = none), and the rate it ends at.
  c.optim.warmup_steps = 0
  c.optim.end_learning_rate = 0.0
  # SGD momentum (0 = plain SGD); AdamW weight decay (on matrices only);
  # Adam's and AdamW's second-moment decay.
  c.optim.momentum = 0.0
  c.optim.weight_decay = 0.0
  c.optim.b2 = 0.999
  # Differentiate the loss summed over the BPTT window (Zaremba et al.'s code) instead of its mean.
  c.optim.loss_sum_over_time = True

  # Seeded samples written into results.md at the end: per temperature, num samples of length tokens (0 = 300 chars / 30 words).
  # For the synthetic grammar instead: grammar_sentences sampled sentences checked by the grammar (0 = none).
  c.samples = ml_collections.ConfigDict({"temperatures": (0.5, 1.0), "num": 2, "length": 0,
                                         "seed": 0, "grammar_sentences": 1000})

  # Published figures shown beside ours in results.md (valid/test perplexity), and the
  # paper's cell ('' = the config's), layers and hidden size (0 = the config's), which
  # the row names when another model is trained.
  c.paper = ml_collections.ConfigDict({"source": "", "valid": 0.0, "test": 0.0, "params": "",
                                       "cell": "", "num_layers": 0, "hidden_size": 0})
  return c
