"""Output paths, checked before any work: nothing of the user's is ever deleted or overwritten unasked.

Every command validates every path it will write (`--out`, `--taps`, `--json-out`,
`--plot`, export and port destinations) here, before the first byte is written:

- the parent folder exists and is writable;
- the path is not the current folder or one of its ancestors;
- it is not an input of the run (`--checkpoint`, `--train`, `--eval`, `--file`, a port
  source), nor inside one, nor containing one;
- an existing path needs `--force`; `--force` replaces a file, and a folder only when it is
  empty or something this project wrote (a training directory, an export, a checkpoint):
  anything else is refused, naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from parity.jsonfile import read_json

FILE, DIR = "file", "folder"


class OutputError(ValueError):
    """An output path that must not be written; the message is one line."""


def ours(path: str | os.PathLike) -> str | None:
    """What this project wrote at `path` (a folder), or None: "a training directory", "an export", ...."""
    d = Path(path)
    if not d.is_dir() or d.is_symlink():
        return None
    names = {p.name for p in d.iterdir()}
    if not names:
        return "an empty folder"
    if {"trainer_state.json", "config.json", "model.safetensors"} <= names:
        return "a training directory"
    if "manifest.json" in names and "config.json" in names:
        return "an export"
    if {"config.json", "model.safetensors"} <= names:
        try:
            raw = read_json(d / "config.json")
        except (OSError, ValueError):
            return None
        if isinstance(raw, dict) and "kernel_sizes" in raw and "model_type" not in raw:
            return "a checkpoint"
    return None


def _inside(a: Path, b: Path) -> bool:
    """Whether `a` is `b` or lies below it."""
    return a == b or b in a.parents


def check_output(
    path: str | os.PathLike,
    *,
    flag: str,
    kind: str = FILE,
    inputs: Iterable[str | os.PathLike | None] = (),
    force: bool = False,
) -> Path:
    """Refuse (OutputError, exit 2) an output path that is unsafe to write; returns it.

    `flag` names the option in messages (`--out`, `--taps`, `DST`); `kind` is what will be
    written there (FILE or DIR); `inputs` are the run's input paths (None entries skipped).
    """
    p = Path(path)
    where = p.resolve(strict=False)
    parent = where.parent
    if not parent.is_dir():
        raise OutputError(
            f"{flag}: the folder {str(p.parent)!r} does not exist; create it first or choose another place. "
            f"Received: {flag} {str(p)!r}"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"{flag}: the folder {str(p.parent)!r} is not writable; choose a folder you can write to. "
            f"Received: {flag} {str(p)!r}"
        )
    cwd = Path.cwd().resolve()
    if _inside(cwd, where):
        raise OutputError(
            f"{flag} must not be the current folder or one that contains it (it would be replaced); "
            f"name a new folder instead, e.g. {flag} ./run. Received: {flag} {str(p)!r}"
        )
    for source in inputs:
        if source is None or str(source) == "-":
            continue
        s = Path(source).resolve(strict=False)
        if _inside(where, s) or _inside(s, where):
            raise OutputError(
                f"{flag} must not be, contain or lie inside an input of this run ({str(source)!r}): writing "
                f"it would destroy the input. Choose another path. Received: {flag} {str(p)!r}"
            )
    if p.exists() or p.is_symlink():
        _check_existing(p, flag=flag, kind=kind, force=force)
    return p


def _check_existing(p: Path, *, flag: str, kind: str, force: bool) -> None:
    is_dir = p.is_dir() and not p.is_symlink()
    if kind == DIR and not is_dir:
        raise OutputError(f"{flag} must be a folder; {str(p)!r} is a file. Choose another path. Received: {str(p)!r}")
    if kind == FILE and is_dir:
        what = ours(p)
        raise OutputError(
            f"{flag} must be a file; {str(p)!r} is {what or 'a folder'}. Choose another path. Received: {str(p)!r}"
        )
    if not force:
        raise OutputError(f"{flag} {str(p)!r} already exists; pass --force to replace it. Received: {str(p)!r}")
    if is_dir and ours(p) is None:
        raise OutputError(
            f"{flag} {str(p)!r} is a folder this project did not write (not a training directory, export or "
            "checkpoint, and not empty); --force replaces only those. Move it away or choose another path. "
            f"Received: {str(p)!r} holding {sorted(c.name for c in p.iterdir())[:5]}"
        )
