"""Language-model data: corpora and vocabulary, batching, the synthetic grammar."""

from rnn_research.data.batching import LMBatches, batchify
from rnn_research.data.corpus import (Corpus, DataError, OOVStats, Vocab,
                                      find_split_files, load_corpus,
                                      read_tokens)
from rnn_research.data.grammar import (AgreementItem, Grammar, Sentence,
                                       agreement_items, entropy_per_token,
                                       generate_corpus, split_sentences)

__all__ = [
    "AgreementItem", "Corpus", "DataError", "Grammar", "LMBatches", "OOVStats",
    "Sentence", "Vocab", "agreement_items", "batchify", "entropy_per_token",
    "find_split_files", "generate_corpus", "load_corpus", "read_tokens",
    "split_sentences",
]
