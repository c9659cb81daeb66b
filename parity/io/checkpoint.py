"""The canonical checkpoint: a directory with `config.json` + `model.safetensors`.

The tensors are the PyTorch build's state_dict (the seed's names, torch layout);
both builds read and write this format, and the Keras layout is derived from it
through `parity.layout`. safetensors holds no code, so a checkpoint is safe to open.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.io.files import read_json
from parity.io.formats import DIR, FORMAT_HELP, Weights, config_from
from parity.io.safetensors import read_safetensors, write_safetensors
from parity.layout import check_tensors, expected_shapes, rows, strict_check

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def save_checkpoint(
    directory: str | os.PathLike,
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    *,
    tokenizer_from: str | os.PathLike | None = None,
) -> Path:
    """Write a canonical checkpoint; every file lands whole or not at all.

    Files are written into a temporary folder beside `directory` and moved into
    place only once complete, so a crash never leaves a half-written checkpoint.
    """
    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    dest = Path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        write_checkpoint_files(tmp, config, tensors, tokenizer_from=tokenizer_from)
        dest.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, dest / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def write_checkpoint_files(
    directory: Path, config: BertCnnConfig, tensors: Mapping[str, np.ndarray], *, tokenizer_from=None
) -> None:
    """config.json, model.safetensors (weight-table order) and the tokenizer files, into a folder being staged."""
    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    (directory / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    ordered = [(r.torch_name, np.ascontiguousarray(tensors[r.torch_name])) for r in rows(config)]
    # The project's own writer: a full disk is an OSError (safetensors' save_file raises its own error type).
    write_safetensors(directory / WEIGHTS_NAME, ordered, {"format": "pt"})
    if tokenizer_from is not None:
        copy_tokenizer(tokenizer_from, directory)


def load_checkpoint(directory: str | os.PathLike) -> tuple[BertCnnConfig, dict[str, np.ndarray]]:
    """Read and strictly validate a canonical checkpoint: config and tensors must agree (own, writable arrays)."""
    w = read_dir(Path(directory))
    return w.config, {k: np.array(v) for k, v in w.tensors.items()}


def read_dir(path: Path, expect_for: Callable[[BertCnnConfig], Callable] | None = None) -> Weights:
    """A canonical checkpoint directory as `Weights` (tensors memory-mapped, names and shapes checked first)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint not found; expected {FORMAT_HELP}. Received: {str(path)!r}")
    present = sorted(p.name for p in path.iterdir())
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: {CONFIG_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(make one with `bertcnn init`). Received: {present}"
        )
    raw = read_json(path / CONFIG_NAME, what="a BertCnnConfig config.json")
    if is_hf_config(raw):
        raise ValueError(
            f"{path} is a Hugging Face model (model_type {raw['model_type']!r}), not a bertcnn checkpoint; make one "
            f"with `bertcnn init CK_DIR --backbone {path}` (a new CNN head on this BERT), or, for a model fine-tuned "
            f"from it with the seeds' class, `bertcnn port MODEL.pt CK_DIR --backbone {path}`. "
            f"Received: model_type={raw['model_type']!r}"
        )
    if not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: {WEIGHTS_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}. "
            f"Received: {present}"
        )
    config = config_from(raw, path / CONFIG_NAME)
    if expect_for is None:
        expect = lambda shapes: strict_check(shapes, config, what=f"Checkpoint {str(path)!r}")  # noqa: E731
    else:
        expect = expect_for(config)
    w = read_safetensors(path / WEIGHTS_NAME, expect)
    w.config, w.format = config, DIR
    w.tokenizer_dir = path if has_tokenizer(path) else None
    return w


def is_hf_config(raw: object) -> bool:
    """A Hugging Face model's config.json (it names a `model_type`); ours never does."""
    return isinstance(raw, dict) and "model_type" in raw


def has_tokenizer(directory: str | os.PathLike) -> bool:
    return any((Path(directory) / n).is_file() for n in TOKENIZER_FILES)


def copy_tokenizer(src: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Copy whichever tokenizer files `src` has; returns their names."""
    src, dest = Path(src), Path(dest)
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
            copied.append(name)
    return copied
