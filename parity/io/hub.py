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

from parity.io.card import CARD_NAME
from parity.io.checkpoint import CONFIG_NAME, MODELING_FILE, TOKENIZER_FILES, WEIGHTS_NAME
from parity.io.shards import INDEX_NAME, SHARD_PATTERN

# What a BERT backbone or a bertcnn checkpoint is made of: nothing else is downloaded.
FILES = [CONFIG_NAME, WEIGHTS_NAME, INDEX_NAME, SHARD_PATTERN, MODELING_FILE, CARD_NAME, *TOKENIZER_FILES]
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


def resolve(
    name: str | os.PathLike,
    *,
    revision: str | None = None,
    flag: str = "--backbone",
    revision_flag: str = "--revision",
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A local folder for `name`: the path itself when it exists, else the hub snapshot of the id `name`.

    `cache_dir`, `local_files_only` and `token` are `huggingface_hub.snapshot_download`'s (and
    `from_pretrained`'s); `revision_flag` is how the caller's user spells `revision` in messages.

    A name that does not exist and was plainly meant as a local path (`meant_local`) is refused
    as not found here, never sent to the hub; one the hub does not have either, but that is a
    near miss of a file or folder here, is refused as not found here too, naming the near miss.
    """
    p = Path(name)
    if p.exists():
        if revision is not None:
            raise ValueError(
                f"{revision_flag} pins a Hugging Face hub id; {flag} {str(name)!r} is a local path. Drop "
                f"{revision_flag}. Received: {revision_flag} {revision}"
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
        where = huggingface_hub.snapshot_download(
            str(name), revision=revision, allow_patterns=FILES, cache_dir=cache_dir,
            local_files_only=local_files_only, token=token,
        )  # fmt: skip
        return Path(where)
    except errors.LocalEntryNotFoundError:
        if near_miss(name) is not None:
            raise _not_found_locally(str(name), flag) from None
        if local_files_only:
            why = "it is not in the local Hugging Face cache, and local_files_only=True reads nothing else"
        elif offline():
            why = (
                "it is not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE=1, bertcnn's "
                "default); fetch it once with HF_HUB_OFFLINE=0 in the environment, or pass a local directory"
            )
        else:
            why = (
                "it is not in the local cache and the hub could not be reached; check the network, or pass a local "
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


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it: set and not 0/false."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "", "false", "no", "off")


def hub_repo(repo_id: str, *, token: str | bool | None = None, private: bool | None = None) -> str:
    """Create (or find) the hub model repository `repo_id` for a push: every check a push needs, before any write.

    Refused in one line when the hub is off (HF_HUB_OFFLINE) or unreachable, or the token may not write there.
    Returns the repository's id as the hub spells it.
    """
    if not isinstance(repo_id, str) or not looks_like_id(repo_id):
        raise ValueError(f"push_to_hub needs a hub repository id such as 'org/name'. Received: repo_id={repo_id!r}")
    if offline():
        raise ValueError(
            "push_to_hub needs the Hugging Face hub, and it is off (HF_HUB_OFFLINE=1, bertcnn's default); set "
            f"HF_HUB_OFFLINE=0 to upload, or save_pretrained a folder and upload it later. Received: {repo_id}"
        )
    from huggingface_hub import HfApi

    try:
        return HfApi(token=token).create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    except Exception as e:  # no network, no token, no right to write: the library's reason, on one line
        raise ValueError(
            f"push_to_hub: the Hugging Face hub did not take {repo_id!r} ({_first_line(e)}); nothing was written. "
            f"Received: repo_id={repo_id}"
        ) from None


def push_folder(folder: Path, repo_id: str, *, token=None, commit_message: str | None = None) -> str:
    """Upload a saved checkpoint folder (not its ownership marker) to `repo_id`; returns the commit's URL."""
    from huggingface_hub import HfApi

    message = commit_message or "Upload BERT-CNN checkpoint (bertcnn)"
    try:
        info = HfApi(token=token).upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message=message, ignore_patterns=[".*"]
        )
    except Exception as e:
        raise ValueError(
            f"push_to_hub: saved {str(folder)!r}, but the upload to {repo_id!r} failed ({_first_line(e)}); "
            f"upload that folder again. Received: repo_id={repo_id}"
        ) from None
    return str(getattr(info, "commit_url", info))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
