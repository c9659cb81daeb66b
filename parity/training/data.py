"""Labelled data files (`.jsonl`, `.csv`, `.tsv`) read strictly into texts and integer label ids.

A training file with a bad row is a bug in somebody's pipeline, so nothing is skipped or
guessed: every bad row stops the read with one line `FILE:LINE: what was wrong; expected
...; how to fix. Received: ...` (a ValueError, which the CLI turns into exit 2). The only
thing passed over is a truly blank line (nothing but whitespace): counted in
`LabelledData.blank_lines`, never a row.

Formats, by suffix:
- `.jsonl`: one JSON object per line with a string `text` and a `label` (a string name or
  an integer id). Other keys are ignored.
- `.csv` / `.tsv`: a header row naming the columns, then one row per example; quoted
  fields may span lines (the row's line is where it starts). Columns other than the text
  and label columns are ignored; every row must have as many fields as the header.
Files are UTF-8 (a byte-order mark is dropped; non-UTF-8 bytes are reported by line),
with LF or CRLF line ends. Labels are stripped of surrounding whitespace; texts are kept
as written but must not be empty or whitespace only.

Label resolution (`read_labelled(..., num_labels, label_names)`):
- With `label_names` (the checkpoint's names): a label is a name when it is one of them,
  and names win, so a checkpoint named "1","2","3" reads the cell "1" as the name "1"
  (id 0). A label that is not a name is read as an integer id (< num_labels) only when
  no name looks like an integer (then ids and names cannot be confused); anything else
  is an unknown label. JSON integers are always ids.
- Without names: integer ids (< num_labels) or names, not both in one file. Names are
  sorted (Python string order) to give ids and must number exactly `num_labels`, and
  they become the checkpoint's names (`LabelledData.named`). Give the checkpoint names
  up front to fix their order yourself: `bertcnn port CK NEW_CK --labels a,b,c` writes the
  same weights with those names (`bertcnn init --labels` would start a new, untrained head).
  Data with another number of classes than the head needs a new head: `bertcnn init NEW_CK
  --backbone CK --labels a,b,c` keeps CK's BERT.
A held-out file is read with the training file's names (`label_names=train.label_names`)
so a class missing from it keeps its id.

Multi-label (`multi_label=True`, a checkpoint whose problem_type is multi_label_classification):
each row has a *set* of labels, possibly empty. JSONL: a JSON list (`"labels": ["sports",
"politics"]`, `[]`); CSV/TSV: one cell, the labels separated by `label_separator` (default `|`:
`sports|politics`; an empty cell is the empty set). Each label follows the rules above; a label
named twice in a row is refused. `LabelledData.labels` is then an (N, num_labels) 0/1 matrix and
`counts` the rows carrying each label. In single-label mode a list, or an empty one, is refused
by line: it needs a multi-label head (`bertcnn init --multi-label`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.training.labels import SHOW as _SHOW
from parity.training.labels import Raw as _Raw
from parity.training.labels import bad as _bad
from parity.training.labels import label_set, resolve, split_cell

__all__ = ["FORMATS", "LabelledData", "read_labelled"]

Row = tuple[int, str, object]  # (line, text, raw label: str from CSV, str or int from JSON, or a list of them)

FORMATS = (".jsonl", ".csv", ".tsv")


@dataclass(frozen=True)
class LabelledData:
    """Rows of a labelled file; `labels[i]` is the id of `texts[i]`, read from line `lines[i]`."""

    path: str
    texts: tuple[str, ...]
    labels: np.ndarray  # (N,) int64 ids in [0, len(label_names)); multi-label: (N, num_labels) int64 0/1
    label_names: tuple[str, ...]  # names by id; "0", "1", ... when neither data nor checkpoint names them
    lines: tuple[int, ...]  # 1-based line where each row starts
    named: bool = False  # label_names are real names (the checkpoint's or the data's), not ids
    blank_lines: int = 0  # whitespace-only lines passed over (never rows)
    counts: tuple[int, ...] = field(default=())  # rows per label id (multi-label: rows carrying each label)
    multi_label: bool = False

    def __len__(self) -> int:
        return len(self.texts)


def read_labelled(
    path: str | Path,
    *,
    num_labels: int,
    label_names: Sequence[str] | None = None,
    text_column: str = "text",
    label_column: str = "label",
    multi_label: bool = False,
    label_separator: str = "|",
) -> LabelledData:
    """Read a `.jsonl`/`.csv`/`.tsv` file; see the module docstring for formats and label rules."""
    p = Path(path)
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer. Received: {num_labels!r}")
    names = None if label_names is None else tuple(label_names)
    if names is not None and len(names) != num_labels:
        raise ValueError(f"label_names must name all num_labels={num_labels} classes. Received: {list(names)!r}")
    if text_column == label_column:
        raise ValueError(f"the text and label columns must differ. Received: both {text_column!r}")
    if not isinstance(label_separator, str) or len(label_separator) != 1 or label_separator.isspace():
        raise ValueError(f"the label separator must be one character, not a space. Received: {label_separator!r}")
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{p}: unknown data format; expected a file ending in {', '.join(FORMATS)} "
            f"(JSON lines with text and label, or a CSV/TSV with a header row). Received: {p.name!r}"
        )
    if not p.is_file():
        raise FileNotFoundError(f"Data file not found; expected a {'/'.join(FORMATS)} file. Received: {str(p)!r}")
    text = _decode(p, p.read_bytes())
    if suffix == ".jsonl":
        raw, blank = _jsonl(p, text, text_column, label_column)
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        if multi_label and label_separator == delimiter:
            raise ValueError(
                f"{p}: the label separator {label_separator!r} is the file's own field delimiter; "
                f"expected another character (the default is '|'). Received: {label_separator!r}"
            )
        raw, blank = _table(p, text, delimiter, text_column, label_column)
        if multi_label:
            raw = [(line, t, split_cell(p, line, label, label_separator)) for line, t, label in raw]
    if not raw:
        raise ValueError(
            f"{p}: the file has no rows; expected at least one labelled example. "
            f"Received: {blank} blank line(s) and no data"
        )
    raw = [(line, t, label_set(p, line, label, multi_label, label_column)) for line, t, label in raw]
    sets, out_names, named = resolve(p, raw, num_labels, names)
    if multi_label:
        labels = np.zeros((len(sets), len(out_names)), dtype=np.int64)
        for row, ids in enumerate(sets):
            labels[row, ids] = 1
        counts = labels.sum(axis=0)
    else:
        labels = np.asarray([ids[0] for ids in sets], dtype=np.int64)
        counts = np.bincount(labels, minlength=len(out_names))
    return LabelledData(
        path=str(p),
        texts=tuple(t for _, t, _ in raw),
        labels=labels,
        label_names=out_names,
        lines=tuple(line for line, _, _ in raw),
        named=named,
        blank_lines=blank,
        counts=tuple(int(c) for c in counts),
        multi_label=multi_label,
    )


# -- reading -------------------------------------------------------------------------------------


def _decode(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _bad(
            path, line, "bytes that are not UTF-8; expected a UTF-8 text file (re-save it as UTF-8)",
            _Raw(f"byte {data[e.start:e.start + 1]!r} on line {line}"),
        ) from None  # fmt: skip
    return text.removeprefix("\ufeff")


def _jsonl(path: Path, text: str, text_key: str, label_key: str) -> tuple[list[Row], int]:
    rows, blank = [], 0
    # Split on "\n" only: str.splitlines would also split at U+2028 etc., legal inside JSON strings.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a blank line
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            blank += 1
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise _bad(path, n, f"invalid JSON ({e.msg} at column {e.colno}); expected one JSON object per line",
                       line) from None  # fmt: skip
        except RecursionError:
            raise _bad(path, n, "JSON nested too deeply; expected one flat JSON object per line", line) from None
        except ValueError:  # an integer over Python's int() digit limit
            raise _bad(path, n, "a number too long to read; expected one JSON object per line with an integer id "
                       "or a name as label", line) from None  # fmt: skip
        if not isinstance(obj, dict):
            raise _bad(path, n, f'expected a JSON object {{"{text_key}": ..., "{label_key}": ...}}', obj)
        for key in (text_key, label_key):
            if key not in obj:
                raise _bad(
                    path, n, f"missing field {key!r}; expected an object with {text_key!r} and {label_key!r}",
                    _Raw(f"keys {sorted(obj)!r}"[:_SHOW]),
                )  # fmt: skip
        t, label = obj[text_key], obj[label_key]
        if not isinstance(t, str):
            raise _bad(path, n, f"{text_key!r} must be a string", t)
        for item in label if isinstance(label, list) else [label]:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise _bad(
                    path,
                    n,
                    f"label of wrong type; expected a string name or an integer id in {label_key!r} "
                    "(a list of them for a multi-label model)",
                    _Raw(f"{type(item).__name__} {item!r}"[:_SHOW]),
                )
        rows.append(_row(path, n, t, label, text_key))
    return rows, blank


def _table(path: Path, text: str, delimiter: str, text_col: str, label_col: str) -> tuple[list[Row], int]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # a long document is a text, not an error
    rows, blank, start, header = [], 0, 1, None
    try:
        while True:
            start = reader.line_num + 1  # the record's first line
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                shown = text.split("\n")[start - 1] if start <= text.count("\n") + 1 else ""
                raise _bad(path, start, f"malformed {kind} row ({e}); expected fields separated by "
                           f"{delimiter!r}, quotes closed on the row", shown.rstrip("\r")) from None  # fmt: skip
            if not record or (len(record) == 1 and not record[0].strip() and header is not None):
                blank += 1
                continue
            if header is None:
                header = record
                header[0] = header[0].removeprefix("\ufeff")
                _check_delimiter(path, start, header, delimiter)
                for col, flag in ((text_col, "--text-column"), (label_col, "--label-column")):
                    if header.count(col) != 1:
                        what = "appears twice" if col in header else "is missing"
                        raise _bad(path, start, f"the header's column {col!r} {what}; expected a header row naming "
                                   f"the text and label columns once each (rename with {flag})",
                                   _Raw(f"columns {header!r}"[: 3 * _SHOW]))  # fmt: skip
                ti, li = header.index(text_col), header.index(label_col)
                continue
            if len(record) != len(header):
                raise _bad(path, start, f"ragged row: {len(record)} fields; expected {len(header)}, as in the header "
                           "(quote fields that contain the delimiter)", record)  # fmt: skip
            rows.append(_row(path, start, record[ti], record[li], text_col))
    finally:
        csv.field_size_limit(limit)
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header row, then one row per example. Received: "
                         f"{blank} blank line(s)")  # fmt: skip
    return rows, blank


_OTHER_DELIMITERS = {";": "semicolons", ",": "commas", "\t": "tabs", "|": "vertical bars"}


def _check_delimiter(path: Path, line: int, header: list[str], delimiter: str) -> None:
    """A header read as one field that another delimiter splits: the file's separator is not the suffix's."""
    if len(header) != 1:
        return
    for other, name in _OTHER_DELIMITERS.items():
        if other != delimiter and other in header[0]:
            expected = "a comma-separated .csv" if delimiter == "," else "a tab-separated .tsv"
            fix = ("re-save it with commas, or with tabs as a .tsv" if delimiter == "," else
                   "re-save it with tabs, or with commas as a .csv")  # fmt: skip
            raise _bad(path, line, f"the header is one column: the fields seem separated by {name} ({other!r}), "
                       f"not {_OTHER_DELIMITERS[delimiter]}; expected {expected} ({fix})",
                       _Raw(f"header {header[0][:_SHOW]!r}"))  # fmt: skip


def _row(path: Path, line: int, text: str, label: str | int, text_col: str) -> Row:
    for value in (text, label):
        if isinstance(value, str) and not _encodable(value):
            raise _bad(path, line, "an unpaired surrogate escape (like \\ud800); expected valid Unicode text", value)
    if not text.strip():
        raise _bad(path, line, f"empty text; expected a non-empty {text_col!r}", text)
    for item in label if isinstance(label, list) else []:  # a CSV cell may be empty: a multi-label row's empty set
        if isinstance(item, str) and not item.strip():
            raise _bad(path, line, "empty label; expected a label name or an integer id", item)
    if isinstance(label, list):
        label = [x.strip() if isinstance(x, str) else x for x in label]
    elif isinstance(label, str):
        label = label.strip()
    return line, text, label


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
