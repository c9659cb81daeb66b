"""The manifest of an export directory: what the artifact is, and which weights it came from.

`manifest.json` is written last by `bertcnn export` and read first by everything that
runs an export (predict, `report --artifact`). It records the source checkpoint's
weights hash, so an artifact is never silently checked against weights it was not
made from, the runtime library versions it was written with, and the length the model
reads (`max_seq_length`, as in the export's config.json, which must agree).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from parity.io.files import read_json
from parity.serving.quantize import MODES

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
# format -> the model file (or folder) inside the export directory; nothing else is accepted,
# so a manifest cannot point a runtime at a file outside its directory.
MODEL_FILES = {"onnx": "model.onnx", "saved_model": "saved_model", "litert": "model.tflite"}
FORMATS = tuple(MODEL_FILES)
QUANTIZE = {"onnx": (None, *MODES)}  # per format, what `--quantize` may have made of it (None: float32)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
# SavedModel signatures: the interface (int64, as every format) and the same function for int32 inputs.
SIGNATURE = "serving_default"
SIGNATURE_INT32 = "serving_int32"
# `--text` exports: strings in, the tokenizer in the graph (SavedModel: this signature; ONNX: the model's input).
TEXT_SIGNATURE = "serving_text"
TEXT_INPUT = "text"
TEXT_OUTPUTS = ("logits", "probabilities", "label", "input_ids", "attention_mask")
# A multi-label model's: sigmoid probabilities, and `selected` (bool) in place of one label.
MULTI_LABEL_TEXT_OUTPUTS = ("logits", "probabilities", "selected", "input_ids", "attention_mask")
# Distributions whose versions are worth knowing when an artifact misbehaves.
_LIBRARIES = ("numpy", "torch", "onnx", "onnxscript", "onnxruntime", "tensorflow-cpu", "tensorflow", "keras")
_LIBRARIES += ("tf2onnx", "ai-edge-litert", "tokenizers", "tensorflow-text", "onnxruntime-extensions")


@dataclass(frozen=True)
class Manifest:
    format: str  # onnx | saved_model | litert
    framework: str  # the build it was exported from: torch | keras
    model_file: str
    source_sha256: str  # sha256 of the source's weights file (a checkpoint's model.safetensors)
    source: str  # the checkpoint path as given (informative only)
    inputs: list[dict] = field(default_factory=list)  # [{"name", "dtype", "shape"}]
    outputs: list[dict] = field(default_factory=list)
    opset: int | None = None  # ONNX only
    quantize: str | None = None  # "int8", "int8-ffn-out-fp32": ONNX weights quantized after export; None: float32
    versions: dict[str, str] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    # Tokens per text the model was trained to read ([CLS] and [SEP] included): a server cuts texts there, as
    # the export's tokenizer files do. None: not recorded (the model reads up to its position table).
    max_seq_length: int | None = None
    # A multi-label model's outputs are read through a sigmoid per label, each compared with its threshold
    # (`outputs[0]["activation"]` says which function turns logits into probabilities); as in config.json.
    problem_type: str = "single_label_classification"
    thresholds: list[float] | None = None
    # `--text`: the artifact takes strings and tokenizes in its graph (TF Text / onnxruntime-extensions).
    text: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def tensor_specs(num_labels: int, input_dtypes: tuple[str, ...] = ("int64",), *,
                 multi_label: bool = False) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """The interface every export has: three (batch, sequence) int inputs, (batch, num_labels) float32 logits,
    whose probabilities are their softmax (one label per text) or a sigmoid per label (multi-label)."""
    dtypes = "|".join(input_dtypes)
    inputs = [{"name": n, "dtype": dtypes, "shape": ["batch", "sequence"]} for n in INPUT_NAMES]
    activation = "sigmoid" if multi_label else "softmax"
    return inputs, [{"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", num_labels], "activation": activation}]


def library_versions() -> dict[str, str]:
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def is_export(directory: str | os.PathLike) -> bool:
    """True when `directory` carries a manifest: it is an export, not a checkpoint."""
    return (Path(directory) / MANIFEST_NAME).is_file()


def read_manifest(directory: str | os.PathLike) -> Manifest:
    """Read and validate `directory`'s manifest; anything odd is a ValueError naming the field."""
    d = Path(directory)
    path = d / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(d)!r} is not an export directory: {MANIFEST_NAME} is missing (make one with `bertcnn export`). "
            f"Received: {sorted(p.name for p in d.iterdir()) if d.is_dir() else 'no such directory'}"
        )
    raw = read_json(path, what="an export manifest written by `bertcnn export` (re-export the model)")
    known = set(Manifest.__dataclass_fields__)
    if not isinstance(raw, dict) or not {"format", "framework", "model_file", "source_sha256"} <= raw.keys():
        raise ValueError(
            f"{path} must be a JSON object with format, framework, model_file and source_sha256; re-export the "
            f"model. Received: {sorted(raw) if isinstance(raw, dict) else type(raw).__name__}"
        )
    unknown = sorted(raw.keys() - known)
    if unknown:
        raise ValueError(f"{path} has fields this version does not know; re-export the model. Received: {unknown}")
    m = Manifest(**raw)
    if m.version != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {MANIFEST_VERSION} expected. Received: {m.version!r}")
    if m.format not in MODEL_FILES:
        raise ValueError(f"{path}: format must be one of {FORMATS}. Received: {m.format!r}")
    if m.framework not in ("torch", "keras"):
        raise ValueError(f"{path}: framework must be torch or keras. Received: {m.framework!r}")
    if m.model_file != MODEL_FILES[m.format]:
        raise ValueError(
            f"{path}: a {m.format} export keeps its model in {MODEL_FILES[m.format]!r} inside the export directory; "
            f"a manifest may not point anywhere else. Received: model_file={m.model_file!r}"
        )
    model = d / m.model_file
    if model.is_symlink() or not model.exists():
        raise ValueError(
            f"{path}: the model {m.model_file!r} must be a real file or folder inside {str(d)!r}, not a link or "
            f"missing. Received: {'a symlink to ' + os.readlink(model) if model.is_symlink() else 'missing'}"
        )
    if m.quantize not in QUANTIZE.get(m.format, (None,)):
        raise ValueError(
            f"{path}: quantize must be one of {list(QUANTIZE.get(m.format, (None,)))} for a {m.format} export. "
            f"Received: quantize={m.quantize!r}"
        )
    if not isinstance(m.source_sha256, str) or len(m.source_sha256) != 64:
        raise ValueError(f"{path}: source_sha256 must be a sha256 hex digest. Received: {m.source_sha256!r}")
    n = m.max_seq_length
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"{path}: max_seq_length must be null or a positive integer; re-export the model. "
                         f"Received: max_seq_length={n!r}")  # fmt: skip
    if not isinstance(m.text, bool) or (m.text and m.format == "litert"):
        raise ValueError(f"{path}: text must be true or false (and false for litert); re-export the model. "
                         f"Received: text={m.text!r}")  # fmt: skip
    return m


