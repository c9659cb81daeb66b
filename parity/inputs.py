"""Input checks shared by both builds, so both refuse the same inputs the same way.

Embedding lookups with an out-of-range id silently clamp or read garbage on
some backends, and a too-long sequence indexes past the position table; both
must fail loudly instead.
"""

from __future__ import annotations

import numpy as np

from parity.config import BertCnnConfig


def check_inputs(
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None,
    token_type_ids: np.ndarray | None,
    config: BertCnnConfig,
) -> None:
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or ids.shape[0] < 1 or ids.shape[1] < 1:
        raise ValueError(f"`input_ids` must be a non-empty 2-D (batch, seq_len) array. Received: shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`input_ids` must hold integer token ids. Received: dtype {ids.dtype}")
    seq_len = ids.shape[1]
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
        empty = np.flatnonzero(mask.sum(axis=1) == 0)
        if empty.size:
            raise ValueError(
                "Every row needs at least one real token (attention_mask 1); an all-padding row has no "
                f"defined output. Received: all-padding rows {empty.tolist()[:8]}"
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
