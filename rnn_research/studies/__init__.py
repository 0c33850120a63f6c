"""The studies, one module each, above the library.

Each has ``train_and_evaluate(config, workdir)`` (the gradient studies: ``run``)
and is called by a thin main in ``experiments/``:

  lm          language-model perplexity and generation (``experiments.lm_perplexity``)
  agreement   number prediction and language-model agreement (``experiments.agreement``)
  gradients   gradient flow and long-range memory (``experiments.vanishing_gradients``)
"""
