"""Data pipelines: character-level text (vocabulary, split, stream batching, baselines)."""

from rnnkit.data.text import (
    BUILTIN_CORPUS_NAME,
    DEFAULT_MIN_CHARS,
    TextStream,
    Vocabulary,
    builtin_corpus,
    nats_to_bits,
    read_text,
    train_val_split,
    uniform_baseline,
    unigram_baseline,
)

__all__ = [
    "BUILTIN_CORPUS_NAME",
    "DEFAULT_MIN_CHARS",
    "TextStream",
    "Vocabulary",
    "builtin_corpus",
    "nats_to_bits",
    "read_text",
    "train_val_split",
    "uniform_baseline",
    "unigram_baseline",
]
