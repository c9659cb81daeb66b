"""The export directory: model file(s), config.json, tokenizer files, manifest.json; written atomically.

Everything is written into a temporary folder beside OUT and renamed into place
when complete, so OUT is either the previous export or the new one, never half of
either. The folder gets the permissions the umask gives (mkdtemp makes it 0700).
"""

from __future__ import annotations

import os
from pathlib import Path

from parity.config import BertCnnConfig
from parity.io.checkpoint import CONFIG_NAME, copy_tokenizer
from parity.io.files import read_json
from parity.io.formats import config_from
from parity.serving.manifest import MANIFEST_NAME, Manifest, check_decision, check_length, read_manifest


def write_sidecars(
    directory: Path, config: BertCnnConfig, manifest: Manifest, *, tokenizer_from: str | os.PathLike | None
) -> list[str]:
    """config.json (label names included), the tokenizer files (when the source has them), then the manifest.

    The tokenizer files truncate at the model's `max_seq_length` (`copy_tokenizer`).
    """
    (directory / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    copied = (
        [] if tokenizer_from is None else copy_tokenizer(tokenizer_from, directory, max_length=config.max_seq_length)
    )
    (directory / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return copied


def load_config(directory: str | os.PathLike) -> BertCnnConfig:
    """The export's config.json; its reading length must be the manifest's."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"The export has no {CONFIG_NAME}; re-export the model. Received: {str(directory)!r}")
    config = config_from(read_json(path, what="the config.json `bertcnn export` writes"), path)
    manifest = read_manifest(directory)
    check_length(directory, manifest, config.max_seq_length)
    check_decision(directory, manifest, config)
    return config
