"""The agreement study (Linzen, Dupoux & Goldberg 2016): error by attractors.

Variants (``--config=configs/agreement.py:VARIANT``):

* ``synthetic`` (default): number prediction on the embedded grammar, offline,
  about half a CPU minute. LSTM, GRU and Elman train on items with 0-1
  attractors and are tested on 0-4, so the test asks for generalisation past
  what training showed::

    python -m experiments.agreement --config=configs/agreement.py:synthetic \\
        --workdir=runs/agreement_synthetic

  Measured (docs/agreement.md): LSTM and GRU near 0% error at every count;
  Elman 0% up to 1 attractor, then 1.3 / 3.8 / 6.8% at 2 / 3 / 4.

* ``linzen``: number prediction on the authors' simplified release, trained
  on ``numpred.val`` alone (15,772 dependencies, 10% held out as dev), tested
  on ``numpred.test.1..5``, LSTM, GRU and Elman side by side::

    python -m experiments.get_data linzen2016   # once: data/linzen2016/rnn_agr_simple
    python -m experiments.agreement --config=configs/agreement.py:linzen \\
        --workdir=runs/agreement_linzen

  Measured (docs/agreement.md; about 6 minutes on a shared 2-core CPU),
  error at 1 / 2 / 3 / 4 / 5 attractors: LSTM 19.0 / 32.0 / 41.2 / 43.5 /
  64.2%, GRU 18.4 / 31.0 / 40.7 / 44.4 / 57.2%, Elman 38.3 / 54.5 / 62.5 /
  64.4 / 71.7%. The paper trained on ~9x more data (its 9% split) and reports
  far lower error; expect higher error here, with the same rise.

* ``lm``: a trained language model (a workdir of the language-model study)
  chooses between the correct and the wrong verb form; with no files given it
  is scored on the synthetic sets (for an LM trained on the embedded
  grammar)::

    python -m experiments.agreement --config=configs/agreement.py:lm \\
        --config.lm_workdir=runs/demo --workdir=runs/agreement_lm
    python -m experiments.agreement --config=configs/agreement.py:lm \\
        --config.lm_workdir=runs/lm_ptb --config.data.lowercase=True \\
        --config.data.text=subj_agr_filtered.text \\
        --config.data.gold=subj_agr_filtered.gold \\
        --config.data.minimal_pairs=pairs.tsv --workdir=runs/agreement_lm_ptb

  Gulordava et al. 2018's best English LM (80M Wikipedia tokens): 80.5%
  accuracy on the original sentences of their set; an LM trained on PTB alone
  is expected to do clearly worse.

* ``test``: tiny, seconds on a CPU, for tests.
"""

import ml_collections

VARIANTS = ("synthetic", "linzen", "lm", "test")


