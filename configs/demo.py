"""The `make run` default: an LSTM language model on the embedded synthetic grammar.

Offline, on a CPU, in a couple of minutes:

    python -m experiments.lm_perplexity --config=configs/demo.py --workdir=runs/demo

results.md shows the model's validation and test perplexity beside the
grammar's optimum (exp of the true process's entropy per token), the best any
model can reach.
"""

from configs import default


def get_config(arg: str | None = None):
  del arg
  c = default.get_config()
  c.name = "synthetic grammar, 1x128 LSTM"
  c.num_epochs = 3
  c.log_every_steps = 50
  c.model.cell = "lstm"
  c.model.num_layers = 1
  c.model.hidden_size = 128
  c.model.init_scale = 0.1
  c.data.source = "synthetic"
  c.data.num_train_sentences = 20000
  c.data.num_valid_sentences = 2000
  c.data.num_test_sentences = 2000
  c.data.batch_size = 32
  c.data.bptt = 35
  c.optim.name = "adam"
  c.optim.learning_rate = 3e-3
  c.optim.schedule = "cosine"
  c.optim.clip_norm = 1.0
  c.optim.loss_sum_over_time = False
  return c
