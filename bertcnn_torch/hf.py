"""The PyTorch build, seen from transformers: Auto-class registration and the `BertCNN` -> `PreTrainedModel` view.

`import bertcnn_torch` registers `BertCnnHfConfig` and `BertCnnForSequenceClassification` (the classes of
`modeling_bertcnn.py`, the file every checkpoint carries) with `AutoConfig`, `AutoModel` and
`AutoModelForSequenceClassification`, so a bertcnn checkpoint loads through the Auto classes and
`pipeline` without `trust_remote_code` when this package is imported (transformers then prefers the
registered classes to the checkpoint's copy of the same file).

`BertCNN` returns a logits tensor, the project's interface; transformers' pipelines need a
`PreTrainedModel` that returns `SequenceClassifierOutput` and has a transformers config.
`to_transformers` gives that view of a `BertCNN`: the same parameters, not a copy.
"""

from __future__ import annotations

import torch

from bertcnn_torch.modeling_bertcnn import MODEL_TYPE, BertCnnForSequenceClassification, BertCnnHfConfig
from parity.config import BertCnnConfig


def register() -> None:
    """`AutoConfig` / `AutoModel` / `AutoModelForSequenceClassification` know model_type `bert-cnn` (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    AutoConfig.register(MODEL_TYPE, BertCnnHfConfig, exist_ok=True)
    AutoModel.register(BertCnnHfConfig, BertCnnForSequenceClassification, exist_ok=True)
    AutoModelForSequenceClassification.register(BertCnnHfConfig, BertCnnForSequenceClassification, exist_ok=True)


def hf_config(config: BertCnnConfig, *, attn_implementation: str | None = None) -> BertCnnHfConfig:
    """The transformers config of `config`: the same keys config.json holds."""
    return BertCnnHfConfig(**config.to_dict(), attn_implementation=attn_implementation)


def to_transformers(model) -> BertCnnForSequenceClassification:
    """`model` (a `bertcnn_torch.BertCNN`) as a `BertCnnForSequenceClassification` sharing its parameters.

    Built on the meta device, then given `model`'s own submodules, so nothing is allocated or copied:
    training one trains the other. For `pipeline("text-classification", model=..., tokenizer=...)`.
    """
    attn = model.bert.config._attn_implementation
    with torch.device("meta"):
        hf = BertCnnForSequenceClassification(hf_config(model.config, attn_implementation=attn))
    for name in ("bert", "convs", "dropout", "hidden", "fc"):
        setattr(hf, name, getattr(model, name))
    hf.config.dtype = next(model.parameters()).dtype
    hf.name_or_path = model.name_or_path or ""
    hf.config._name_or_path = hf.name_or_path
    return hf.train(model.training)


# -- from_pretrained's standard keywords ------------------------------------------------------------
_DTYPES = ("float64", "float32", "float16", "bfloat16")


def load_dtype(dtype, torch_dtype, stored: str) -> torch.dtype:
    """`from_pretrained(dtype=... | torch_dtype=...)`: a torch dtype or its name; "auto" or None: the checkpoint's."""
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise ValueError(
            f"Pass dtype or torch_dtype (its old name), not both with different values. "
            f"Received: dtype={dtype!r}, torch_dtype={torch_dtype!r}"
        )
    want = dtype if dtype is not None else torch_dtype
    if want is None or want == "auto":
        return getattr(torch, stored)
    name = str(want).removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError(f'dtype must be "auto", None or one of {_DTYPES} (or the torch dtype). Received: {want!r}')
    return getattr(torch, name)


def load_device(device_map) -> torch.device:
    """`from_pretrained(device_map=...)` for one device: "cpu", "cuda:1", 0, a torch.device, {"": device} or
    "auto" (the GPU when there is one, else the CPU). A map over several devices is refused: the model is one
    piece (BERT plus a small head) that fits wherever BERT does."""
    if isinstance(device_map, dict):
        if set(device_map) != {""}:
            raise ValueError(
                'device_map places the whole model on one device: {"": DEVICE}, a device name, an index or "auto"; '
                f"splitting it over several devices is not supported. Received: device_map keys {sorted(device_map)}"
            )
        device_map = device_map[""]
    if device_map is None:
        return torch.device("cpu")
    if device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(f"cuda:{device_map}" if isinstance(device_map, int) else device_map)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f'device_map must be a device ("cpu", "cuda:0"), its index, {{"": device}} or "auto". '
            f"Received: {device_map!r} ({str(e).splitlines()[0][:120]})"
        ) from None
