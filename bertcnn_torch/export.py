"""ONNX from the PyTorch build: `torch.onnx.export` (the dynamo exporter), one self-contained file.

Dynamic batch and sequence axes; int64 inputs `input_ids`, `attention_mask`,
`token_type_ids`; float32 output `logits`. The dynamo exporter writes weights as
external data by default; a model under 2 GB (protobuf's limit) is saved as one file.
The model's numpy input checks are skipped while exporting (the values are symbolic);
`parity.serving` checks inputs in numpy before calling the runtime instead.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from bertcnn_torch.model import BertCNN
from parity.inputs import random_batch
from parity.serving.manifest import INPUT_NAMES, OUTPUT_NAME

# protobuf cannot serialise a message over 2 GiB: above that, weights go to a sidecar file.
PROTOBUF_LIMIT = 2**31 - 1


class _Logits(torch.nn.Module):
    """Positional inputs -> logits: the exported graph's exact signature."""

    def __init__(self, model: BertCNN):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids)


def example_inputs(model: BertCNN) -> tuple[torch.Tensor, ...]:
    """Batch 2, padded, longer than the widest kernel: sizes 0 and 1 would be specialised by torch.export."""
    config = model.config
    width = min(max(config.max_kernel_size + 2, 4), config.max_position_embeddings)
    batch = random_batch(config, [width, max(width - 2, 1)], seed=0)
    return tuple(torch.from_numpy(batch[k]) for k in INPUT_NAMES)


def export_onnx(model: BertCNN, path: str | os.PathLike, *, opset: int | None = None) -> dict:
    """Write `model` to `path` (.onnx); returns {"opset", "external_data"}."""
    model = model.eval().float() if next(model.parameters()).dtype != torch.float32 else model.eval()
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    dynamic = {name: {0: batch, 1: sequence} for name in INPUT_NAMES}
    # The exporter logs a warning per torchvision op it cannot register; nothing here uses torchvision.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Logits(model),
            example_inputs(model),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    external = size > PROTOBUF_LIMIT - (64 << 20)  # room for the graph itself
    program.save(str(path), external_data=external)
    return {"opset": _opset(Path(path)), "external_data": external}


def _opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))
