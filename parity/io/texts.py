"""Texts to classify: TEXT arguments and one-text-per-line files (or stdin), read strictly as UTF-8.

What `predict` and `report` run on; bad bytes are refused with where they are
(argument number, FILE:LINE), never decoded with replacement characters.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def read_texts(path: str) -> tuple[list[str], int]:
    """One text per line of a UTF-8 file ('-': stdin); returns (texts, blank lines skipped).

    Lines end at LF (a CR before it is dropped); a byte-order mark is ignored. Bytes
    that are not UTF-8 are reported with the file and line, not a byte offset.
    """
    name = "<stdin>" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--file must be a text file with one text per line. Received: {path!r}")
        data = p.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{name}:{line}: bytes that are not UTF-8; expected a UTF-8 text file (re-save it as UTF-8). "
            f"Received: byte {data[e.start : e.start + 1]!r} on line {line}"
        ) from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line
    texts = [line for line in lines if line.strip()]
    return texts, len(lines) - len(texts)


def gather_texts(args_texts: Sequence[str], file: str | None, *, purpose: str) -> list[str]:
    """TEXT arguments, then `file`'s lines ('-' = stdin): what predict and report run on.

    Bad bytes are refused with where they are (argument number, FILE:LINE); an empty file is
    named as such, not mistaken for a missing --file.
    """
    texts = list(args_texts)
    for i, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as surrogate escapes
            raise ValueError(
                f"TEXT argument {i} has bytes that are not UTF-8; expected UTF-8 text (or use --file). "
                f"Received: {text.encode('utf-8', 'surrogateescape')[:80]!r}"
            ) from None
    if file:
        from_file, blank = read_texts(file)
        if not from_file and not texts:
            name = "standard input" if file == "-" else file
            raise ValueError(
                f"{name} has no texts to {purpose}; expected one text per line. "
                f"Received: {'an empty file' if not blank else f'{blank} blank line(s)'}"
            )
        texts += from_file
    return texts
