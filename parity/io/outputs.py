"""Output paths, checked before any work: nothing of the user's is ever deleted or overwritten unasked.

Every command validates every path it will write (`--out`, `--taps`, `--json-out`,
`--plot`, export and port destinations) here, before the first byte is written:

- the parent folder exists and is writable;
- the path is not the current folder or one of its ancestors;
- it is not an input of the run (`--checkpoint`, `--train`, `--eval`, `--file`, a port
  source), nor inside one, nor containing one;
- a new path or an empty folder is fine; an existing file needs `--force` and must be a regular
  file (never a pipe or a device); an existing folder is replaced only with `--force` and only
  when it carries this project's marker (`parity.io.owned`) and holds nothing else: anything
  foreign is refused, naming it. A link to a folder is never a folder to write.

The same rules are applied again, atomically, when the output is put in place
(`parity.io.destination`), so nothing that appears during the work is lost.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from parity.io.owned import MARKER, foreign, read_marker

FILE, DIR = "file", "folder"


class OutputError(ValueError):
    """An output path that must not be written; the message is one line."""


def ours(path: str | os.PathLike) -> str | None:
    """What this project wrote at `path` (a folder), by its marker, or None: "a training directory", "an export"....

    "an empty folder" for an empty one (nothing to lose). Never guessed from file names.
    """
    d = Path(path)
    if not d.is_dir() or d.is_symlink():
        return None
    if not any(d.iterdir()):
        return "an empty folder"
    listing = read_marker(d)
    return None if listing is None or not listing.complete else listing.a_kind()


def _inside(a: Path, b: Path) -> bool:
    """Whether `a` is `b` or lies below it."""
    return a == b or b in a.parents


def _resolve(p: Path, flag: str) -> Path:
    try:
        return p.resolve(strict=False)
    except (RuntimeError, OSError) as e:  # a symlink loop (RuntimeError before Python 3.13, ELOOP after)
        raise OutputError(
            f"{flag}: {str(p)!r} cannot be resolved ({type(e).__name__}: a symbolic link loop or an unreadable "
            f"link); choose a plain path. Received: {flag} {str(p)!r}"
        ) from None


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
    p = check_place(path, flag=flag, inputs=inputs)
    if os.path.lexists(p):
        check_existing(p, flag=flag, kind=kind, force=force)
    return p


def check_place(path: str | os.PathLike, *, flag: str, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Where `path` is: its folder exists and is writable; not the current folder, an ancestor or an input."""
    p = Path(path)
    where = _resolve(p, flag)
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
        s = _resolve(Path(source), flag)
        if _inside(where, s) or _inside(s, where):
            raise OutputError(
                f"{flag} must not be, contain or lie inside an input of this run ({str(source)!r}): writing "
                f"it would destroy the input. Choose another path. Received: {flag} {str(p)!r}"
            )
    return p


def describe(p: Path) -> str:
    """'a file', 'a folder', 'a symbolic link (to a folder)', 'a special file (...)', 'gone' for messages."""
    try:
        mode = os.lstat(p).st_mode
    except OSError:
        return "gone"
    if stat.S_ISLNK(mode):
        return "a symbolic link to a folder" if p.is_dir() else "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a file" if stat.S_ISREG(mode) else "a special file (a pipe, device or socket)"


def check_existing(p: Path, *, flag: str, kind: str, force: bool) -> None:
    """The rules for something already at `p`; every refusal offers only a way out that works."""
    what = describe(p)
    here = f"{flag} {str(p)!r}"
    if what.startswith("a special file"):
        raise OutputError(f"{here} is {what}; bertcnn writes only regular files and folders. Choose another path. "
                          f"Received: {here}")  # fmt: skip
    if kind == DIR and what != "a folder":
        hint = " (or the folder it points to)" if what.endswith("folder") else ""
        raise OutputError(f"{flag} must be a folder; {str(p)!r} is {what}. Choose another path{hint}. "
                          f"Received: {here}")  # fmt: skip
    if kind == FILE:
        if what in ("a folder", "a symbolic link to a folder"):
            raise OutputError(f"{flag} must be a file; {str(p)!r} is {ours(p) or what}. Choose another path. "
                              f"Received: {here}")  # fmt: skip
        if not force:
            raise OutputError(f"{here} already exists; pass --force to replace it. Received: {here}")
        return
    if ours(p) == "an empty folder":
        return
    listing = read_marker(p)
    if listing is None or not listing.complete:
        names = sorted(c.name for c in p.iterdir())
        raise OutputError(
            f"{here} is a folder bertcnn did not write (it has no {MARKER} listing its files), so it is never "
            f"replaced, not even with --force. Move it away or choose another path. Received: {here} holding "
            f"{names[:5]}{' ...' if len(names) > 5 else ''}"
        )
    strangers = foreign(p, listing)
    if strangers:
        raise OutputError(
            f"{here} is {listing.a_kind()} of bertcnn's, but also holds files bertcnn did not write (or that changed "
            f"since): {strangers[:5]}{' ...' if len(strangers) > 5 else ''}; they are never deleted, so it is not "
            f"replaced. Move them away or choose another path. Received: {here}"
        )
    if not force:
        raise OutputError(f"{here} already exists ({listing.a_kind()}); pass --force to replace it. Received: {here}")
