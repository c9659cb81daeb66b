"""Labelled data files: formats, label resolution, and every bad row refused with FILE:LINE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.commands import main
from parity.config import BertCnnConfig
from parity.training.data import read_labelled
from tests.helpers import TINY, tiny_checkpoint


def write(tmp_path, name: str, content: str | bytes):
    f = tmp_path / name
    f.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return f


def jsonl(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def test_jsonl_with_names_sorted_into_ids_and_blank_lines_counted(tmp_path):
    content = jsonl({"text": "good", "label": "pos"}, "", {"text": "bad", "label": "neg"}) + "  \n"
    f = write(tmp_path, "d.jsonl", content)
    d = read_labelled(f, num_labels=2)
    assert d.texts == ("good", "bad") and d.lines == (1, 3)
    assert d.label_names == ("neg", "pos") and d.named  # sorted: the data's names become the checkpoint's
    assert d.labels.dtype == np.int64 and d.labels.tolist() == [1, 0]
    assert (d.blank_lines, d.counts) == (2, (1, 1))


def test_csv_with_bom_crlf_quoted_newlines_and_renamed_columns(tmp_path):
    content = '\ufeffid,sentence,y\r\n1,"two\r\nlines, one row",1\r\n2,plain,0\r\n'
    d = read_labelled(write(tmp_path, "d.csv", content), num_labels=2, text_column="sentence", label_column="y")
    assert d.texts == ("two\r\nlines, one row", "plain")
    assert d.lines == (2, 4)  # a row's line is where it starts
    assert d.labels.tolist() == [1, 0] and d.label_names == ("0", "1") and not d.named


def test_tsv_ids_against_checkpoint_names(tmp_path):
    f = write(tmp_path, "d.tsv", "label\ttext\n1\tyes, with a comma\nneg\tno\n")
    d = read_labelled(f, num_labels=2, label_names=["neg", "pos"])
    assert d.labels.tolist() == [1, 0] and d.label_names == ("neg", "pos")


def test_names_win_over_ids_when_the_checkpoint_names_look_like_ids(tmp_path):
    f = write(tmp_path, "d.csv", "text,label\na,1\nb,3\n")
    d = read_labelled(f, num_labels=3, label_names=["1", "2", "3"])
    assert d.labels.tolist() == [0, 2]  # "1" is the name "1" (id 0), not id 1
    g = write(tmp_path, "e.csv", "text,label\na,0\n")
    with pytest.raises(ValueError, match=r"e.csv:2: unknown label; expected one of the checkpoint's names"):
        read_labelled(g, num_labels=3, label_names=["1", "2", "3"])


# Every kind of bad row: (file name, content, num_labels, label_names, expected message start)
BAD = [
    ("a.jsonl", jsonl({"text": "x", "label": 0}, '{"text": "y", "label": 1'), 2, None, "a.jsonl:2: invalid JSON"),
    ("a.jsonl", jsonl({"text": "x", "label": 0}, "[1, 2]"), 2, None, "a.jsonl:2: expected a JSON object"),
    ("a.jsonl", jsonl({"text": "x", "label": 0}, {"label": 1}), 2, None, "a.jsonl:2: missing field 'text'"),
    ("a.jsonl", jsonl({"text": "x"}), 2, None, "a.jsonl:1: missing field 'label'"),
    ("a.jsonl", jsonl({"text": "x", "label": 0}, {"text": " ", "label": 1}), 2, None, "a.jsonl:2: empty text"),
    ("a.jsonl", jsonl({"text": "x", "label": 1.0}), 2, None, "a.jsonl:1: label of wrong type"),
    ("a.jsonl", jsonl({"text": "x", "label": True}), 2, None, "a.jsonl:1: label of wrong type"),
    ("a.jsonl", jsonl({"text": "x", "label": None}), 2, None, "a.jsonl:1: label of wrong type"),
    ("a.jsonl", jsonl({"text": 5, "label": 0}), 2, None, "a.jsonl:1: 'text' must be a string"),
    ("a.jsonl", jsonl({"text": "x", "label": ""}), 2, None, "a.jsonl:1: empty label"),
    ("a.jsonl", jsonl({"text": "x", "label": 0}, {"text": "y", "label": 2}), 2, None, "a.jsonl:2: unknown label id"),
    ("a.jsonl", jsonl({"text": "x", "label": -1}), 2, None, "a.jsonl:1: unknown label id"),
    (
        "a.jsonl",
        jsonl({"text": "x", "label": "pos"}, {"text": "y", "label": "meh"}),
        2,
        ("neg", "pos"),
        "a.jsonl:2: unknown label; expected an id below 2 or one of the checkpoint's names",
    ),
    (
        "a.jsonl",
        jsonl({"text": "x", "label": "pos"}, {"text": "y", "label": 0}),
        2,
        None,
        "a.jsonl:2: labels mix names and integer ids",
    ),
    (
        "a.jsonl",
        jsonl({"text": "x", "label": "pos"}),
        2,
        None,
        "a.jsonl: the labels are 1 distinct names but the checkpoint's head has 2 classes",
    ),
    (
        "a.jsonl",
        '{"text": "x", "label": 0}\n{"text": "\\ud800", "label": 0}\n',
        2,
        None,
        "a.jsonl:2: an unpaired surrogate",
    ),
    (
        "a.jsonl",
        b'{"text": "x", "label": 0}\n\n{"text": "caf\xe9", "label": 0}\n',
        2,
        None,
        "a.jsonl:3: bytes that are not UTF-8",
    ),
    ("a.jsonl", "\n \n", 2, None, "a.jsonl: the file has no rows"),
    ("a.csv", "text,label\nx,0\ny,1,extra\n", 2, None, "a.csv:3: ragged row: 3 fields; expected 2"),
    ("a.csv", "text,label\nx\n", 2, None, "a.csv:2: ragged row: 1 fields; expected 2"),
    ("a.csv", "sentence,label\nx,0\n", 2, None, "a.csv:1: the header's column 'text' is missing"),
    (
        "a.csv",
        "text;label\nhello;pos\n",
        2,
        None,
        "a.csv:1: the header is one column: the fields seem separated by semicolons (';'), not commas; expected a "
        "comma-separated .csv (re-save it with commas, or with tabs as a .tsv). Received: header 'text;label'",
    ),
    (
        "a.tsv",
        "label,text\npos,hello\n",
        2,
        None,
        "a.tsv:1: the header is one column: the fields seem separated by commas (','), not tabs; expected a "
        "tab-separated .tsv (re-save it with tabs, or with commas as a .csv)",
    ),
    ("a.csv", "text,label,text\nx,0,y\n", 2, None, "a.csv:1: the header's column 'text' appears twice"),
    ("a.csv", 'text,label\nx,0\n"open quote,1\n', 2, None, "a.csv:3: malformed CSV row"),
    ("a.csv", "text,label\nx,0\n,1\n", 2, None, "a.csv:3: empty text"),
    ("a.csv", "text,label\nx, \n", 2, None, "a.csv:2: empty label"),
    ("a.csv", b"text,label\nx,0\ny,\xff\n", 2, None, "a.csv:3: bytes that are not UTF-8"),
    ("a.csv", "", 2, None, "a.csv: the file is empty"),
    ("a.csv", "text,label\n", 2, None, "a.csv: the file has no rows"),
    ("a.tsv", "text\tlabel\nx\t0\ny, z\n", 2, None, "a.tsv:3: ragged row"),
    ("a.txt", "x\n", 2, None, "a.txt: unknown data format"),
]


@pytest.mark.parametrize(("name", "content", "num_labels", "names", "start"), BAD, ids=[b[-1] for b in BAD])
def test_every_bad_row_is_refused_with_file_and_line_on_one_line(tmp_path, name, content, num_labels, names, start):
    f = write(tmp_path, name, content)
    with pytest.raises(ValueError) as info:
        read_labelled(f, num_labels=num_labels, label_names=names)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / start)), msg
    assert "\n" not in msg and "Received: " in msg


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny 2-label checkpoints, unnamed and named neg/pos: the data is refused before any model is built."""
    out = {}
    for names in (None, ("neg", "pos")):
        config = BertCnnConfig(**{**TINY, "num_labels": 2, "label_names": names})
        out[names] = tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck", config)
    return out


