"""The weight formats by name: which format a path is, what a reader returns, dtypes by name.

Every reader (`parity.io.safetensors`, `.torch_pickle`, `.keras_h5`, the canonical
directory in `parity.io.reader`) meets in one in-memory form, `Weights`: canonical
names -> numpy arrays in torch layout (`parity.layout`). Readers treat files as
untrusted: sizes are checked against the file before anything is read, pickles are
only opened with `torch.load(weights_only=True)`, Keras archives are parsed as data (no
Keras deserialisation at all), and every failure becomes one ValueError line.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.layout import check_size

DIR, SAFETENSORS, TORCH, KERAS, KERAS_WEIGHTS = "checkpoint directory", "safetensors", "torch", "keras", "keras weights"
FORMAT_HELP = (
    "a checkpoint directory (config.json + model.safetensors), *.safetensors, *.pt / *.pth / *.bin "
    "(PyTorch state_dict), *.keras (Keras archive) or *.weights.h5 (Keras weights)"
)
# Formats whose files carry the config themselves; the others need --config.
CARRIES_CONFIG = {DIR: True, SAFETENSORS: True, TORCH: False, KERAS: True, KERAS_WEIGHTS: False}

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
CONFIG_METADATA_KEY = "bertcnn.config"  # a bare .safetensors we write carries its config here
REGISTERED_NAME = "bertcnn>BertCNN"

_HF_INT_BUFFERS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")

_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_ST_CODES = {v: k for k, v in _ST_DTYPES.items()}
FLOAT_DTYPES = tuple(_ST_CODES)


class FormatError(ValueError):
    """An unreadable or hostile input file; the message is one line."""


def first_line(e: BaseException) -> str:
    """A library's error, cut to one line: user errors are reported on one stderr line."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def bad(path: str | os.PathLike, what: str, expected: str) -> FormatError:
    return FormatError(f"{path}: {what}; expected {expected}. Received: {str(path)!r}")


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
               type(None): "null"}  # fmt: skip


def config_from(raw: object, where: str | os.PathLike) -> BertCnnConfig:
    """A model config from parsed JSON; any refusal is one line naming `where` (the file, or the part of it).

    Every reader that takes a config (a checkpoint's config.json, --config, a .safetensors file's metadata,
    a .keras archive, an export) builds it here, so each refusal says which file holds the wrong key.
    """
    fix = "fix it, or write the file again with the bertcnn command that made it"
    if not isinstance(raw, dict):
        kind = _JSON_KINDS.get(type(raw), type(raw).__name__)
        raise ValueError(
            f'{where}: a model config must be a JSON object ({{"vocab_size": ..., "num_labels": ..., ...}}), not '
            f"{kind}; {fix}. Received: {kind}"
        )
    try:
        config = BertCnnConfig.from_dict(raw)
    except (ValueError, TypeError) as e:
        text = (str(e).splitlines() or [type(e).__name__])[0].removeprefix("Invalid BertCnnConfig: ")
        what, cut, received = text.rpartition(" Received: ")
        what, received = (what, received[:200]) if cut else (text, type(e).__name__)
        raise ValueError(f"{where}: invalid model config: {what.rstrip('. ')}; {fix}. Received: {received}") from None
    check_size(config, str(where), f"its sizes are wrong: {fix}")  # before any table of its tensors is built
    return config


