"""Texts to classify: TEXT arguments and one-text-per-line files (or stdin), read strictly as UTF-8, streamed.

What `predict` and `report` run on; bad bytes are refused with where they are
(argument number, FILE:LINE), never decoded with replacement characters. A file is
read a chunk at a time, never whole: `Lines` yields one text at a time and says
whether the next one can be had without waiting (`ready`), so `predict` can answer
what a pipe has sent so far while the pipe is still open.
"""

from __future__ import annotations

import io
import os
import select
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 16  # bytes read at a time


def _not_utf8(name: str, line: int, data: bytes, at: int) -> ValueError:
    return ValueError(
        f"{name}:{line}: bytes that are not UTF-8; expected a UTF-8 text file (re-save it as UTF-8). "
        f"Received: byte {data[at : at + 1]!r} on line {line}"
    )


class Lines:
    """The non-blank lines of a UTF-8 file ('-': stdin), one at a time; iterate once.

    Lines end at LF (a CR before it is dropped); a byte-order mark at the start is
    ignored; lines of whitespace only are skipped and counted (`blank`). Bytes that are
    not UTF-8 raise ValueError `FILE:LINE: ...` when their line is reached. Memory: one
    chunk plus the longest line, whatever the file's size.
    """

    def __init__(self, path: str):
        self.name = "<stdin>" if path == "-" else path
        if path == "-":
            stream: BinaryIO = sys.stdin.buffer
        else:
            if not Path(path).is_file():
                what = "is a folder" if Path(path).is_dir() else "not found"
                raise FileNotFoundError(f"--file {path!r}: {what}; expected a UTF-8 text file with one text per "
                                        f"line ('-' for standard input). Received: --file {path!r}")  # fmt: skip
            stream = open(path, "rb")  # noqa: SIM115 - closed at the end of the iteration
        self._stream, self._own = stream, path != "-"
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd = None  # an in-memory stream (tests): never blocks
        # A real stdin is read through its file descriptor (what is there, without waiting for a full chunk),
        # so nothing hides in Python's buffer from `ready`.
        self._pipe = path == "-" and self._fd is not None
        self._buf, self._pos, self._eof = b"", 0, False
        self.line = 0  # the number of the last line read
        self.blank = 0
        self.count = 0  # non-blank lines given out

    def _read(self) -> bytes:
        if self._pipe:
            return os.read(self._fd, CHUNK)
        return getattr(self._stream, "read1", self._stream.read)(CHUNK)

    def ready(self) -> bool:
        """Whether the next line (or the end) is here already: False while a pipe has sent no more."""
        if self._eof or not self._pipe or self._buf.find(b"\n", self._pos) >= 0:
            return True
        try:
            return bool(select.select([self._fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def _next_line(self) -> bytes | None:
        end = self._buf.find(b"\n", self._pos)
        if end < 0:  # read on to the end of the line: chunks gathered, joined once (a long line stays linear)
            parts = [self._buf[self._pos :]]
            while not self._eof:
                chunk = self._read()
                self._eof = not chunk
                parts.append(chunk)
                if b"\n" in chunk:
                    break
            self._buf, self._pos = b"".join(parts), 0
            end = self._buf.find(b"\n")
            if end < 0:  # the end of the input: the last line has no LF, or there is none
                rest, self._buf = self._buf, b""
                return rest or None
        line, self._pos = self._buf[self._pos : end], end + 1
        return line

    def __iter__(self) -> Iterator[str]:
        try:
            while (data := self._next_line()) is not None:
                self.line += 1
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise _not_utf8(self.name, self.line, data, e.start) from None
                if self.line == 1:
                    text = text.removeprefix("\ufeff")
                text = text.removesuffix("\r")
                if not text.strip():
                    self.blank += 1
                    continue
                self.count += 1
                yield text
        finally:
            if self._own:
                self._stream.close()


def check_argument_texts(args_texts: Sequence[str], purpose: str = "classify") -> None:
    """TEXT arguments must be UTF-8 (argv bytes that are not arrive as surrogate escapes) and hold a text.

    An empty or whitespace-only TEXT is refused, as blank lines of a file are skipped and a
    labelled file's empty text is refused: a label for no text is no answer.
    """
    for i, text in enumerate(args_texts, start=1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"TEXT argument {i} has bytes that are not UTF-8; expected UTF-8 text (or use --file). "
                f"Received: {text.encode('utf-8', 'surrogateescape')[:80]!r}"
            ) from None
        if not text.strip():
            raise ValueError(
                f"TEXT argument {i} is {'empty' if not text else 'only whitespace'}; expected a text to {purpose} "
                f"(drop the empty argument). Received: {text!r}"
            )


def nothing_to(purpose: str, file: str, blank: int) -> ValueError:
    name = "standard input" if file == "-" else file
    return ValueError(
        f"{name} has no texts to {purpose}; expected one text per line. "
        f"Received: {'an empty file' if not blank else f'{blank} blank line(s)'}"
    )


class Texts:
    """TEXT arguments, then `file`'s lines ('-' = stdin), as one stream with `ready` (see `Lines`).

    Checks what can be checked before any work: the arguments' bytes, that the file exists,
    and for a regular file (which can be read twice) every line's bytes and that it holds a
    text, in one pass that keeps nothing (`total` is then the number of texts). Standard
    input is checked as it is read: an empty one when the stream ends, a bad byte on its line.
    """

    def __init__(self, args_texts: Sequence[str], file: str | None, *, purpose: str):
        check_argument_texts(args_texts, purpose)
        self.args, self.file, self.purpose = list(args_texts), file, purpose
        self.total: int | None = len(self.args)
        self.lines: Lines | None = None
        if file and file != "-":
            first = Lines(file)
            for _ in first:
                pass
            if not first.count and not self.args:
                raise nothing_to(purpose, file, first.blank)
            self.total += first.count
        elif file == "-":
            self.total = None
        self._left = len(self.args)

    def ready(self) -> bool:
        return self._left > 0 or self.lines is None or self.lines.ready()

    def __iter__(self) -> Iterator[str]:
        for text in self.args:
            self._left -= 1
            yield text
        if self.file:
            self.lines = Lines(self.file)
            yield from self.lines
            if not self.lines.count and not self.args:
                raise nothing_to(self.purpose, self.file, self.lines.blank)


def read_texts(path: str) -> tuple[list[str], int]:
    """One text per line of a UTF-8 file ('-': stdin); returns (texts, blank lines skipped). See `Lines`."""
    lines = Lines(path)
    texts = list(lines)
    return texts, lines.blank


def gather_texts(args_texts: Sequence[str], file: str | None, *, purpose: str) -> list[str]:
    """TEXT arguments, then `file`'s lines ('-' = stdin), all in a list: what `report` runs on.

    Bad bytes are refused with where they are (argument number, FILE:LINE); an empty file is
    named as such, not mistaken for a missing --file.
    """
    check_argument_texts(args_texts, purpose)
    texts = list(args_texts)
    if file:
        from_file, blank = read_texts(file)
        if not from_file and not texts:
            raise nothing_to(purpose, file, blank)
        texts += from_file
    return texts
