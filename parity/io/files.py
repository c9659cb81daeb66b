"""Files on disk: umask, fsync, sha256, JSON reading; the atomic writer is `parity.io.destination`.

Everything the project writes is staged beside its destination and put in place whole
(`parity.io.destination`, `parity.io.swap`). Files get the mode `open()` would give (0666 minus
the umask), also where a library stages through private 0600 temp files (safetensors' writer).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

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
    """Flush every file below `directory`, then the folders, to disk (an output must survive a power cut)."""
    root = Path(directory)
    for p in [*root.rglob("*"), root]:
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            continue
        fd = os.open(p, os.O_RDONLY | (os.O_DIRECTORY if p.is_dir() else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
