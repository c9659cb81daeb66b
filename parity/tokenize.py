"""One tokenizer for both builds: text -> numpy int64 arrays that either model takes.

Uses the checkpoint's `tokenizer.json` through the `tokenizers` package (Rust,
no framework), so the two builds can never see different token ids.

Truncation is the `tokenizers` library's own (longest_first, right, no stride),
applied before the special tokens are added: a cut text still reads
`[CLS] ... [SEP]`, exactly as Hugging Face's `tokenizer(texts, truncation=True,
max_length=n)` gives it. (Slicing the ids after the specials were added would
end every cut text in a word piece instead of `[SEP]`.) Padding is ours.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig


class Tokenizer:
    def __init__(self, path: str | os.PathLike, *, max_length: int = 512, pad_token_id: int = 0):
        from tokenizers import Tokenizer as _Rust

        p = Path(path)
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.is_file():
            raise FileNotFoundError(
                f"No tokenizer.json found; a checkpoint made by `bertcnn init` carries one. Received: {str(p)!r}"
            )
        try:
            self._tok = _Rust.from_file(str(file))
        except Exception as e:  # the tokenizers library raises a bare Exception for a damaged or foreign file
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ValueError(
                f"{file}: not a readable tokenizer ({why}); expected a tokenizers tokenizer.json (the one the "
                f"checkpoint was made with: copy it again, or pass --tokenizer DIR). Received: {str(file)!r}"
            ) from None
        # Padding is ours; truncation is the library's (set by `max_length`), the same for every caller.
        self._tok.no_padding()
        self._tok.no_truncation()
        self._specials = self._tok.num_special_tokens_to_add(False)
        self.max_length = max_length
        self.pad_token_id = pad_token_id

    @property
    def max_length(self) -> int:
        """Tokens per text, special tokens included; longer texts are cut (keeping `[CLS]` and `[SEP]`)."""
        return self._max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        # `tokenizers` silently skips truncation when max_length cannot hold the special tokens: refuse instead.
        least = max(self._specials, 1)
        try:
            n = operator.index(value) if not isinstance(value, bool) else None
        except TypeError:
            n = None
        if n is None or n < least:
            names = " and ".join(self._tok.encode("").tokens) or "one token"
            raise ValueError(f"max_length must be an integer >= {least} (room for {names}). Received: {value!r}")
        self._tok.enable_truncation(max_length=n)
        self._max_length = n

    def __call__(self, texts: Sequence[str], *, pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Encode, truncate to `max_length`, right-pad to the longest (or `pad_to`)."""
        return self.pad(self.encode(texts), pad_to=pad_to)

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ids, type_ids) per text, truncated, unpadded: tokenise once, batch later in any grouping."""
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
        """`encode`, plus how many texts were longer than `max_length` and cut: callers report it."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a sequence of str. Received: {type(texts).__name__}")
        if not texts:
            raise ValueError("texts must not be empty. Received: []")
        truncated, rows = 0, []
        for e in self._tok.encode_batch(list(texts)):
            # Without a stride, `overflowing` holds what truncation dropped: non-empty exactly when the text was
            # longer than max_length (tests/test_tokenize.py checks that against the untruncated lengths).
            truncated += bool(e.overflowing)
            rows.append((np.asarray(e.ids, dtype=np.int64), np.asarray(e.type_ids, dtype=np.int64)))
        return rows, truncated

    def pad(
        self, encoded: Sequence[tuple[np.ndarray, np.ndarray]], *, pad_to: int | None = None
    ) -> dict[str, np.ndarray]:
        """Right-pad encoded rows into model inputs, to the longest row or `pad_to` if wider."""
        return pad_rows(encoded, self.pad_token_id, pad_to=pad_to)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids, _ in self.encode(texts)]


def pad_rows(
    encoded: Sequence[tuple[np.ndarray, np.ndarray]], pad_token_id: int, *, pad_to: int | None = None
) -> dict[str, np.ndarray]:
    """(ids, type_ids) rows -> right-padded model inputs, to the longest row or `pad_to` if wider.

    The one padding rule: `Tokenizer.pad`, the trainers' batches and the evaluators all pad here.
    """
    if not encoded:
        raise ValueError("encoded must not be empty. Received: []")
    width = max(max(len(ids) for ids, _ in encoded), pad_to or 0)
    out = {
        "input_ids": np.full((len(encoded), width), pad_token_id, dtype=np.int64),
        "attention_mask": np.zeros((len(encoded), width), dtype=np.int64),
        "token_type_ids": np.zeros((len(encoded), width), dtype=np.int64),
    }
    for row, (ids, types) in enumerate(encoded):
        out["input_ids"][row, : len(ids)] = ids
        out["attention_mask"][row, : len(ids)] = 1
        out["token_type_ids"][row, : len(types)] = types
    return out


def load_tokenizer(
    config: BertCnnConfig, own: Path | None, source: str, tokenizer: str | None, max_length: int | None
) -> Tokenizer:
    """`tokenizer` (else the source's own, `own`) at `max_length` (default: the model's, `config.reading_length`)."""
    max_length = max_length or config.reading_length
    if max_length > config.max_position_embeddings:
        raise ValueError(
            f"--max-length must be at most max_position_embeddings={config.max_position_embeddings}. "
            f"Received: {max_length}"
        )
    where = tokenizer or own
    if where is None:
        raise ValueError(
            f"{source} carries no tokenizer; pass --tokenizer DIR (a folder with tokenizer.json, such as the "
            "checkpoint or Hugging Face BERT these weights came from). Received: no --tokenizer"
        )
    return Tokenizer(where, max_length=max_length, pad_token_id=config.pad_token_id)


def truncation_note(truncated: int, total: int, max_length: int, config: BertCnnConfig) -> str:
    if max_length != config.reading_length:
        cap = "--max-length"
    elif config.max_seq_length is not None:
        cap = "max_seq_length, the length the model was trained to read"
    else:
        cap = "the model's position table"
    return (
        f"note: {truncated} of {total} texts were longer than {max_length} tokens ({cap}) "
        f"and were cut to {max_length}, keeping [CLS] and [SEP] (the tokenizer's own truncation, as Hugging Face)"
    )
