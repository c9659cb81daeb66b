"""`from_pretrained` / `from_backbone` / `save_pretrained` / `push_to_hub`, written once for both builds.

The two builds differ only in how tensors get in and out of the framework; a
build supplies `_from_tensors(config, tensors, **kwargs)` and
`get_canonical_weights()`, and this mixin gives both the same public API, with
Hugging Face's keywords where they mean something here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from parity.io.backbone import backbone_checkpoint
from parity.io.checkpoint import DEFAULT_SHARD_SIZE, load_checkpoint, save_checkpoint
from parity.io.hub import hub_repo, push_folder, resolve
from parity.io.shards import shard_bytes


class PretrainedMixin:
    name_or_path: str | None = None  # where the weights came from; its tokenizer travels on save

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **kwargs,
    ):
        """Load a checkpoint: a folder, or the hub id of a repository holding one, in its own dtype.

        `revision` (a hub id's branch, tag or commit), `cache_dir`, `local_files_only` and `token` are
        Hugging Face's; the rest go to the build: torch takes `dtype` (or `torch_dtype`; "auto" is the
        checkpoint's), `device_map` (one device) and `attn_implementation`; Keras takes `dtype`.
        """
        where = resolve(
            pretrained_model_name_or_path, revision=revision, flag="from_pretrained", revision_flag="revision=",
            cache_dir=cache_dir, local_files_only=local_files_only, token=token,
        )  # fmt: skip
        config, tensors = load_checkpoint(where)
        model = cls._from_tensors(config, tensors, **kwargs)
        model.name_or_path = str(where)
        return model

    @classmethod
    def from_backbone(cls, backbone_dir: str | os.PathLike, *, seed: int = 0, revision: str | None = None, **head):
        """A pretrained Hugging Face BERT (a directory or a hub id such as `bert-base-uncased`) plus a fresh head.

        The head comes from `parity.io.backbone.init_head` (numpy), so both builds'
        `from_backbone` with the same seed give the same function, bit for bit.
        """
        config, tensors, hf = backbone_checkpoint(backbone_dir, seed=seed, revision=revision, **head)
        model = cls._from_tensors(config, tensors)
        model.name_or_path = str(hf.directory)
        return model

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        tokenizer_from: str | os.PathLike | None = None,
        safe_serialization: bool = True,
        max_shard_size: int | str = DEFAULT_SHARD_SIZE,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        token: str | bool | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
    ) -> Path:
        """Write a checkpoint (a Hugging Face model folder too); the tokenizer of `name_or_path` travels with it.

        Hugging Face's keywords: weights above `max_shard_size` ("5GB", "200MB", bytes) are sharded with
        an index, as transformers reads them; `safe_serialization` must stay True (safetensors only: a
        pickle runs code when loaded); `push_to_hub` uploads the folder to `repo_id` (default: the
        folder's name), checked with the hub before anything is written.
        """
        limit = _checked_save(safe_serialization, max_shard_size)
        repo = hub_repo(repo_id or Path(save_directory).name, token=token, private=private) if push_to_hub else None
        path = save_checkpoint(
            save_directory,
            self.config,
            self.get_canonical_weights(),
            tokenizer_from=tokenizer_from or self.name_or_path,
            max_shard_size=limit,
        )
        if repo is not None:
            push_folder(path, repo, token=token, commit_message=commit_message)
        return path

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | bool | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        max_shard_size: int | str = DEFAULT_SHARD_SIZE,
        safe_serialization: bool = True,
        tokenizer_from: str | os.PathLike | None = None,
    ) -> str:
        """Upload this model as a checkpoint to the hub repository `repo_id` (created if needed); returns the
        commit's URL. Refused in one line, before any work, when the hub is off (HF_HUB_OFFLINE) or unreachable."""
        limit = _checked_save(safe_serialization, max_shard_size)
        repo = hub_repo(repo_id, token=token, private=private)
        with tempfile.TemporaryDirectory(prefix="bertcnn-push-") as tmp:
            folder = Path(tmp) / repo.split("/")[-1]
            weights, tokenizer = self.get_canonical_weights(), tokenizer_from or self.name_or_path
            save_checkpoint(folder, self.config, weights, tokenizer_from=tokenizer, max_shard_size=limit)
            return push_folder(folder, repo, token=token, commit_message=commit_message)


def _checked_save(safe_serialization: bool, max_shard_size: int | str) -> int:
    if safe_serialization is not True:
        raise ValueError(
            "bertcnn writes safetensors only (safe_serialization=True): a pickled checkpoint runs code when it is "
            f"loaded. Drop safe_serialization, or port the folder to .pt with `bertcnn port`. "
            f"Received: safe_serialization={safe_serialization!r}"
        )
    return shard_bytes(max_shard_size)
