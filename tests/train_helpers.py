"""Shared set-up of the training tests: a tiny model, a few dozen rows, a recipe that
warms up, decays and clips, and helpers to train in either framework."""

from __future__ import annotations

import numpy as np

from parity.config import BertCnnConfig
from parity.training import TrainingRecipe
from parity.training.loop import Run
from parity.training.parity import start
from tests.conftest import TINY, random_tensors

ROWS = 29  # odd: the last batch of each epoch is partial


def tiny_setup(seed: int = 0):
    """(config, canonical tensors, encoded rows, labels): 29 rows of 1..19 random ids."""
    config = BertCnnConfig(**TINY, head_hidden_size=7)
    rng = np.random.default_rng(seed)
    encoded = [(rng.integers(1, config.vocab_size, size=n), rng.integers(0, 2, size=n))
               for n in rng.integers(1, 20, size=ROWS)]  # fmt: skip
    labels = rng.integers(0, config.num_labels, size=ROWS).astype(np.int64)
    return config, random_tensors(config, seed=seed + 1), encoded, labels


def recipe(dtype: str = "float64", **changes) -> TrainingRecipe:
    """2 epochs x 8 updates: warmup 3, linear decay, clipping at 0.5 (norms 0.27..0.96: some clipped)."""
    base = dict(epochs=2, batch_size=4, lr=1e-2, warmup_steps=3, max_grad_norm=0.5, dtype=dtype, dropout=False)
    return TrainingRecipe(**{**base, **changes})


def make_run(setup, r: TrainingRecipe, framework: str = "torch", **kwargs) -> Run:
    config, tensors, encoded, labels = setup
    return Run(start(config, tensors, r, len(labels), framework), encoded, labels, **kwargs)


def max_diff(a: dict, b: dict) -> tuple[float, str]:
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    return max((float(np.abs(a[k] - b[k]).max()), k) for k in a)


def tiny_checkpoint(directory, seed: int = 0):
    """A canonical checkpoint of the tiny config with a word-level tokenizer (`w4` ... `w98`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from parity.io.checkpoint import save_checkpoint

    config = BertCnnConfig(**TINY, head_hidden_size=7)
    save_checkpoint(directory, config, random_tensors(config, seed=seed))
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{f"w{i}": i for i in range(4, config.vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = [("[CLS]", 2), ("[SEP]", 3)]
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=special)
    tok.save(str(directory / "tokenizer.json"))
    return config


def write_jsonl(path, rows: int, seed: int = 0, max_words: int = 25) -> None:
    """`rows` lines of random words with labels neg/mid/pos; some longer than 20 tokens."""
    import json

    rng = np.random.default_rng(seed)
    names = ("neg", "mid", "pos")
    lines = []
    for _ in range(rows):
        words = " ".join(f"w{i}" for i in rng.integers(4, 99, size=rng.integers(1, max_words)))
        lines.append(json.dumps({"text": words, "label": names[rng.integers(0, 3)]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
