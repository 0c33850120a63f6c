"""A tiny config for tests: the real code paths in seconds.

    python -m experiments.lm_perplexity --config=configs/test.py --workdir=/tmp/t
"""

from configs import default


def get_config(arg: str | None = None):
  del arg
  c = default.get_config()
  c.name = "test"
  c.num_epochs = 2
  c.log_every_steps = 5
  c.checkpoint_every_steps = 5
  c.tensorboard = False
  c.model.num_layers = 2
  c.model.hidden_size = 16
  c.model.dropout_rate = 0.1
  c.data.source = "synthetic"
  c.data.num_train_sentences = 300
  c.data.num_valid_sentences = 40
  c.data.num_test_sentences = 40
  c.data.batch_size = 4
  c.data.bptt = 10
  c.data.eval_bptt = 50
  c.optim.name = "sgd"
  c.optim.learning_rate = 1.0
  c.optim.decay_after_epochs = 1
  c.samples.temperatures = (1.0,)
  c.samples.num = 1
  c.samples.length = 10
  c.samples.grammar_sentences = 50
  return c
