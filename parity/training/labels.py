"""Labels as a data file writes them -> label ids, by the rules of `parity.training.data` (its docstring).

Every bad label stops the read with `FILE:LINE: what was wrong; expected ...; how to fix.
Received: ...` (a ValueError), as every bad row does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["SHOW", "Raw", "bad", "label_set", "resolve", "split_cell"]

_INT = re.compile(r"[0-9]+")  # an id as written in a file: decimal digits, no sign
SHOW = 80  # characters of a bad value quoted in an error
Row = tuple[int, str, object]  # (line, text, labels)


def bad(path: Path, line: int, what: str, received: object) -> ValueError:
    if isinstance(received, str) and len(received) > SHOW:
        received = received[:SHOW] + "..."
    shown = received if isinstance(received, Raw) else repr(received)
    return ValueError(f"{path}:{line}: {what}. Received: {shown}")


class Raw(str):
    """Already formatted for `Received:` (a description, not a value to quote)."""


def split_cell(path: Path, line: int, cell: str, separator: str) -> list[str]:
    """A CSV/TSV multi-label cell: labels separated by `separator`; an empty cell is the empty set."""
    if not cell:
        return []
    items = [x.strip() for x in cell.split(separator)]
    if not all(items):
        raise bad(path, line, f"an empty label between separators; expected labels separated by {separator!r} "
                   f"(an empty cell for no label)", cell)  # fmt: skip
    return items


def label_set(path: Path, line: int, label, multi_label: bool, column: str) -> list:
    """The row's labels as a list: one in single-label mode (a list refused), any number in multi-label mode."""
    if not multi_label:
        if isinstance(label, list):
            what = "an empty label list" if not label else "a label list"
            raise bad(path, line, f"{what} where one label is expected: this checkpoint is single-label (one class "
                       "per text); give one name or id, or train a multi-label head (`bertcnn init NEW_CK --backbone "
                       "CK --multi-label --labels a,b,c`)", Raw(json.dumps(label)[:SHOW]))  # fmt: skip
        if label == "":
            raise bad(path, line, "empty label; expected a label name or an integer id", label)
        return [label]
    if not isinstance(label, list):
        raise bad(path, line, f"one label where a list is expected: this checkpoint is multi-label; give {column!r} "
                   'as a JSON list of names or ids (["a", "b"], [] for none)', label)  # fmt: skip
    seen = set()
    for item in label:
        if item in seen:
            raise bad(path, line, "a label named twice in one row; expected each label at most once",
                       Raw(json.dumps(label)[:SHOW]))  # fmt: skip
        seen.add(item)
    return label


# -- labels --------------------------------------------------------------------------------------
def resolve(
    path: Path, rows: list[Row], num_labels: int, names: tuple[str, ...] | None
) -> tuple[list[list[int]], tuple[str, ...], bool]:
    """Each row's labels (a list; one in single-label mode) -> ids, by the rules of the module docstring."""
    items = [(line, label) for line, _, labels in rows for label in labels]
    if names is not None:
        index = {n: i for i, n in enumerate(names)}
        ids_allowed = not any(_INT.fullmatch(n) for n in names)

        def one(line: int, label) -> int:
            if isinstance(label, str) and label in index:
                return index[label]
            if isinstance(label, int) or (ids_allowed and _INT.fullmatch(label)):
                return _id(path, line, label, num_labels)
            how = "one of" if not ids_allowed else f"an id below {num_labels} or one of"
            raise bad(path, line, f"unknown label; expected {how} the checkpoint's names {list(names)!r}", label)

        return _sets(path, rows, one), names, True
    if not items:
        raise ValueError(f"{path}: no row has a label, so there are no names to give the classes; expected at least "
                         f"one labelled row (or a checkpoint that names its labels). Received: {len(rows)} rows, "
                         "each with an empty label list")  # fmt: skip
    first_line, first = items[0]
    by_id = isinstance(first, int) or bool(_INT.fullmatch(first))
    for line, label in items:
        if (isinstance(label, int) or bool(_INT.fullmatch(label))) != by_id:
            kind = "integer ids" if by_id else "names"
            raise bad(path, line, f"labels mix names and integer ids; expected {kind} throughout, as on line "
                       f"{first_line} ({first!r})", label)  # fmt: skip
    if by_id:
        return _sets(path, rows, lambda line, label: _id(path, line, label, num_labels)), \
            tuple(map(str, range(num_labels))), False  # fmt: skip
    found = sorted({label for _, label in items})
    if len(found) != num_labels:
        # Naming cannot change a head's size: the advice is a new head on the checkpoint's encoder.
        raise ValueError(
            f"{path}: the labels are {len(found)} distinct names but the checkpoint's head has {num_labels} classes "
            f"(num_labels={num_labels}) and no names; expected exactly {num_labels} names, or start from a new "
            f"{len(found)}-class head on the checkpoint's encoder: `bertcnn init NEW_CK --backbone CK --labels "
            f"{','.join(found)}` (CK a checkpoint directory; its BERT kept, the head new and untrained) and train "
            f"NEW_CK. Received: {found[:20]!r}"
        )
    index = {n: i for i, n in enumerate(found)}
    return _sets(path, rows, lambda line, label: index[label]), tuple(found), True


def _sets(path: Path, rows: list[Row], one) -> list[list[int]]:
    """Each row's labels as ids; a row naming one label twice (by name and by id) is refused."""
    out = []
    for line, _, labels in rows:
        ids = [one(line, label) for label in labels]
        if len(set(ids)) != len(ids):
            raise bad(path, line, "a label named twice in one row (by name and by id); expected each label at "
                       "most once", Raw(json.dumps(labels)[:SHOW]))  # fmt: skip
        out.append(ids)
    return out


def _id(path: Path, line: int, label: str | int, num_labels: int) -> int:
    # Python refuses int() of very long digit strings; anything that long is out of range anyway.
    value = int(label) if isinstance(label, int) or len(label) <= 18 else num_labels
    if not 0 <= value < num_labels:
        raise bad(path, line, f"unknown label id; expected an integer id in [0, {num_labels})", label)
    return value
