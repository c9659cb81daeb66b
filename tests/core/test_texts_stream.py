"""`parity.io.texts.Lines` reads a file or a pipe a chunk at a time; `parity.batching.windows` cuts the stream."""

from __future__ import annotations

import io
import os
import sys

import pytest

from parity.batching import windows
from parity.io import texts as T


def lines_of(tmp_path, data: bytes) -> tuple[list[str], T.Lines]:
    f = tmp_path / "in.txt"
    f.write_bytes(data)
    lines = T.Lines(str(f))
    return list(lines), lines


@pytest.mark.parametrize(
    ("data", "texts", "blank"),
    [
        (b"", [], 0),
        (b"a\nb", ["a", "b"], 0),  # no LF after the last line
        (b"a\r\nb\r\n", ["a", "b"], 0),
        (b"\xef\xbb\xbfa\n\xef\xbb\xbfb\n", ["a", "\ufeffb"], 0),  # a BOM only at the start of the file
        (b"\n  \r\n\n", [], 3),
        (b"a\n\n\t\nb\r\n", ["a", "b"], 2),
    ],
)
def test_lines_as_the_whole_file_reader_read_them(tmp_path, data, texts, blank):
    got, lines = lines_of(tmp_path, data)
    assert (got, lines.blank, lines.count) == (texts, blank, len(texts))


def test_lines_longer_than_a_chunk_and_lines_split_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "CHUNK", 7)
    data = ["x" * 50, "é" * 9, "short", "y" * 13]
    got, _ = lines_of(tmp_path, ("\n".join(data) + "\n").encode())
    assert got == data


def test_a_bad_byte_names_its_line_even_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "CHUNK", 5)
    f = tmp_path / "in.txt"
    f.write_bytes(b"fine line\nanother one\ncaf\xe9 au lait\n")
    it = iter(T.Lines(str(f)))
    assert next(it) == "fine line"
    with pytest.raises(ValueError, match=r"in.txt:3: bytes that are not UTF-8.*Received: byte b'\\xe9' on line 3$"):
        list(it)


def test_a_pipe_is_ready_only_when_a_line_has_arrived(monkeypatch):
    r, w = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.FileIO(r, "rb")))
    lines = T.Lines("-")
    it = iter(lines)
    assert not lines.ready()  # nothing written yet: the next line would have to be waited for
    os.write(w, b"one\ntw")
    assert lines.ready() and next(it) == "one"
    assert not lines.ready()  # half a line is not a line
    os.write(w, b"o\nthree\n")
    assert next(it) == "two" and lines.ready() and next(it) == "three"
    os.close(w)
    assert lines.ready() and list(it) == []


def test_texts_checks_a_file_whole_before_any_is_given_out(tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes(b"ok\n" * 10 + b"\xff\n")
    with pytest.raises(ValueError, match=r":11: bytes that are not UTF-8"):
        T.Texts(["arg"], str(f), purpose="predict")
    f.write_bytes(b"a\n\nb\n")
    texts = T.Texts(["arg"], str(f), purpose="predict")
    assert texts.total == 3 and list(texts) == ["arg", "a", "b"]


def test_windows_cut_by_count_by_characters_and_when_the_next_text_is_not_there():
    assert list(windows("abcdefg", size=3)) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert list(windows(["aaaa", "b", "cc", "d"], size=10, chars=5)) == [["aaaa", "b"], ["cc", "d"]]
    arrived = iter([True, False, True, True])
    assert list(windows("abcd", size=10, ready=lambda: next(arrived))) == [["a", "b"], ["c", "d"]]
    with pytest.raises(ValueError, match="Received: size=0"):
        list(windows("a", size=0))


def test_a_window_cut_short_by_a_bad_text_comes_out_before_the_error():
    def texts():
        yield from "abcde"
        raise ValueError("<stdin>:6: bytes that are not UTF-8")

    got = []
    with pytest.raises(ValueError, match="<stdin>:6"):
        for run in windows(texts(), size=3):
            got.append(run)
    assert got == [["a", "b", "c"], ["d", "e"]]  # every text read before the bad one


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("   ", "only whitespace"), ("\t\n", "only whitespace")])
def test_an_empty_text_argument_is_refused_by_its_number(text, what):
    with pytest.raises(ValueError) as e:
        T.Texts(["fine", text], None, purpose="predict")
    assert str(e.value) == (
        f"TEXT argument 2 is {what}; expected a text to predict (drop the empty argument). Received: {text!r}"
    )
    with pytest.raises(ValueError, match="TEXT argument 1 is"):
        T.gather_texts([text], None, purpose="compare on")


def test_a_missing_or_folder_file_is_called_so(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        T.Lines(str(tmp_path / "nope.txt"))
    assert f"--file {str(tmp_path / 'nope.txt')!r}: not found; expected a UTF-8 text file" in str(e.value)
    with pytest.raises(FileNotFoundError, match="is a folder"):
        T.Texts([], str(tmp_path), purpose="predict")
