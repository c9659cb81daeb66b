"""A command's output from start to end: claimed (checked and locked), staged, published, recovered.

    with claim("ck", flag="DIR", kind=DIR, inputs=[...], force=args.force) as out:
        ...                                   # every other check, then the work
        with out.staged("checkpoint") as tmp:  # a marked staging folder beside ck
            write files into tmp
        # here ck is the new checkpoint: swapped in atomically, re-checked at the swap

`claim` checks the path (`parity.io.outputs`), takes the writer lock (`parity.io.lock`), finishes
or undoes what a killed earlier writer left (`parity.io.swap.recover`), and checks what is at the
path under the lock. `staged` writes into `.NAME.staging`, records the files in the marker
(`parity.io.owned`), flushes them to disk, and publishes with the destination re-checked in the
same system call; on any failure the staging folder goes and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from parity import interrupt
from parity.io.files import fsync_tree, honour_umask_tree
from parity.io.lock import writer_lock
from parity.io.outputs import DIR, FILE, OutputError, check_existing, check_place
from parity.io.owned import read_marker, write_marker
from parity.io.swap import held_signals, publish, recover, staging_of

__all__ = ["DIR", "FILE", "Output", "claim", "stage", "write_file"]


@dataclass
class Output:
    """A claimed output path: this process holds its lock until the `claim` block ends."""

    path: Path
    flag: str
    kind: str  # FILE or DIR
    replace: bool  # something was at `path` when claimed, and the checks allowed replacing it

    @contextlib.contextmanager
    def staged(self, marker: str = "file", *, keep_foreign: bool = False) -> Iterator[Path]:
        """Where to write: the staging folder (DIR) or a file path in it (FILE); published when the block succeeds.

        `marker`: the kind recorded in a folder's marker ("checkpoint", "export", "training directory").
        `keep_foreign`: see `parity.io.swap.publish`.
        """
        with stage(self.path, kind=self.kind, marker=marker, flag=self.flag, replace=self.replace,
                   keep_foreign=keep_foreign) as target:  # fmt: skip
            yield target
        self.replace = True  # a later save replaces this one


@contextlib.contextmanager
def claim(
    path: str | os.PathLike,
    *,
    flag: str,
    kind: str = FILE,
    inputs: Iterable[str | os.PathLike | None] = (),
    force: bool = False,
    check: Callable[[Path], None] | None = None,
) -> Iterator[Output]:
    """Check `path`, lock it, recover a killed writer's leftovers, check what is there; yields the Output.

    `check(path)`, if given, replaces the standard rules for an existing path (train's own: a run
    directory may be resumed).
    """
    inputs = list(inputs)
    p = check_place(path, flag=flag, inputs=inputs)
    with writer_lock(p, flag=flag):
        recover(p)
        existed = os.path.lexists(p)
        if check is not None:
            check(p)
        elif existed:
            check_existing(p, flag=flag, kind=kind, force=force)
        yield Output(p, flag, kind, replace=existed)


@contextlib.contextmanager
def stage(
    dest: Path, *, kind: str, marker: str, flag: str, replace: bool, keep_foreign: bool = False
) -> Iterator[Path]:
    """The staging folder `.NAME.staging` beside `dest`, published onto `dest` when the block succeeds.

    Call under `dest`'s writer lock, after `recover` (`claim` does both).
    """
    staging = staging_of(dest)
    try:
        staging.mkdir()  # mkdir honours the umask (tempfile.mkdtemp would make the folder 0700)
    except FileExistsError:
        raise OutputError(
            f"{flag}: {str(staging)!r} exists: another writer of {str(dest)!r} is at work (or one was killed and "
            f"its leftovers were not recovered under the lock). Received: {flag} {str(dest)!r}"
        ) from None
    published = False
    try:
        write_marker(staging, marker if kind == DIR else "file", complete=False)
        target = staging if kind == DIR else staging / dest.name
        yield target
        honour_umask_tree(staging)
        listing = read_marker(staging)
        if listing is None or not listing.complete:  # the filler may record them itself, with hashes it has
            write_marker(staging, marker if kind == DIR else "file")
        fsync_tree(staging)
        interrupt.raise_if_requested()  # a Ctrl-C swallowed during the work (a library callback): nothing published
        with held_signals():
            publish(target, dest, flag=flag, replace=replace, keep_foreign=keep_foreign)
            published = kind == DIR  # the staging path now holds nothing, or what publish could not move back
    except OSError as e:  # a full disk names the file of the destination, not the hidden staging one
        where = str(e.filename or "")
        unnamed_disk = not where and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
        if (unnamed_disk or where.startswith(str(staging))) and e.errno is not None:
            inside = where[len(str(staging)) :].lstrip("/")
            named = dest if kind == FILE or not inside else dest / inside
            raise type(e)(e.errno, e.strerror, str(named)) from None
        raise
    finally:
        if not published:
            with held_signals():
                shutil.rmtree(staging, ignore_errors=True)  # only this run's output (or a file's marker)


def write_file(
    path: str | os.PathLike, write: Callable[[Path], None], *, flag: str, force: bool,
    inputs: Iterable[str | os.PathLike | None] = (),
) -> Path:  # fmt: skip
    """Claim, stage and publish one file in one go: `write(tmp)` fills the staged file."""
    with claim(path, flag=flag, kind=FILE, inputs=inputs, force=force) as out, out.staged() as tmp:
        write(tmp)
    return out.path
