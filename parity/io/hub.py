"""Hugging Face model ids wherever a backbone or checkpoint directory is taken: `bert-base-uncased` works too.

A name that is not a local path but looks like a hub id (`org/name` or `name`) is resolved by
`huggingface_hub.snapshot_download`, fetching only the files a backbone or checkpoint needs:
the local cache first; the network only when the user allows it, since `bertcnn` sets
`HF_HUB_OFFLINE=1` unless told otherwise (no surprise downloads; `HF_HUB_OFFLINE=0` to fetch);
`revision` pins a branch, tag or commit. An id that is offline and not cached is one line
naming it and what to do, never a traceback.
"""

from __future__ import annotations

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


def resolve(name: str | os.PathLike, *, revision: str | None = None, flag: str = "--backbone") -> Path:
    """A local folder for `name`: the path itself when it exists, else the hub snapshot of the id `name`."""
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
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ValueError(
            f"{flag} {str(name)!r} is neither a local path nor a Hugging Face hub id that resolves ({first}). "
            f"Received: {name}" + (f" --revision {revision}" if revision else "")
        ) from None
