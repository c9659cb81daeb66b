"""What this project wrote, recorded rather than guessed: the marker in every folder it creates.

Every folder `bertcnn` writes (a checkpoint, an export, a training directory) holds `.bertcnn.json`
listing its own files with their size and sha256. `--force` and every training save remove or
replace only files that are listed *and* unchanged; anything else inside (a user's notes, a file the
user edited, a link, a folder) is foreign: refused before work, and kept if it appears during it.
A folder without the marker is never treated as ours, whatever its files are called.

While a folder is being staged its marker says so (`"files": null`): such a folder (a hidden
`.NAME.staging` beside its destination) holds nothing but this project's partial output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from parity.io.files import honour_umask, sha256_file

MARKER = ".bertcnn.json"
KINDS = ("checkpoint", "training directory", "export", "file")
MAX_MARKER_BYTES = 1 << 20  # a listing of a few dozen files; anything bigger is not ours

__all__ = ["KINDS", "MARKER", "Listing", "discard", "foreign", "read_marker", "write_marker"]


@dataclass(frozen=True)
class Listing:
    """A marker's content: what kind of folder, and its files (relative POSIX path -> (size, sha256))."""

    kind: str
    files: dict[str, tuple[int, str]] | None  # None: still being staged, everything inside is ours

    @property
    def complete(self) -> bool:
        return self.files is not None

    def a_kind(self) -> str:
        """'a checkpoint', 'an export', ... for messages."""
        return ("an " if self.kind[0] in "aeiou" else "a ") + self.kind


def write_marker(
    folder: str | os.PathLike,
    kind: str,
    *,
    complete: bool = True,
    only: Iterable[str] | None = None,
    known: Mapping[str, str] | None = None,
) -> Listing:
    """Record the files in `folder` (all of them, or `only` those) or mark it as being staged; returns the listing.

    `known`: sha256s the caller has just computed (relative path -> hex), so big files are not read twice.
    """
    if kind not in KINDS:
        raise ValueError(f"marker kind must be one of {KINDS}. Received: {kind!r}")
    root = Path(folder)
    files = None
    if complete:
        files = {}
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        for rel in names if only is None else sorted(set(only)):
            if rel != MARKER:
                p = root / rel
                files[rel] = (p.stat().st_size, (known or {}).get(rel) or sha256_file(p))
    listed = None if files is None else {k: {"size": s, "sha256": h} for k, (s, h) in files.items()}
    doc = {"written_by": "bertcnn", "kind": kind, "files": listed}
    path = root / MARKER
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    honour_umask(path)
    return Listing(kind, files)


def read_marker(folder: str | os.PathLike) -> Listing | None:
    """The folder's listing, or None when it has no valid marker (then nothing in it is ours)."""
    path = Path(folder) / MARKER
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MARKER_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("written_by") != "bertcnn" or doc.get("kind") not in KINDS:
        return None
    raw = doc.get("files")
    if raw is None:
        return Listing(doc["kind"], None)
    if not isinstance(raw, dict):
        return None
    files = {}
    for name, entry in raw.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)
        if not ok or not _safe_relative(name):
            return None
        files[name] = (entry["size"], entry["sha256"])
    return Listing(doc["kind"], files)


def _safe_relative(name: object) -> bool:
    """A listed name stays inside its folder (a hostile marker must not make us delete elsewhere)."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\0" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _unchanged(path: Path, size: int, digest: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size and sha256_file(path) == digest


def foreign(folder: str | os.PathLike, listing: Listing | None = None) -> list[str]:
    """Everything in `folder` this project did not write, as relative paths (sorted; [] when all is ours).

    Without a listing (no marker) everything is foreign. A listed file whose size or sha256 changed
    is foreign too (the user edited it); so are links, special files and folders no listed file needs.
    """
    root = Path(folder)
    listing = read_marker(root) if listing is None else listing
    files = listing.files if listing is not None else None
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in [*filenames, *dirnames]:
            p = here / name
            rel = p.relative_to(root).as_posix()
            if rel == MARKER and listing is not None:
                continue
            if p.is_symlink() or not (p.is_dir() or p.is_file()):
                out.append(rel)
            elif p.is_dir():
                if files is None or not any(f.startswith(rel + "/") for f in files):
                    out.append(rel)
            elif files is None or rel not in files or not _unchanged(p, *files[rel]):
                out.append(rel)
        dirnames[:] = [d for d in dirnames if (here / d).relative_to(root).as_posix() not in out]
    return sorted(out)


def discard(
    folder: str | os.PathLike, *, rescue_to: str | os.PathLike | None = None, strangers: list[str] | None = None
) -> list[str]:
    """Delete what this project wrote in `folder` and the folder itself; keep everything else.

    A folder whose marker says it is still being staged is all ours and goes whole. Otherwise only
    listed, unchanged files are deleted; each foreign entry is moved into `rescue_to` (where its name
    is free) so nothing of the user's is lost. Returns what stayed behind (then `folder` stays too).
    `strangers`: `foreign(folder)` when the caller has just computed it (it hashes every file).
    """
    root = Path(folder)
    if not root.is_dir() or root.is_symlink():
        return []
    listing = read_marker(root)
    if listing is not None and not listing.complete:
        shutil.rmtree(root, ignore_errors=True)
        return []
    strangers = foreign(root, listing) if strangers is None else strangers
    for rel in sorted((listing.files if listing else {}), key=lambda r: -r.count("/")):
        if rel not in strangers:
            (root / rel).unlink(missing_ok=True)
    kept = []
    for rel in strangers:
        if "/" in rel and rel.split("/")[0] in strangers:
            continue  # moved with its top-level folder
        target = Path(rescue_to) / rel if rescue_to is not None else None
        if target is not None and not os.path.lexists(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / rel, target)
        else:
            kept.append(rel)
    (root / MARKER).unlink(missing_ok=True)
    for d in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):  # not empty: a foreign entry stayed
            d.rmdir()
    try:
        root.rmdir()
    except OSError:
        return kept or sorted(p.name for p in root.iterdir())
    return kept
