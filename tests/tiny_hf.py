"""A tiny Hugging Face BERT directory (config.json, model.safetensors, tokenizer) for CLI tests.

Written with `tokenizers` and `safetensors` only, the way `save_pretrained` lays a
BERT out (names without the `bert.` prefix), so tests of `--backbone` run in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import TINY, random_tensors

from parity.config import BertCnnConfig

WORDS = [
    "call",
    "me",
    "ishmael",
    "hi",
    "it",
    "was",
    "the",
    "best",
    "of",
    "times",
    "worst",
    "age",
    "wisdom",
    "happy",
    "families",
    "are",
    "alike",
]


def tiny_tokenizer(directory: Path, vocab_size: int = TINY["vocab_size"]) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    vocab = list(dict.fromkeys(vocab))[:vocab_size]
    vocab += [f"[unused{i}]" for i in range(vocab_size - len(vocab))]
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"]))
    tok.decoder = decoders.WordPiece()
    tok.save(str(directory / "tokenizer.json"))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")


def tiny_hf_bert(directory: Path, *, classifier: bool = False, seed: int = 0) -> BertCnnConfig:
    """Write a BertModel-style directory; returns the head-less config it implies."""
    from safetensors.numpy import save_file

    config = BertCnnConfig(**TINY)
    directory.mkdir(parents=True, exist_ok=True)
    bert = {k.removeprefix("bert."): v for k, v in random_tensors(config, seed).items() if k.startswith("bert.")}
    if classifier:
        bert["classifier.weight"] = np.zeros((2, config.hidden_size), np.float32)
    save_file(bert, str(directory / "model.safetensors"), metadata={"format": "pt"})
    hf = {"model_type": "bert", "architectures": ["BertModel"], "_name_or_path": "tiny", **config.to_hf_dict()}
    (directory / "config.json").write_text(json.dumps(hf, indent=2), encoding="utf-8")
    tiny_tokenizer(directory)
    return config
