"""Putting a staged output in place: one system call, the destination re-checked at the swap itself.

An output is staged in `.NAME.staging` beside its destination NAME (a folder, or a folder holding
the one file) and put in place with Linux `renameat2`:

- NAME absent: `RENAME_NOREPLACE`, so a file or folder that appeared at NAME during the work is
  never replaced (the command is refused instead, exit 2);
- NAME present: `RENAME_EXCHANGE` (one step: NAME names the old output, then the new one, never
  nothing), after which the old one, now at the staging path, is checked: a folder must carry this
  project's marker (`parity.io.owned`) or be empty, a file must still be a regular file (or a link).
  Otherwise the exchange is undone and the command refused. The old folder's own files are deleted;
  anything else in it (the user's notes, a file that appeared during the work) is moved into the new
  folder, so nothing of the user's is lost.

Where the system cannot exchange (no glibc renameat2, a file system without it) the fallback is two
renames through `.NAME.previous`; `recover` repairs what a kill at any point leaves, at the start of
the next writer of NAME (under its lock). Every swap and clean-up runs with SIGINT/SIGTERM held back.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from parity.io.outputs import OutputError, describe
from parity.io.owned import discard, foreign, read_marker

AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_STOPS = (signal.SIGINT, signal.SIGTERM)

__all__ = ["SwapError", "exchange", "held_signals", "previous_of", "publish", "recover", "staging_of"]


class SwapError(OutputError):
    """The destination changed during the work so that putting the output there would lose something."""


def staging_of(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.staging")


def previous_of(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.previous")


def _renameat2() -> Callable | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (musl, macOS): the fallbacks
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _rename2(a: Path, b: Path, flags: int) -> bool:
    """renameat2(a, b, flags); False where the system cannot, OSError for a real failure."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(b))


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` in one step (both must exist); False where the system cannot."""
    return _rename2(a, b, RENAME_EXCHANGE)


def _rename_noreplace(new: Path, dest: Path) -> None:
    """Rename `new` to `dest` only if nothing is at `dest` (FileExistsError otherwise)."""
    try:
        if _rename2(new, dest, RENAME_NOREPLACE):
            return
    except OSError as e:
        if e.errno == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, "exists", str(dest)) from None
        raise
    if new.is_dir():  # fallback: a folder cannot be renamed onto a file or a non-empty folder
        try:
            os.rename(new, dest)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise FileExistsError(errno.EEXIST, "exists", str(dest)) from None
            raise
        return
    os.link(new, dest)  # fallback for a file: link() never replaces (EEXIST)
    os.unlink(new)


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


def publish(new: Path, dest: Path, *, flag: str, replace: bool, keep_foreign: bool = False) -> None:
    """Put the staged `new` (a file or a folder) at `dest`, re-checking `dest` in the same step.

    `replace`: `dest` was found replaceable when the command started (`--force` on a file, or a
    folder this project wrote, or an empty one); otherwise anything now at `dest` appeared during
    the work and is never touched. `keep_foreign` (a training save): files of the user's in the old
    folder are moved into the new one; otherwise (`--force`) they make the swap refused, as they
    would have at the start. Call with signals held. Raises SwapError (exit 2), having put
    everything back, when `dest` changed into something that must not be replaced.
    """
    is_dir = new.is_dir()
    if not os.path.lexists(dest) or not replace:
        try:
            _rename_noreplace(new, dest)
        except FileExistsError:
            raise SwapError(
                f"{flag} {str(dest)!r} appeared while this command ran ({describe(dest)}); it was left untouched "
                f"and nothing was written. Move it away or choose another path, then run again. "
                f"Received: {flag} {str(dest)!r}"
            ) from None
        return
    if not exchange(new, dest):
        _publish_by_two_renames(new, dest, flag=flag, keep_foreign=keep_foreign)
        return
    old = new  # the exchange put the previous output at the staging path
    problem, strangers = _old_problem(old, dest, is_dir=is_dir, keep_foreign=keep_foreign)
    if problem is not None:
        exchange(old, dest)  # undo: dest is exactly what it was, the new output back in staging
        raise SwapError(
            f"{flag} {str(dest)!r} changed while this command ran: {problem}; nothing was replaced. Move those "
            f"files away (or choose another path), then run again. Received: {flag} {str(dest)!r}"
        )
    _drop_old(old, dest, is_dir=is_dir, strangers=strangers)


def _old_problem(old: Path, new: Path, *, is_dir: bool, keep_foreign: bool) -> tuple[str | None, list[str]]:
    """Why the output that was at the destination (now at `old`) must not be replaced, or None; and its
    foreign entries (what will be moved into the new output `new`)."""
    kind = describe(old)
    if not is_dir:
        return (None if kind == "a file" or kind.startswith("a symbolic link") else f"it is now {kind}"), []
    if kind != "a folder":
        return f"it is now {kind}", []
    listing = read_marker(old)
    if listing is None:
        names = sorted(p.name for p in old.iterdir())
        return (None if not names else f"it holds files bertcnn did not write: {names[:5]}"), []
    strangers = foreign(old, listing)
    if strangers and not keep_foreign:
        return f"it now holds files bertcnn did not write (or that changed since): {strangers[:5]}", strangers
    clash = [rel for rel in strangers if os.path.lexists(new / rel)]
    return (f"files of yours there have the names of its new files: {clash[:5]}" if clash else None), strangers


def _drop_old(old: Path, dest: Path, *, is_dir: bool, strangers: list[str]) -> None:
    """Delete the replaced output; a folder's foreign entries are moved into the new one."""
    if not is_dir:
        os.unlink(old)
        return
    if read_marker(old) is None:
        old.rmdir()  # empty, checked above
        return
    left = discard(old, rescue_to=dest, strangers=strangers)
    if left:
        raise SwapError(
            f"{str(dest)!r} is in place, but {left[:5]} could not be moved back into it from {str(old)!r} (its "
            f"names are taken); move them by hand. Received: {str(dest)!r}"
        )


def _publish_by_two_renames(new: Path, dest: Path, *, flag: str, keep_foreign: bool) -> None:
    """The fallback: dest -> .NAME.previous, new -> dest; `recover` finishes it after a kill in between."""
    is_dir = new.is_dir()
    if not is_dir:
        kind = describe(dest)
        if kind != "a file" and not kind.startswith("a symbolic link"):
            raise SwapError(f"{flag} {str(dest)!r} changed while this command ran: it is now {kind}; nothing was "
                            f"replaced. Received: {flag} {str(dest)!r}")  # fmt: skip
        os.replace(new, dest)
        return
    previous = previous_of(dest)
    os.rename(dest, previous)
    problem, strangers = _old_problem(previous, new, is_dir=True, keep_foreign=keep_foreign)
    if problem is not None:
        os.rename(previous, dest)
        raise SwapError(f"{flag} {str(dest)!r} changed while this command ran: {problem}; nothing was replaced. "
                        f"Received: {flag} {str(dest)!r}")  # fmt: skip
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(previous, dest)
        raise
    _drop_old(previous, dest, is_dir=True, strangers=strangers)


def recover(dest: Path) -> None:
    """Finish or undo a publish a kill interrupted, so `dest` holds the newest whole output. Run under the lock.

    Killed while staging or before the swap: the staged output goes (the command did not finish).
    Killed between the fallback's renames: `dest` is missing, so the whole staged output (or else
    the previous one) becomes `dest`. Killed after an exchange: the staging path holds the previous
    output, whose own files are deleted and the rest moved into `dest`. A leftover without this project's marker is
    never touched: the next writer is refused, naming it.
    """
    staging, previous = staging_of(dest), previous_of(dest)
    with held_signals():
        if not os.path.lexists(dest) and previous.is_dir() and not previous.is_symlink():
            listing = read_marker(staging) if staging.is_dir() else None
            whole = listing is not None and listing.complete and listing.kind != "file"
            os.rename(staging if whole else previous, dest)  # finish the fallback's swap, or undo it
        for leftover in (staging, previous):
            if not os.path.lexists(leftover):
                continue
            listing = read_marker(leftover) if leftover.is_dir() and not leftover.is_symlink() else None
            if listing is not None and (not listing.complete or listing.kind == "file"):
                shutil.rmtree(leftover, ignore_errors=True)  # a staging folder: nothing in it but our output
            elif listing is not None:
                discard(leftover, rescue_to=dest if dest.is_dir() else None)
            elif leftover.is_dir() and not leftover.is_symlink() and not any(leftover.iterdir()):
                leftover.rmdir()
            if os.path.lexists(leftover):
                raise SwapError(
                    f"{str(leftover)!r} is in the way of writing {str(dest)!r}: bertcnn uses that name while it "
                    "writes, and this one holds files bertcnn did not write (or could not move back). Look inside, "
                    f"move what you want to keep, delete it, then run again. Received: {str(leftover)!r}"
                )
