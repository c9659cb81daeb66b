"""THE weight reader: any supported source -> config + canonical tensors, with one set of errors.

Every command (`predict`, `evaluate`, `report`, `train`, `export`, `port`) reads its
weights here, so each takes the same sources and refuses them with the same words:
a canonical checkpoint directory, one weight file (`.safetensors`, `.pt`/`.pth`/`.bin`,
`.keras`, `.weights.h5`) with `config` where the file carries none, or a model trained
with the seeds' class plus the Hugging Face BERT it was fine-tuned from (`backbone`:
BERT sizes from its config.json, the head read off the tensors). Every tensor is
checked by name and shape against the config before any is used; files are read as
untrusted data (see `parity.io.formats`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.io import formats as F
from parity.io.checkpoint import CONFIG_NAME, has_tokenizer, is_hf_config, read_dir
from parity.io.files import read_json
from parity.io.hub import resolve
from parity.io.keras_h5 import read_keras_archive, read_keras_h5
from parity.io.safetensors import read_safetensors
from parity.io.torch_pickle import read_torch
from parity.layout import check_size, read_fields, strict_check

# The seeds' head, as BertCnnConfig fields read off the tensors.
HEAD_FIELDS = ("kernel_sizes", "num_filters", "num_labels", "head_hidden_size")
SEED_POOLING_NOTE = (
    "mask_padding=False: the seeds' pooling (windows over padding count in the max, so a padded text's logits "
    "depend on its batch), which reproduces the source model exactly; --mask-padding chooses padding-aware pooling"
)
EXPORT_MANIFEST = "manifest.json"  # an export directory (parity.serving) carries one; a checkpoint never does


@dataclass
class Given:
    """What the user said about the config: a full bertcnn config, or a BERT config to complete from tensors."""

    config: BertCnnConfig | None = None
    hf: dict | None = None  # a Hugging Face BERT config.json: BERT sizes only
    hf_from: str = ""
    mask_padding: bool | None = None
    tokenizer_dir: Path | None = None


def read_weights(
    source: str | os.PathLike,
    *,
    config: str | os.PathLike | BertCnnConfig | None = None,
    backbone: str | os.PathLike | None = None,
    mask_padding: bool | None = None,
    writable: bool = True,
    revision: str | None = None,
) -> F.Weights:
    """Read `source` strictly; `Weights.config` is always set. Raises ValueError/FileNotFoundError on bad input.

    Keras files are read with Keras 3's h5 layout written down (`parity.io.keras_h5.h5_datasets`), so
    reading needs no Keras. `writable=False` keeps tensors memory-mapped (read-only), for streaming a
    large model through; otherwise the arrays are the caller's own.
    """
    src = resolve(source, revision=revision, flag="--checkpoint")  # a hub id of a bertcnn checkpoint, too
    if not src.exists():
        raise FileNotFoundError(f"Checkpoint not found; expected {F.FORMAT_HELP}. Received: {str(src)!r}")
    if src.is_dir() and (src / EXPORT_MANIFEST).is_file():
        raise ValueError(
            f"{src} is an export (bertcnn export), which holds a serving model, not weights; `bertcnn predict` and "
            "`bertcnn evaluate` run it, everything else takes the checkpoint it was exported from. "
            f"Received: {str(src)!r}"
        )
    fmt = F.DIR if src.is_dir() else F.format_of(src)
    given = given_config(config, backbone, mask_padding)
    w = _read(src, fmt, given)
    w.format = fmt
    w.backbone_tokenizer = given.tokenizer_dir
    if writable:
        w.tensors = {k: np.array(v) for k, v in w.tensors.items()}
    return w


def given_config(config, backbone, mask_padding: bool | None) -> Given:
    """--config (bertcnn or Hugging Face config.json) / --backbone, checked before any weights are read."""
    if config is not None and backbone is not None:
        raise ValueError(
            "Pass --config or --backbone, not both: --backbone reads the BERT config from the backbone's "
            f"config.json. Received: --config {str(config)!r} --backbone {str(backbone)!r}"
        )
    given = Given(mask_padding=mask_padding)
    if isinstance(config, BertCnnConfig):
        given.config = config
    elif config is not None:
        raw = read_json(config, what="a config.json", missing=f"Config file not found; expected a config.json. "
                                                               f"Received: {str(config)!r}")  # fmt: skip
        if is_hf_config(raw):
            given.hf, given.hf_from = raw, f"--config {config}"
        else:
            given.config = F.config_from(raw, config)
    elif backbone is not None:
        b = resolve(backbone)
        if not (b / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"--backbone must be a Hugging Face BERT directory with a {CONFIG_NAME} (and its tokenizer). "
                f"Received: {str(b)!r}"
            )
        raw = read_json(b / CONFIG_NAME, what="a Hugging Face config.json")
        if not is_hf_config(raw):
            raise ValueError(
                f"--backbone {b} holds no Hugging Face BERT config (model_type 'bert'); a bertcnn checkpoint's "
                f"config goes to --config. Received: model_type={raw.get('model_type')!r}"
            )
        given.hf, given.hf_from = raw, f"--backbone {b}"
        if has_tokenizer(b):
            given.tokenizer_dir = b
    if mask_padding is not None and given.hf is None:
        raise ValueError(
            "--mask-padding/--no-mask-padding only apply when the config is built from --backbone or a Hugging Face "
            "--config; a bertcnn config keeps its own pooling (a port never changes the function). "
            f"Received: --{'' if mask_padding else 'no-'}mask-padding"
        )
    return given


def _read(src: Path, fmt: str, given: Given) -> F.Weights:
    full = given.config

    def expect_for(config: BertCnnConfig):
        return lambda shapes: strict_check(shapes, config, what=f"{src}")

    if fmt == F.DIR:
        w = read_dir(src, expect_for)
    elif fmt == F.KERAS:
        w = read_keras_archive(src, expect_for)
    elif fmt == F.SAFETENSORS:
        w = read_safetensors(src)  # memory-mapped: nothing is read until used
    elif fmt == F.TORCH:
        w = read_torch(src)
    else:
        if full is None:
            raise _needs_config(src, fmt, hf=given.hf is not None)
        tensors = read_keras_h5(src, full, src, expect_for(full))
        w = F.Weights(full, tensors, format=F.KERAS_WEIGHTS, weights_file=src)
    if w.config is not None and given.hf is not None:
        raise ValueError(
            f"{src} carries its own config; {given.hf_from.split()[0]} is for tensor-only sources "
            f"(.pt, foreign .safetensors). Drop {given.hf_from.split()[0]}. Received: {given.hf_from}"
        )
    if w.config is None:
        if full is None and given.hf is None:
            raise _needs_config(src, fmt)
        shapes = {k: v.shape for k, v in w.tensors.items()}
        if full is None:
            full = _config_from_hf(given, shapes, src)
            if given.mask_padding is None:
                w.notes.append(SEED_POOLING_NOTE)
        w.config = full
        strict_check(shapes, full, what=str(src))
    elif full is not None and full != w.config:
        diffs = [
            f"{k} (--config {getattr(full, k)!r}, {src.name} {getattr(w.config, k)!r})"
            for k in (f.name for f in fields(BertCnnConfig))
            if getattr(full, k) != getattr(w.config, k)
        ]
        raise ValueError(
            f"--config disagrees with the config stored in {src}: {'; '.join(diffs)}. "
            f"Drop --config (the file carries its own) or pass the matching one. Received: {len(diffs)} differing keys"
        )
    elif fmt == F.SAFETENSORS:
        strict_check({k: v.shape for k, v in w.tensors.items()}, w.config, what=str(src))
    return w


def _config_from_hf(given: Given, shapes: Mapping[str, tuple], src: Path) -> BertCnnConfig:
    """The BERT part from the Hugging Face config, the head (widths, filters, labels, hidden) from the tensors."""
    read = read_fields(shapes)
    missing = [f for f in HEAD_FIELDS if f not in read]
    if missing:
        raise ValueError(
            f"{src}: the CNN head cannot be read off the tensors ({', '.join(missing)} not found); expected the seed "
            "class's convs.{j}.weight/bias and fc.weight/bias. Received: "
            f"{len(shapes)} tensors, {sum(not k.startswith('bert.') for k in shapes)} outside bert.*"
        )
    head = {f: read[f][0] for f in HEAD_FIELDS}
    mask = False if given.mask_padding is None else given.mask_padding
    where = given.hf_from.split(" ", 1)[1]
    where = f"{where}/{CONFIG_NAME}" if Path(where).is_dir() else where
    try:
        config = BertCnnConfig.from_hf_config(given.hf, **head, mask_padding=mask)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where} ({given.hf_from.split()[0]}): {str(e).splitlines()[0]}") from None
    check_size(config, f"{where} ({given.hf_from.split()[0]})")
    return config


def _needs_config(src: Path, fmt: str, hf: bool = False) -> ValueError:
    if hf:
        return ValueError(
            f"{src} is a {fmt} file: reading it needs the full bertcnn config.json, not a BERT config; "
            "--backbone and a Hugging Face --config work for .pt and foreign .safetensors. Received: no bertcnn config"
        )
    return ValueError(
        f"{src} is a {fmt} file, which carries no model config; pass --config path/to/config.json "
        "(the config.json of the checkpoint these weights belong to), or, for a model trained with the seeds' "
        "class, --backbone HF_BERT_DIR (the BERT it was fine-tuned from). Received: no --config"
    )
