"""Batch prediction shared by both builds and the exports: length-sorted batches, input order restored.

With padding-aware pooling a text's logits do not depend on its batch-mates, so
sorting by length (less padding, less work) changes nothing but the speed. Texts are
tokenised once; batches are neighbours in length order, capped by a row count and
optionally by a token budget (rows x padded width), so long texts come in small
batches and short ones in large ones.

A stream of texts (a file, a pipe) is predicted a window at a time (`windows`,
`predict_stream`): a few thousand texts are tokenised and length-sorted together, and
their logits handed back in input order before the next window is read, so memory does
not grow with the input and results come while it is still being read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from parity import interrupt
from parity.tokenize import Tokenizer, row_length, row_width

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]  # inputs -> (B, num_labels) logits


def plan_batches(lengths: Sequence[int], *, batch_size: int = 32, max_tokens: int | None = None) -> list[np.ndarray]:
    """Indices of each batch: neighbours in (stable) length order, every index exactly once.

    A batch holds at most `batch_size` rows and, with `max_tokens`, at most that many
    padded tokens (rows x its longest length); a row longer than the budget goes alone.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1 (or None for no budget). Received: {max_tokens}")
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        # Ascending order: the newest row is the longest, so it sets the padded width.
        rows, width = end - start, lengths[order[end - 1]]
        if rows > batch_size or (max_tokens is not None and rows > 1 and rows * width > max_tokens):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def bucket_width(width: int, multiple: int, cap: int) -> int:
    """`width` rounded up to a multiple of `multiple`, at most `cap`: a compiled path sees few shapes."""
    return min(-(-width // multiple) * multiple, max(cap, width))


def predict_logits(
    forward: Forward,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_tokens: int | None = None,
    pad_multiple: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, num_labels) logits for `texts`, in input order.

    `pad_multiple` pads each batch's width up to a multiple (for shape-specialising
    compilers such as XLA); `progress(done, total)` is called after each batch.
    """
    return predict_encoded(
        forward,
        tokenizer,
        tokenizer.encode(texts),
        batch_size=batch_size,
        max_tokens=max_tokens,
        pad_multiple=pad_multiple,
        progress=progress,
    )


def predict_encoded(
    forward: Forward,
    tokenizer: Tokenizer,
    encoded: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    batch_size: int = 32,
    max_tokens: int | None = None,
    pad_multiple: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """`predict_logits` on rows already tokenised (`Tokenizer.encode_counted`, which also counts truncation)."""
    batches = plan_batches([row_length(row) for row in encoded], batch_size=batch_size, max_tokens=max_tokens)
    out: np.ndarray | None = None
    done = 0
    for idx in batches:
        interrupt.raise_if_requested()  # a swallowed Ctrl-C still stops a long prediction
        rows = [encoded[i] for i in idx]
        width = max(row_width(row) for row in rows)
        pad_to = bucket_width(width, pad_multiple, tokenizer.max_length) if pad_multiple else None
        logits = np.asarray(forward(tokenizer.pad(rows, pad_to=pad_to)))
        if out is None:
            out = np.empty((len(encoded), *logits.shape[1:]), dtype=logits.dtype)
        out[idx] = logits
        done += len(idx)
        if progress is not None:
            progress(done, len(encoded))
    return out


WINDOW = 4096  # texts tokenised and length-sorted together: batches as full and as even as whole-file sorting
WINDOW_CHARS = 1 << 22  # ... or fewer, once they hold this many characters (a file of very long lines)


def windows(
    texts: Iterable[str],
    *,
    size: int = WINDOW,
    chars: int = WINDOW_CHARS,
    ready: Callable[[], bool] | None = None,
) -> Iterator[list[str]]:
    """Consecutive runs of `texts`, in order: each at most `size` texts or about `chars` characters.

    With `ready` (e.g. `parity.io.texts.Texts.ready`), a run also ends when the next text
    is not there yet, so a pipe's results come out while it is still open. An error from
    `texts` (a bad line) comes after a last run of the texts before it.
    """
    if size < 1 or chars < 1:
        raise ValueError(f"window size and chars must be >= 1. Received: size={size}, chars={chars}")
    window: list[str] = []
    held = 0
    stream = iter(texts)
    while True:
        try:
            text = next(stream)
        except StopIteration:
            break
        except Exception:
            # A bad line (bytes that are not UTF-8): the texts before it are answered first, then the error.
            if window:
                yield window
            raise
        window.append(text)
        held += len(text)
        if len(window) >= size or held >= chars or (ready is not None and not ready()):
            yield window
            window, held = [], 0
    if window:
        yield window


@dataclass
class Counts:
    """What a stream has been through so far: texts predicted, and how many of them were truncated."""

    texts: int = 0
    truncated: int = 0


def predict_stream(
    forward: Forward,
    tokenizer: Tokenizer,
    runs: Iterable[Sequence[str]],
    *,
    batch_size: int = 32,
    max_tokens: int | None = None,
    pad_multiple: int | None = None,
    progress: Callable[[int], None] | None = None,
    counts: Counts | None = None,
) -> Iterator[tuple[Sequence[str], np.ndarray]]:
    """(texts, logits in their order) per run of `runs` (see `windows`), one run in memory at a time.

    `counts` is updated as runs go by; `progress(done)` is called after each batch with the
    number of texts done so far over all runs.
    """
    counts = Counts() if counts is None else counts
    for run in runs:
        encoded, truncated = tokenizer.encode_counted(list(run))
        base = counts.texts
        step = None if progress is None else (lambda done, _total, base=base: progress(base + done))
        logits = predict_encoded(
            forward,
            tokenizer,
            encoded,
            batch_size=batch_size,
            max_tokens=max_tokens,
            pad_multiple=pad_multiple,
            progress=step,
        )
        del encoded
        counts.texts += len(run)
        counts.truncated += truncated
        yield run, logits
