"""One writer per training directory: an OS lock (`flock`) beside it, held for the whole run.

The lock file `.DIR.lock` sits beside DIR (DIR itself is swapped by renames at every save,
so a lock on DIR would not outlive the first save). The kernel releases a `flock` when its
process dies, so a SIGKILLed run never leaves a stale lock; the file names the holder (pid,
host, start time, command) for the refusal message, and is removed on release. After
locking, the file is checked to still be the one at the path, so a release racing a new
writer cannot give two writers the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from parity.io.files import current_umask
from parity.io.outputs import OutputError


def lock_path(directory: str | os.PathLike) -> Path:
    d = Path(directory)
    return d.with_name(f".{d.name}.lock")


@contextlib.contextmanager
def writer_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the one-writer lock of `directory`; a second writer gets OutputError (exit 2) at once."""
    path = lock_path(directory)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputError(
                f"{directory} is being written by another run ({holder}); one writer per training directory: "
                f"wait for it to finish or stop it, or train into another --out. Received: --out {str(directory)!r}"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was released and removed between our open and our lock: take the new one
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv[:6])}  # fmt: skip
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode("utf-8"))
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}: {info.get('command', '')}".strip()
