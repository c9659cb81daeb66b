"""Inputs: the checks both builds share, and the sample inputs the parity checks run on.

Both builds refuse the same inputs the same way.

Embedding lookups with an out-of-range id silently clamp or read garbage on
some backends, and a too-long sequence indexes past the position table; both
must fail loudly instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.tokenize import Tokenizer, truncation_note

# Real sentences (well-known opening lines) of varied length; "Hi" is shorter than
# the widest default kernel once tokenised ([CLS] hi [SEP]), so that path is exercised.
SENTENCES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
    "Call me Ishmael.",
    "Hi",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "The sky above the port was the color of television, tuned to a dead channel.",
    "Happy families.",
)


def check_inputs(
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None,
    token_type_ids: np.ndarray | None,
    config: BertCnnConfig,
) -> None:
    ids = np.asarray(input_ids)
    if ids.ndim not in (2, 3) or 0 in ids.shape:
        raise ValueError(
            "`input_ids` must be a non-empty 2-D (batch, seq_len) array, or 3-D (batch, windows, seq_len) for long "
            f"documents read as windows. Received: shape {ids.shape}"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`input_ids` must hold integer token ids. Received: dtype {ids.dtype}")
    seq_len = ids.shape[-1]
    if seq_len > config.max_position_embeddings:
        raise ValueError(
            f"Sequence length {seq_len} exceeds max_position_embeddings={config.max_position_embeddings}; "
            f"truncate inputs to at most {config.max_position_embeddings} tokens. Received: shape {ids.shape}"
        )
    _check_range("input_ids", ids, config.vocab_size, "vocab_size")
    if attention_mask is not None:
        mask = _same_shape("attention_mask", attention_mask, ids.shape)
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"`attention_mask` must hold only 0 (padding) and 1 (token). Received: values {np.unique(mask)[:8]}"
            )
        # A document's later windows may be all padding (its batch-mates have more); its first one may not.
        first = mask if mask.ndim == 2 else mask[:, 0]
        empty = np.flatnonzero(first.sum(axis=1) == 0)
        if empty.size:
            raise ValueError(
                "Every row needs at least one real token (attention_mask 1; a document: in its first window); an "
                f"all-padding row has no defined output. Received: all-padding rows {empty.tolist()[:8]}"
            )
    if token_type_ids is not None:
        tt = _same_shape("token_type_ids", token_type_ids, ids.shape)
        _check_range("token_type_ids", tt, config.type_vocab_size, "type_vocab_size")


def _same_shape(name: str, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"`{name}` must have the shape of input_ids {shape}. Received: shape {arr.shape}")
    return arr


def _check_range(name: str, arr: np.ndarray, size: int, size_name: str) -> None:
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= size:
        bad = arr[(arr < 0) | (arr >= size)]
        raise ValueError(
            f"`{name}` must lie in [0, {size_name}={size}); check that the tokenizer matches the model. "
            f"Received: out-of-range values {np.unique(bad)[:8].tolist()}"
        )


def random_batch(config: BertCnnConfig, lengths, seed: int = 0, width: int | None = None) -> dict[str, np.ndarray]:
    """Seeded right-padded ids/mask/token types for rows of the given real lengths.

    For checkpoints without a tokenizer (the report) and for tests: random ids reach
    every embedding row, which real text would not.
    """
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    width = width or int(lengths.max())
    mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(0, config.vocab_size, size=mask.shape) * mask + config.pad_token_id * (1 - mask)
    types = rng.integers(0, config.type_vocab_size, size=mask.shape) * mask
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask, "token_type_ids": types.astype(np.int64)}


def seeded_labels(config: BertCnnConfig, batch: int, seed: int = 0) -> np.ndarray:
    """Seeded class ids for the gradient and training checks (seed + 1: not the head's stream); a multi-label model:
    a seeded (batch, num_labels) 0/1 matrix."""
    size = (batch, config.num_labels) if config.multi_label else batch
    high = 2 if config.multi_label else config.num_labels
    return np.random.default_rng(seed + 1).integers(0, high, size=size).astype(np.int64)


def sample_inputs(
    config: BertCnnConfig,
    tokenizer_dir: Path | None,
    *,
    seed: int = 0,
    texts: Sequence[str] | None = None,
    notes: list[str] | None = None,
    max_length: int | None = None,
    windows: tuple[int, int | None] | None = None,
) -> dict[str, np.ndarray]:
    """Tokenised `texts` (default `SENTENCES`); seeded random ids when the checkpoint carries no tokenizer.

    Both at most `max_length` tokens (default `config.reading_length`: what the model reads, `max_seq_length`
    when recorded). `windows` (stride, max_windows): each text read whole as windows of that length, (batch,
    windows, tokens) inputs.

    A truncation note goes to `notes` when given, else to stderr.
    """
    has_tokenizer = tokenizer_dir is not None and (Path(tokenizer_dir) / "tokenizer.json").is_file()
    if texts and not has_tokenizer:
        raise ValueError(
            f"TEXT/--file need a tokenizer, and {tokenizer_dir} has no tokenizer.json; attach the backbone's with "
            f"`bertcnn port {tokenizer_dir} NEW_DIR --tokenizer HF_BERT_DIR` and report on NEW_DIR. "
            f"Received: {len(texts)} texts"
        )
    if windows is not None and not has_tokenizer:
        raise ValueError(f"--long-text windows reads texts, and {tokenizer_dir} has no tokenizer.json; pass "
                         "--tokenizer DIR. Received: --long-text windows")  # fmt: skip
    if has_tokenizer:
        tok = Tokenizer(tokenizer_dir, max_length=max_length or config.reading_length, pad_token_id=config.pad_token_id)
        if windows is not None:
            tok.windows(*windows)
        encoded, truncated = tok.encode_counted(list(texts or SENTENCES))
        if truncated and windows is not None:
            note = f"note: {truncated} of {len(encoded)} texts were cut to {tok.max_windows} windows (--max-windows)"
            print(note, file=sys.stderr) if notes is None else notes.append(note.removeprefix("note: "))
        elif truncated:
            note = truncation_note(truncated, len(encoded), tok.max_length, config)
            if notes is None:
                print(note, file=sys.stderr)
            else:
                notes.append(note.removeprefix("note: "))
        return tok.pad(encoded)
    lengths = [min(n, max_length or config.reading_length) for n in (29, 6, 3, 25, 18, 17, 4)]
    return random_batch(config, lengths, seed=seed)
