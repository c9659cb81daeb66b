"""A folder replaced whole, atomically for readers: stage beside it, exchange, delete the old one.

A training directory DIR is rewritten at every save while other processes may read it
(`predict`, `evaluate`, `port`, `report`), and a run may be killed at any moment. So a
save is staged in `.DIR.staging` and swapped in with Linux `renameat2(RENAME_EXCHANGE)`
(one system call: the path DIR names the old save, then the new one, never nothing),
after which the staging folder holds the old save and is deleted. Where the file system
or kernel cannot exchange, the fallback is two renames (DIR -> `.DIR.previous`, staging
-> DIR), between which DIR is briefly missing; `recover` repairs what a kill at any point
of either leaves. The final swap and every clean-up run with SIGINT/SIGTERM held back,
so a second Ctrl-C cannot cut them short and leave a hidden folder beside DIR.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from parity.io.files import remove

AT_FDCWD = -100
RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}
_STOPS = (signal.SIGINT, signal.SIGTERM)

__all__ = ["exchange", "held_signals", "previous_of", "recover_dir", "staging_of", "swap_in"]


def staging_of(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.staging")


def previous_of(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.previous")


def _renameat2() -> Callable | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (musl, macOS): two renames instead
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` in one step (both must exist); False where the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """SIGINT/SIGTERM held back (delivered right after the block) in the main thread; a no-op elsewhere."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def swap_in(staging: Path, dest: Path) -> None:
    """Make the whole folder `staging` be `dest`; the old `dest` is deleted. Call with signals held."""
    if not dest.exists():
        os.rename(staging, dest)
        return
    if exchange(staging, dest):
        remove(staging)  # it holds the old save now
        return
    previous = previous_of(dest)
    remove(previous)
    os.replace(dest, previous)
    try:
        os.replace(staging, dest)
    except BaseException:
        os.replace(previous, dest)
        raise
    remove(previous)


def recover_dir(dest: Path, is_whole: Callable[[Path], bool]) -> None:
    """Finish or undo a swap a kill interrupted, so `dest` holds the newest whole folder.

    Killed while staging: `dest` is intact, the partial staging is dropped. Killed between
    the fallback's renames: `dest` is missing and the staging folder is whole, so it becomes
    `dest` (or, were it not whole, `.previous` goes back). Killed after an exchange or after
    the renames: only the leftover (the old save) is deleted.
    """
    staging, previous = staging_of(dest), previous_of(dest)
    with held_signals():
        if not dest.exists():
            if staging.is_dir() and is_whole(staging):
                os.replace(staging, dest)
            elif previous.is_dir() and is_whole(previous):
                os.replace(previous, dest)
        for leftover in (staging, previous):
            if (leftover.exists() or leftover.is_symlink()) and (dest.exists() or not is_whole(leftover)):
                remove(leftover)
