"""Files, written whole or not at all: the one atomic writer, umask, sha256, JSON reading.

Everything the project writes goes through here: a file is written beside its
destination and renamed into place; a directory is staged beside its destination and
swapped in. Files get the mode `open()` would give (0666 minus the umask), also where a
library stages through private 0600 temp files (safetensors' writer) or `mkdtemp`
makes a 0700 folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from parity import interrupt
from parity.jsonfile import MAX_JSON_BYTES, read_json

__all__ = [
    "MAX_JSON_BYTES",
    "current_umask",
    "fsync_tree",
    "honour_umask",
    "honour_umask_tree",
    "read_json",
    "remove",
    "sha256_file",
    "staged_dir",
    "staged_file",
    "write_text_atomic",
]


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Give `path` the mode `open()` / `mkdir()` would have: 0666 (0777 for a folder) minus the umask.

    Libraries that stage through private temp files (safetensors' writer) leave 0600,
    which a server running as another user cannot read.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def honour_umask_tree(directory: str | os.PathLike) -> None:
    """`honour_umask` on a folder and every file and folder below it."""
    root = Path(directory)
    honour_umask(root, directory=True)
    for p in root.rglob("*"):
        if not p.is_symlink():
            honour_umask(p, directory=p.is_dir())


def fsync_tree(directory: str | os.PathLike) -> None:
    """Flush every file directly in `directory` to disk (a save must survive a power cut)."""
    for f in Path(directory).iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write whole or not at all: a temp file beside `path`, renamed into place."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        interrupt.raise_if_requested()
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; swapped onto `path` when it succeeds.

    On failure the temporary file is removed and `path` is untouched.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        honour_umask(tmp)
        interrupt.raise_if_requested()  # a Ctrl-C swallowed during the work: nothing is published
        _swap_in(tmp, p)
    finally:
        remove(tmp)


@contextlib.contextmanager
def staged_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """A new folder beside `dest` for the block to fill; when it succeeds it replaces `dest`.

    `dest` is at every moment either the previous one or the new folder, never half of
    either; on failure the staging folder is removed and `dest` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        honour_umask_tree(tmp)
        interrupt.raise_if_requested()  # a Ctrl-C swallowed during the work: nothing is published
        _swap_in(tmp, dest)
    finally:
        remove(tmp)


def _swap_in(new: Path, dest: Path) -> None:
    """Rename `new` onto `dest`; a previous `dest` (file or folder) is moved aside first, then removed."""
    old = None
    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        remove(old)


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a folder tree (never following a link)."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
