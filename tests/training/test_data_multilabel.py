"""Multi-label data files: label lists in JSONL, a separator in CSV/TSV, and every bad row refused with FILE:LINE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.training.data import read_labelled

NAMES = ("news", "sport", "tech")


def write(tmp_path, name: str, content: str):
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    return f


def jsonl(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def test_jsonl_lists_become_a_label_matrix_and_counts(tmp_path):
    f = write(tmp_path, "d.jsonl", jsonl({"text": "a", "labels": ["tech", "news"]}, {"text": "b", "labels": []},
                                        {"text": "c", "labels": [1]}))  # fmt: skip
    d = read_labelled(f, num_labels=3, label_names=NAMES, label_column="labels", multi_label=True)
    assert d.labels.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]] and d.labels.dtype == np.int64
    assert d.counts == (1, 1, 1) and d.multi_label


def test_csv_cells_split_on_the_separator_and_an_empty_cell_is_no_label(tmp_path):
    f = write(tmp_path, "d.csv", 'text,labels\n"x, y",sport| tech\nz,\n')
    d = read_labelled(f, num_labels=3, label_names=NAMES, label_column="labels", multi_label=True)
    assert d.labels.tolist() == [[0, 1, 1], [0, 0, 0]]
    g = write(tmp_path, "d.tsv", "text\tlabels\nx\tsport;news\n")
    d = read_labelled(g, num_labels=3, label_names=NAMES, label_column="labels", multi_label=True, label_separator=";")
    assert d.labels.tolist() == [[1, 1, 0]]


def test_names_from_the_data_are_sorted_into_ids(tmp_path):
    f = write(tmp_path, "d.jsonl", jsonl({"text": "a", "labels": ["z", "b"]}, {"text": "b", "labels": ["m"]}))
    d = read_labelled(f, num_labels=3, label_column="labels", multi_label=True)
    assert d.label_names == ("b", "m", "z") and d.labels.tolist() == [[1, 0, 1], [0, 1, 0]]


@given(st.lists(st.sets(st.sampled_from(NAMES)), min_size=1, max_size=9), st.sampled_from([".jsonl", ".csv", ".tsv"]))
def test_label_sets_written_in_any_format_read_back(tmp_path_factory, sets, suffix):
    d = tmp_path_factory.mktemp("fuzz")
    if suffix == ".jsonl":
        content = jsonl(*({"text": f"t{i}", "labels": sorted(s)} for i, s in enumerate(sets)))
    else:
        sep = "," if suffix == ".csv" else "\t"
        content = f"text{sep}labels\n" + "".join(f"t{i}{sep}{'|'.join(sorted(s))}\n" for i, s in enumerate(sets))
    got = read_labelled(write(d, "f" + suffix, content), num_labels=3, label_names=NAMES, label_column="labels",
                        multi_label=True)  # fmt: skip
    assert got.labels.tolist() == [[int(n in s) for n in NAMES] for s in sets]


BAD = [
    # (file, content, multi_label, expected message start)
    ("a.jsonl", jsonl({"text": "x", "label": "news"}, {"text": "y", "label": ["news", "tech"]}), False,
     "a.jsonl:2: a label list where one label is expected: this checkpoint is single-label"),
    ("a.jsonl", jsonl({"text": "x", "label": []}), False,
     "a.jsonl:1: an empty label list where one label is expected"),
    ("a.jsonl", jsonl({"text": "x", "labels": ["news", "weather"]}), True,
     "a.jsonl:1: unknown label; expected an id below 3 or one of the checkpoint's names"),
    ("a.jsonl", jsonl({"text": "x", "labels": ["news"]}, {"text": "y", "labels": "news"}), True,
     "a.jsonl:2: one label where a list is expected: this checkpoint is multi-label"),
    ("a.jsonl", jsonl({"text": "x", "labels": ["news", "news"]}), True, "a.jsonl:1: a label named twice in one row"),
    ("a.jsonl", jsonl({"text": "x", "labels": ["news", 0]}), True,
     "a.jsonl:1: a label named twice in one row (by name"),
    ("a.jsonl", jsonl({"text": "x", "labels": ["news", 1.5]}), True, "a.jsonl:1: label of wrong type"),
    ("a.jsonl", jsonl({"text": "x", "labels": ["news", " "]}), True, "a.jsonl:1: empty label"),
    ("a.csv", "text,labels\nx,news\ny,news||tech\n", True, "a.csv:3: an empty label between separators"),
    ("a.csv", "text,labels\nx,news|3\n", True, "a.csv:2: unknown label id; expected an integer id in [0, 3)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "multi", "start"), BAD)
def test_every_bad_row_is_refused_with_file_and_line(tmp_path, name, content, multi, start):
    f = write(tmp_path, name, content)
    column = "labels" if multi else "label"
    with pytest.raises(ValueError) as e:
        read_labelled(f, num_labels=3, label_names=NAMES, label_column=column, multi_label=multi)
    message = str(e.value)
    assert message.startswith(str(tmp_path / start.split(":")[0]) + start[len(start.split(":")[0]) :]), message
    assert "\n" not in message and "Received: " in message


def test_a_separator_that_is_the_delimiter_is_refused(tmp_path):
    f = write(tmp_path, "a.csv", "text,labels\nx,news\n")
    with pytest.raises(ValueError, match=r"a.csv: the label separator ',' is the file's own field delimiter"):
        read_labelled(f, num_labels=3, label_names=NAMES, label_column="labels", multi_label=True, label_separator=",")