def get_config(arg: str = "synthetic") -> ml_collections.ConfigDict:
  """The config of variant ``arg``; an unknown variant lists the valid ones."""
  arg = arg or "synthetic"
  if arg not in VARIANTS:
    raise ValueError(f"unknown agreement variant {arg!r}; valid: "
                     f"{', '.join(VARIANTS)}")
  config = ml_collections.ConfigDict()
  # Seed of initialisation, data shuffling and the dev split.
  config.seed = 0
  # 'number_prediction' (train a classifier) or 'lm' (score a trained LM).
  config.task = "number_prediction"
  # Cells trained side by side (comma-separated); '' = model.cell only.
  # model.cell must be the first: its figures head results.json.
  config.cells = "lstm,gru,elman"
  # Workdir of a language-model run to evaluate (task 'lm').
  config.lm_workdir = ""

  config.model = ml_collections.ConfigDict()
  # Registered cell name (cells.CELLS).
  config.model.cell = "lstm"
  # Hidden units per layer (the paper: 50).
  config.model.hidden_size = 50
  # Word-embedding size (the paper: 50).
  config.model.embed_size = 50
  # Stacked recurrent layers.
  config.model.num_layers = 1
  # Read the prefix in both directions (the prefix is all the model sees).
  config.model.bidirectional = False
  # Dropout on embeddings, between layers and before the output.
  config.model.dropout_rate = 0.0
  # Connection between stacked layers: none, residual, dense, highway.
  config.model.connection = "none"
  # uniform(-s, s) initialisation when > 0; else each layer's own initialisers.
  config.model.init_scale = 0.0
  # Time steps per compiled loop iteration.
  config.model.unroll = 1

  config.data = ml_collections.ConfigDict()
  # Number prediction: 'synthetic', 'linzen_simple' or 'linzen_tsv'. Task
  # 'lm' scores the files given below, or the grammar's sets if none is given.
  config.data.source = "synthetic"
  # Directory of the simplified release (relative file names resolve here);
  # `python -m experiments.get_data linzen2016` fills it (docs/data.md).
  config.data.dir = "data/linzen2016/rnn_agr_simple"
  # Training file of the simplified release.
  config.data.train = "numpred.train"
  # Dev file; '' = hold out valid_fraction of the training file.
  config.data.valid = ""
  # Fraction of the training file held out as dev when data.valid is ''.
  config.data.valid_fraction = 0.1
  # Test files, comma-separated; '' = every numpred.test.N in data.dir.
  config.data.test = ""
  # The full Linzen et al. dependency TSV (source 'linzen_tsv'), split 9/1/90.
  config.data.path = ""
  # Longest prefix read (its last words); for linzen_tsv also the longest
  # sentence kept, as in the reference code. 0 = no limit.
  config.data.max_length = 50
  # 'right' (masked padding) or 'left' (padding read as a word, as in Keras).
  config.data.padding = "right"
  # Use only the first N training items (0 = all).
  config.data.max_train_items = 0
  # Synthetic sets: seed of the grammar's sampler.
  config.data.grammar_seed = 1
  # Synthetic: attractor counts in training and dev (comma-separated).
  config.data.train_attractors = "0,1"
  # Synthetic: attractor counts tested, one set each.
  config.data.test_attractors = "0,1,2,3,4"
  # Synthetic: training items per attractor count.
  config.data.num_train = 2000
  # Synthetic: dev items per attractor count.
  config.data.num_valid = 300
  # Synthetic: test items per attractor count.
  config.data.num_test = 1000
  # Synthetic: subject-verb distances tested (any structure), one set each;
  # '' = none. Distance 2 cannot occur in the grammar.
  config.data.test_distances = "1,3,5,7,9,11"
  # Synthetic: test items per distance.
  config.data.num_test_distance = 300
  # Task 'lm': Gulordava et al.'s sentences (.text), one per line.
  config.data.text = ""
  # Task 'lm': their targets (.gold): index, correct form, wrong form, attractors.
  config.data.gold = ""
  # Task 'lm': Gulordava et al.'s generated.tab (nonce sentences).
  config.data.generated = ""
  # Task 'lm': minimal pairs, condition<TAB>grammatical<TAB>ungrammatical.
  config.data.minimal_pairs = ""
  # Task 'lm': lower-case the evaluation words (for an LM trained on
  # lower-cased text such as PTB).
  config.data.lowercase = False
  # Task 'lm': token read before each sentence; '' = the LM vocabulary's <eos>.
  config.data.bos = ""

  config.optim = ml_collections.ConfigDict()
  # Optimizer (the paper: Adam).
  config.optim.name = "adam"
  # Learning rate (Keras' Adam default).
  config.optim.learning_rate = 1e-3
  # Global-norm clipping threshold; 0 = none (the paper clipped nothing).
  config.optim.clip_norm = 0.0
  # Learning-rate schedule: constant, epoch_decay or cosine.
  config.optim.schedule = "constant"
  # epoch_decay: factor per epoch after decay_after_epochs.
  config.optim.lr_decay = 1.0
  # epoch_decay: epochs at the base rate.
  config.optim.decay_after_epochs = 0
  # adamw: weight decay.
  config.optim.weight_decay = 0.0
  # sgd: momentum.
  config.optim.momentum = 0.0

  # Training batch size (the paper: 16).
  config.batch_size = 16
  # Evaluation batch size.
  config.eval_batch_size = 256
  # Epochs at most.
  config.num_epochs = 10
  # Caps training steps per cell (0 = no cap).
  config.max_steps = 0
  # Dev error is measured every N steps (0 = once per epoch).
  config.eval_every_steps = 0
  # Stop after this many dev measurements without improvement (0 = never).
  config.patience = 2
  # Training metrics are logged every N steps.
  config.log_every_steps = 200
  # A checkpoint (checkpoints/<cell>/latest) every N steps besides the one at
  # each dev measurement; 0 = at dev measurements only.
  config.checkpoint_every_steps = 0
  # A non-finite loss or gradient: 'stop' (error naming the step) or 'skip'
  # (the update is dropped and counted). Never applied either way.
  config.nonfinite = "stop"
  # Also write TensorBoard events (workdir/tensorboard) when tensorboardX is there.
  config.tensorboard = True

  if arg == "linzen":
    config.data.source = "linzen_simple"
    config.data.train = "numpred.val"
    # With 9x less training data than the paper, dropout is what keeps the
    # 7,300-word embedding from memorising (no dropout: LSTM error 27% at one
    # attractor instead of 19% after 20 epochs).
    config.model.dropout_rate = 0.3
    config.num_epochs = 25
    config.eval_every_steps = 400
    config.patience = 6
  elif arg == "lm":
    config.task = "lm"
    config.eval_batch_size = 64
  elif arg == "test":
    config.cells = ""
    config.model.hidden_size = 8
    config.model.embed_size = 8
    config.data.num_train = 40
    config.data.num_valid = 10
    config.data.num_test = 10
    config.data.test_distances = "1,3"
    config.data.num_test_distance = 10
    # One padded length (8) for every batch: one compilation per step kind.
    config.data.max_length = 8
    config.batch_size = 8
    config.eval_batch_size = 16
    config.num_epochs = 1
    config.max_steps = 5
    config.log_every_steps = 2
  return config
