"""One writer per output: an OS lock (`flock`) on `.NAME.lock` beside it, held while the command writes NAME.

Every command that writes a folder or file takes it (`init`, `port`, `export`, `train` for the
whole run; `predict --taps`, `report --json-out/--plot` while they write). The lock file sits beside
NAME because NAME itself is replaced by renames. The kernel releases a `flock` when its process
dies, so a SIGKILLed run never leaves a stale lock; the file names the holder (pid, host, start
time, command) for the refusal message, and is removed on release. After locking, the file is
checked to still be the one at the path, so a release racing a new writer cannot give two writers
the lock. The lock file is opened without following links and must be a regular file: a link
planted at `.NAME.lock` can never make us write somewhere else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from parity.io.files import current_umask
from parity.io.outputs import OutputError


def lock_path(target: str | os.PathLike) -> Path:
    d = Path(target)
    return d.with_name(f".{d.name}.lock")


def _open(path: Path, flag: str, target) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o666 & ~current_umask())  # fmt: skip
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
            raise
        fd = None
    if fd is not None:
        st = os.fstat(fd)
        # A hard link would make the lock's content land in someone's file; a file with other content is theirs.
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and (st.st_size == 0 or _holder(fd) != "holder unknown"):
            return fd
    if fd is not None:
        os.close(fd)
    raise OutputError(
        f"{flag}: {str(path)!r}, where bertcnn keeps the lock of {str(target)!r}, is not a lock file of bertcnn's (a "
        f"link, a folder, a special file or a file with other content); bertcnn never writes through it. Move it "
        f"away, then run again. "
        f"Received: {str(path)!r}"
    )


@contextlib.contextmanager
def writer_lock(target: str | os.PathLike, *, flag: str = "--out") -> Iterator[Path]:
    """Hold the one-writer lock of `target`; a second writer gets OutputError (exit 2) at once."""
    path = lock_path(target)
    while True:
        fd = _open(path, flag, target)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OutputError(
                f"{flag} {str(target)!r} is being written by another run ({holder}); one writer at a time: wait for "
                f"it to finish or stop it, or write somewhere else. Received: {flag} {str(target)!r}"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.lstat(path).st_ino
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
    command = " ".join(str(info.get("command", "")).split())  # one line, whatever the holder's argv held
    return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}: {command}".strip()