@pytest.mark.parametrize(("name", "content", "num_labels", "names", "start"), BAD, ids=[b[-1] for b in BAD])
def test_the_cli_exits_2_with_the_same_line_and_prints_nothing(
    tmp_path, checkpoints, capsys, name, content, num_labels, names, start
):
    f = write(tmp_path, name, content)
    argv = ["evaluate", "--checkpoint", str(checkpoints[names]), "--eval", str(f), "--framework", "torch", "--json"]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith(f"bertcnn evaluate: error: {tmp_path / start}")
    assert out.err.count("\n") == 1 and "Received: " in out.err


def test_a_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        read_labelled(tmp_path / "nope.csv", num_labels=2)
    f = write(tmp_path, "d.csv", "text,label\nx,0\n")
    with pytest.raises(ValueError, match="label_names must name all num_labels=3"):
        read_labelled(f, num_labels=3, label_names=["a", "b"])
    with pytest.raises(ValueError, match="must differ"):
        read_labelled(f, num_labels=2, text_column="x", label_column="x")


LINES = st.one_of(
    st.text(max_size=30),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(["text", "label", "x"]),
                                          st.one_of(st.text(max_size=8), st.integers(-3, 5), st.none(),
                                                    st.floats(allow_nan=True), st.booleans()), max_size=3)),
)  # fmt: skip


@given(
    suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]),
    lines=st.lists(LINES, max_size=6),
    header=st.booleans(),
    crlf=st.booleans(),
    junk=st.binary(max_size=4),
    names=st.sampled_from([None, ("a", "b", "c"), ("1", "2", "3")]),
)
def test_fuzzed_files_only_ever_raise_the_one_line_error(tmp_path_factory, suffix, lines, header, crlf, junk, names):
    sep = "\t" if suffix == ".tsv" else ","
    body = ([f"text{sep}label"] if header else []) + lines
    data = ("\r\n" if crlf else "\n").join(body).encode("utf-8", "surrogatepass") + junk
    f = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    f.write_bytes(data)
    try:
        d = read_labelled(f, num_labels=3, label_names=names)
    except ValueError as e:
        msg = str(e)
        assert msg.startswith(str(f)) and "\n" not in msg and "Received: " in msg, msg
    else:
        assert len(d.texts) == len(d.labels) == len(d.lines) > 0
        assert d.labels.min() >= 0 and d.labels.max() < 3 and len(d.label_names) == 3