def is_zip(path: str | os.PathLike) -> bool:
    """`zipfile.is_zipfile`, which itself raises BadZipFile on some damaged end records (a "multi-disk" zip)."""
    try:
        return zipfile.is_zipfile(path)
    except zipfile.BadZipFile:
        return True  # looks like a zip, and a damaged one: opening it says so


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, where: str | os.PathLike) -> bytes:
    """A zip member's bytes, never more than `cap`: declared sizes checked, then inflated in bounded steps.

    `ZipFile.read` inflates a deflated member in one call bounded only by 2 GiB, whatever the member
    declares, and bzip2/lzma members in one unbounded call: a small archive could hold gigabytes.
    """
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise bad(where, f"{info.filename} is compressed with zip method {info.compress_type}",
                  "stored or deflated members")  # fmt: skip
    if info.file_size > cap:
        raise bad(where, f"{info.filename} declares {info.file_size} bytes, more than the {cap} it may hold",
                  f"a {info.filename} of at most {cap} bytes")  # fmt: skip
    out = bytearray()
    with zf.open(info) as member:  # reads stop at the declared size; each step inflates at most 1 MiB
        while chunk := member.read(min(1 << 20, cap + 1 - len(out))):
            out += chunk
    return bytes(out)


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover - ml_dtypes comes with torch/tensorflow installs
            raise ValueError(
                "bfloat16 tensors need the ml_dtypes package; `pip install ml_dtypes`. Received: bfloat16"
            ) from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def dtype_name(a: np.ndarray) -> str:
    return "bfloat16" if a.dtype.name == "bfloat16" else a.dtype.name


def format_of(path: str | os.PathLike, *, for_output: bool = False) -> str:
    """The format a path names: by suffix for files; a directory has no suffix or ends with `/`.

    An unknown suffix is refused rather than taken for a directory name, so a typo
    (`model.kears`) or a format this tool does not write (`x.onnx`) never becomes a
    checkpoint folder of that name. `ckpt.v2/` (trailing slash) is a directory.
    """
    raw = os.fspath(path)
    p = Path(raw)
    if raw.endswith(("/", os.sep)):
        return DIR
    name = p.name.lower()
    if name.endswith(".weights.h5"):
        return KERAS_WEIGHTS
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return SAFETENSORS
    if suffix in (".pt", ".pth", ".bin"):
        return TORCH
    if suffix == ".keras":
        return KERAS
    if suffix in (".h5", ".hdf5"):
        raise ValueError(
            f"Plain .h5 files (legacy Keras 2 models) are not supported; Keras weights must end in .weights.h5. "
            f"Received: {str(p)!r}"
        )
    if suffix == ".onnx":
        raise ValueError(
            "ONNX is a serving format, not a weight format `bertcnn port` writes; make ONNX with `bertcnn export`. "
            f"Received: {raw!r}"
        )
    if p.is_dir():
        return DIR  # an existing folder, whatever its name
    if not suffix:
        if p.is_file():
            raise ValueError(f"Unknown weight format for {raw!r}; expected {FORMAT_HELP}. Received: {raw!r}")
        return DIR
    what = "destination" if for_output else "source"
    raise ValueError(
        f"Unknown weight format suffix {suffix!r} for the {what}; expected {FORMAT_HELP}, "
        f"and a directory name without a suffix (or ending in '/', e.g. {p.name}/). Received: {raw!r}"
    )


@dataclass
class Weights:
    """What a reader found: canonical torch-layout tensors and, when the file has one, its config."""

    config: BertCnnConfig | None
    tensors: dict[str, np.ndarray]
    tokenizer_dir: Path | None = None
    notes: list[str] = field(default_factory=list)  # what a reader left out, for the user
    format: str = ""  # DIR, SAFETENSORS, TORCH, KERAS or KERAS_WEIGHTS
    weights_file: Path | None = None  # the file the tensors came from: its sha256 names these weights
    backbone_tokenizer: Path | None = None  # --backbone's tokenizer, for sources that carry none


def floating_dtype(tensors: Iterable[np.ndarray]) -> np.dtype:
    """The one floating dtype of a checkpoint; mixed float dtypes are refused, not guessed."""
    kinds = {np.dtype(t.dtype) for t in tensors if np.issubdtype(t.dtype, np.floating) or t.dtype.name == "bfloat16"}
    if len(kinds) != 1:
        raise ValueError(
            "A checkpoint must hold tensors of a single floating dtype. "
            f"Received: {sorted(str(k) for k in kinds) or 'no floating tensors'}"
        )
    return kinds.pop()
