"""One tokenizer for both builds: text -> numpy int64 arrays that either model takes.

Uses the checkpoint's `tokenizer.json` through the `tokenizers` package (Rust,
no framework), so the two builds can never see different token ids.

Truncation is the `tokenizers` library's own (longest_first, right, no stride),
applied before the special tokens are added: a cut text still reads
`[CLS] ... [SEP]`, exactly as Hugging Face's `tokenizer(texts, truncation=True,
max_length=n)` gives it. (Slicing the ids after the specials were added would
end every cut text in a word piece instead of `[SEP]`.) Padding is ours.

Long documents (`windows(stride, max_windows)`): a text is read as overlapping windows of
`max_length` tokens, each `[CLS] ... [SEP]`, the next window repeating the last `stride`
tokens of the one before: the library's truncation with a stride and its overflowing
encodings, exactly what Hugging Face's `tokenizer(text, truncation=True, max_length=n,
stride=s, return_overflowing_tokens=True)` returns. A text is then a `Document` (its
windows), and padding makes (batch, windows, tokens) arrays: a document with fewer windows
than its batch-mates gets all-padding windows, which the model leaves out of its max.
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
        self.stride: int | None = None  # None: one truncated row per text; an int: windows (`windows`)
        self.max_windows: int | None = None
        self.max_length = max_length
        self.pad_token_id = pad_token_id

    def windows(self, stride: int, max_windows: int | None = None) -> Tokenizer:
        """Read each text as overlapping windows of `max_length` tokens (`Document`s); returns self."""
        if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride <= self.max_length - 3:
            raise ValueError(f"stride must be an integer from 0 to max_length - 3 = {self.max_length - 3} (each window "
                             f"holds [CLS], [SEP] and at least one new token). Received: {stride!r}")  # fmt: skip
        if max_windows is not None and (isinstance(max_windows, bool) or not isinstance(max_windows, int)
                                        or max_windows < 1):  # fmt: skip
            raise ValueError(f"max_windows must be a positive integer or None. Received: {max_windows!r}")
        self.stride, self.max_windows = stride, max_windows
        self._tok.enable_truncation(max_length=self._max_length, stride=stride)
        return self

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
        self._tok.enable_truncation(max_length=n, stride=getattr(self, "stride", None) or 0)
        self._max_length = n

    def __call__(self, texts: Sequence[str], *, pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Encode, truncate to `max_length`, right-pad to the longest (or `pad_to`)."""
        return self.pad(self.encode(texts), pad_to=pad_to)

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ids, type_ids) per text, truncated, unpadded: tokenise once, batch later in any grouping."""
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[list, int]:
        """`encode`, plus how many texts were cut: longer than `max_length`, or (windows) than `max_windows` windows.

        With `windows` set, each text is a `Document` of its windows instead of one (ids, type_ids) row.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a sequence of str. Received: {type(texts).__name__}")
        if not texts:
            raise ValueError("texts must not be empty. Received: []")
        truncated, rows = 0, []
        for e in self._tok.encode_batch(list(texts)):
            if self.stride is not None:  # the first window, then the library's overflowing ones (each [CLS] ... [SEP])
                found = [e, *e.overflowing]
                kept = found if self.max_windows is None else found[: self.max_windows]
                truncated += len(kept) < len(found)
                rows.append(Document((_ids(w), _types(w)) for w in kept))
                continue
            # Without a stride, `overflowing` holds what truncation dropped: non-empty exactly when the text was
            # longer than max_length (tests/test_tokenize.py checks that against the untruncated lengths).
            truncated += bool(e.overflowing)
            rows.append((_ids(e), _types(e)))
        return rows, truncated

    def pad(
        self, encoded: Sequence[tuple[np.ndarray, np.ndarray]], *, pad_to: int | None = None
    ) -> dict[str, np.ndarray]:
        """Right-pad encoded rows into model inputs, to the longest row or `pad_to` if wider."""
        return pad_rows(encoded, self.pad_token_id, pad_to=pad_to)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [row_length(row) for row in self.encode(texts)]


def _ids(e) -> np.ndarray:
    return np.asarray(e.ids, dtype=np.int64)


def _types(e) -> np.ndarray:
    return np.asarray(e.type_ids, dtype=np.int64)


class Document(tuple):
    """A long text read as windows: a tuple of (ids, type_ids) rows, each `[CLS] ... [SEP]`, in text order."""

    @property
    def width(self) -> int:
        """Tokens in its longest window."""
        return max(len(ids) for ids, _ in self)


def row_width(row) -> int:
    """Tokens per window: a row's length, or a document's longest window."""
    return row.width if isinstance(row, Document) else len(row[0])


def row_length(row) -> int:
    """Tokens a row costs a batch: its length, or a document's windows x its longest window."""
    return len(row) * row.width if isinstance(row, Document) else len(row[0])


def pad_rows(encoded: Sequence, pad_token_id: int, *, pad_to: int | None = None) -> dict[str, np.ndarray]:
    """(ids, type_ids) rows -> right-padded model inputs, to the longest row or `pad_to` if wider.

    `Document`s -> (batch, windows, tokens) inputs: windows padded to the longest of the batch
    (or `pad_to`), documents to the most windows with all-padding windows (attention mask 0).
    The one padding rule: `Tokenizer.pad`, the trainers' batches and the evaluators all pad here.
    """
    if not encoded:
        raise ValueError("encoded must not be empty. Received: []")
    if isinstance(encoded[0], Document):
        width = max(max(doc.width for doc in encoded), pad_to or 0)
        flat = [w for doc in encoded for w in doc]
        most = max(len(doc) for doc in encoded)
        inner = pad_rows(flat, pad_token_id, pad_to=width)
        out = {k: np.zeros((len(encoded), most, width), dtype=np.int64) for k in inner}
        out["input_ids"][:] = pad_token_id
        at = 0
        for row, doc in enumerate(encoded):
            for k in out:
                out[k][row, : len(doc)] = inner[k][at : at + len(doc)]
            at += len(doc)
        return out
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
