"""Hugging Face model ids wherever a backbone or checkpoint directory is taken: `bert-base-uncased` works too.

A name that is not a local path but looks like a hub id (`org/name` or `name`) is resolved by
`huggingface_hub.snapshot_download`, fetching only the files a backbone or checkpoint needs:
the local cache first; the network only when the user allows it, since `bertcnn` sets
`HF_HUB_OFFLINE=1` unless told otherwise (no surprise downloads; `HF_HUB_OFFLINE=0` to fetch);
`revision` pins a branch, tag or commit. An id that is offline and not cached is one line
naming it and what to do, never a traceback. A mistyped local path is not taken for an id:
one plainly meant as a path (`./x`, `runs/x` where `runs/` exists) or a near miss of a local
name is said to be not found locally.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from parity.io.checkpoint import CONFIG_NAME, TOKENIZER_FILES, WEIGHTS_NAME

# What a BERT backbone or a bertcnn checkpoint is made of: nothing else is downloaded.
FILES = [CONFIG_NAME, WEIGHTS_NAME, *TOKENIZER_FILES]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def looks_like_id(name: str) -> bool:
    """`org/name` or `name` (letters, digits, `-`, `_`, `.`): a hub id, when no such local path exists."""
    return bool(_REPO_ID.match(name)) and not name.endswith((".pt", ".pth", ".bin", ".keras", ".h5", ".safetensors"))


def near_miss(path: str | os.PathLike) -> Path | None:
    """An existing file or folder beside `path` whose name is one typo away (`runs/chekpoint` -> `runs/checkpoint`)."""
    p = Path(path).expanduser()
    parent = p.parent
    try:
        names = [c.name for c in parent.iterdir()] if parent.is_dir() else []
    except OSError:
        return None
    close = difflib.get_close_matches(p.name, names, n=1, cutoff=0.8)
    return parent / close[0] if close else None


def meant_local(name: str) -> bool:
    """Whether `name`, which does not exist, was plainly meant as a local path, not a hub id: it starts with `.`,
    `~` or `/`, has more than one separator, or its first part is a folder here (`runs/ck2` with `runs/`)."""
    parts = name.replace(os.sep, "/").split("/")
    return name.startswith((".", "~", "/")) or len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())


def _not_found_locally(name: str, flag: str) -> FileNotFoundError:
    close = near_miss(name)
    hint = f" (did you mean {str(close)!r}?)" if close is not None else ""
    return FileNotFoundError(
        f"{flag} {name!r} not found locally{hint}: no such file or folder; expected an existing local path (check "
        f"it; a Hugging Face hub id has the form org/name). Received: {name!r}"
    )


def resolve(name: str | os.PathLike, *, revision: str | None = None, flag: str = "--backbone") -> Path:
    """A local folder for `name`: the path itself when it exists, else the hub snapshot of the id `name`.

    A name that does not exist and was plainly meant as a local path (`meant_local`) is refused
    as not found here, never sent to the hub; one the hub does not have either, but that is a
    near miss of a file or folder here, is refused as not found here too, naming the near miss.
    """
    p = Path(name)
    if p.exists():
        if revision is not None:
            raise ValueError(
                f"--revision pins a Hugging Face hub id; {flag} {str(name)!r} is a local path. Drop --revision. "
                f"Received: --revision {revision}"
            )
        return p
    if not looks_like_id(str(name)):
        return p  # a path that does not exist: the caller's reader says so
    if meant_local(str(name)):
        raise _not_found_locally(str(name), flag)
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:
        raise ValueError(
            f"{flag} {str(name)!r} is not a local path, and resolving it as a Hugging Face hub id needs "
            "huggingface_hub: `pip install huggingface_hub` (it comes with `bertcnn[torch]`). Received: not installed"
        ) from None
    try:
        return Path(huggingface_hub.snapshot_download(str(name), revision=revision, allow_patterns=FILES))
    except errors.LocalEntryNotFoundError:
        if near_miss(name) is not None:
            raise _not_found_locally(str(name), flag) from None
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        why = (
            "it is not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE=1, bertcnn's default); "
            "fetch it once with HF_HUB_OFFLINE=0 in the environment, or pass a local directory"
            if offline
            else "it is not in the local cache and the hub could not be reached; check the network, or pass a local "
            "directory"
        )
        raise ValueError(f"{flag} {str(name)!r} is not a local path, and as a hub id {why}. Received: {name}") from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.HFValidationError) as e:
        if near_miss(name) is not None:
            raise _not_found_locally(str(name), flag) from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(
            f"{flag} {str(name)!r} is neither a local path nor a Hugging Face hub id that resolves ({first}). "
            f"Received: {name}" + (f" --revision {revision}" if revision else "")
        ) from None