def check_decision(directory: str | os.PathLike, manifest: Manifest, config) -> None:
    """The manifest and the export's config.json name one problem type and the same thresholds."""
    thresholds = None if config.thresholds is None else list(config.thresholds)
    if (manifest.problem_type, manifest.thresholds) != (config.problem_type, thresholds):
        raise ValueError(
            f"{Path(directory) / MANIFEST_NAME}: problem_type and thresholds disagree with config.json's; both record "
            "how the model's outputs are read. Re-export the model. Received: manifest "
            f"{(manifest.problem_type, manifest.thresholds)!r}, config.json {(config.problem_type, thresholds)!r}"
        )


def text_specs(num_labels: int, *, multi_label: bool = False) -> tuple[list[dict], list[dict]]:
    """The strings interface of a `--text` export: (batch,) strings in; logits, probabilities, label, ids out
    (multi-label: sigmoid probabilities and `selected`, each label's probability at or over its threshold)."""
    inputs = [{"name": TEXT_INPUT, "dtype": "string", "shape": ["batch"]}]
    activation = "sigmoid" if multi_label else "softmax"
    decided = (
        {"name": "selected", "dtype": "bool", "shape": ["batch", num_labels]}
        if multi_label
        else {"name": "label", "dtype": "string", "shape": ["batch"]}
    )
    outputs = [
        {"name": "logits", "dtype": "float32", "shape": ["batch", num_labels], "activation": activation},
        {"name": "probabilities", "dtype": "float32", "shape": ["batch", num_labels]},
        decided,
        {"name": "input_ids", "dtype": "int64", "shape": ["batch", "sequence"]},
        {"name": "attention_mask", "dtype": "int64", "shape": ["batch", "sequence"]},
    ]
    return inputs, outputs


def check_length(directory: str | os.PathLike, manifest: Manifest, max_seq_length: int | None) -> None:
    """The manifest and the export's config.json name one reading length (an edited file is refused, not guessed)."""
    if manifest.max_seq_length != max_seq_length:
        raise ValueError(
            f"{Path(directory) / MANIFEST_NAME}: max_seq_length {manifest.max_seq_length!r} disagrees with "
            f"config.json's {max_seq_length!r}; both record the length the model reads. Re-export the model. "
            f"Received: manifest {manifest.max_seq_length!r}, config.json {max_seq_length!r}"
        )
