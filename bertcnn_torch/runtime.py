"""What the parity suite and the command line ask of the PyTorch build, in numpy terms.

Every function takes and returns numpy (canonical tensors, inputs, logits, taps), so
the callers (`parity.commands`) never touch torch: taps and logits, gradients, a run
of the real trainer for training parity, a predictor for `predict`/`evaluate`, the
ONNX export, matmul precision, threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bertcnn_torch.model import BertCNN
from parity.config import BertCnnConfig
from parity.training.parity import encoded_rows, flat, start
from parity.training.recipe import TrainingRecipe

Forward = Callable[..., np.ndarray]  # inputs -> (B, num_labels) logits; return_taps=True -> taps


def build(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], dtype: str | None = None,
          device: str = "cpu", **kwargs) -> BertCNN:  # fmt: skip
    """The PyTorch build holding canonical `tensors` (in their dtype, or `dtype`), in eval mode."""
    model = BertCNN._from_tensors(config, dict(tensors), **kwargs)
    if dtype is not None or device != "cpu":
        model = model.to(device=device, dtype=getattr(torch, dtype) if dtype else None)
    return model


def taps(config, tensors, inputs, dtype: str = "float32", device: str = "cpu", *,
         mixed: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
    """Every tap (`parity.taps`) of the PyTorch build on `inputs`, as numpy (bfloat16 as float32).

    `mixed`: float32 weights, bf16 compute under `torch.autocast` (`dtype` must then be bfloat16).
    """
    model = build(config, tensors, "float32" if mixed else dtype, device)
    x = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
    with torch.inference_mode(), autocast(device, enabled=mixed):
        out = model(**x, return_taps=True)
    return {k: _numpy(v) for k, v in out.items()}


def autocast(device: str, *, enabled: bool = True):
    """bf16 mixed precision the torch way: `torch.autocast` on the model's device type (CPU and CUDA alike)."""
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def logits(config, tensors, batches) -> list[np.ndarray]:
    """float32 logits of each batch (the reference of the artifact check: exports are float32 whatever the
    checkpoint's dtype, so a bfloat16 or float16 checkpoint is held to its own weights, computed in float32)."""
    model = build(config, tensors, "float32")
    with torch.inference_mode():
        return [model(**{k: torch.from_numpy(v) for k, v in b.items()}).numpy() for b in batches]


def grads(config, tensors, inputs, labels, dtype: str = "float32", device: str = "cpu"):
    """d(mean cross-entropy; multi-label: BCE)/d(every weight), dropout off, canonical names: (grads, loss).

    Weights the loss does not reach (BERT's pooler) get exactly zero.
    """
    model = build(config, tensors, dtype, device)
    model.eval()  # dropout off
    batch = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in inputs.items()}
    y = torch.from_numpy(np.asarray(labels)).to(device)
    logits = model(**batch)
    # The model's own loss (`parity.training.objective`): softmax cross-entropy, or BCE for a multi-label model.
    loss = F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype)) if config.multi_label \
        else F.cross_entropy(logits, y)  # fmt: skip
    loss.backward()
    out = {}
    for name, p in model.named_parameters():
        out[name] = np.zeros(tuple(p.shape), dtype) if p.grad is None else p.grad.detach().cpu().numpy()
    return out, float(loss.detach())


def train_parity(config, tensors, inputs, labels, recipe: TrainingRecipe) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The PyTorch trainer on these rows: (weights + moments, the metrics log)."""
    from bertcnn_torch.train import train
    from parity.training.loop import Run

    snap = train(Run(start(config, tensors, recipe, len(labels)), encoded_rows(inputs), labels))
    return flat(snap), snap.metrics


def predictor(model: BertCNN, *, compile: bool = False, mixed: bool = False) -> Forward:
    """numpy in, numpy out, under `inference_mode` (no autograd bookkeeping at all).

    Inputs go to the model's device and outputs come back to the host (bfloat16 as float32).
    `mixed`: bf16 compute under `torch.autocast`, float32 weights (`--mixed-precision bf16`).
    """
    if compile:  # the encoder only: the input checks in BertCNN.forward are numpy, which dynamo cannot trace
        model.bert.compile(dynamic=True)
    device = next(model.parameters()).device

    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False):
        tensors = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
        with torch.inference_mode(), autocast(str(device), enabled=mixed):
            out = model(**tensors, return_taps=return_taps)
        if return_taps:
            return {k: _numpy(v) for k, v in out.items()}
        return _numpy(out)

    return forward


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A result on the host as numpy; bfloat16 (which numpy lacks) as float32, which holds it exactly."""
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy()


def forward(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], *, attn_implementation: str = "sdpa",
            compile: bool = False, mixed: bool = False) -> Forward:  # fmt: skip
    """`predictor` of the PyTorch build holding `tensors` (the slow part: builds the model)."""
    model = build(config, tensors, attn_implementation=attn_implementation)
    return predictor(model, compile=compile, mixed=mixed)


def export(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], fmt: str, path: Path, *,
           opset: int | None) -> dict:  # fmt: skip
    """ONNX (the only format exported from the PyTorch build) from the float32 build holding `tensors`."""
    from bertcnn_torch.export import export_onnx

    if fmt != "onnx":
        raise ValueError(f"The PyTorch build exports ONNX only. Received: {fmt!r}")
    return export_onnx(build(config, tensors), path, opset=opset)


def set_threads(threads: int) -> None:
    """Intra-op threads (see `parity.commands.builds.set_threads` for when 1 wins)."""
    torch.set_num_threads(threads)


def set_matmul_precision(strict: bool) -> None:
    """strict=True: full float32 (TF32 off); False: torch's shipped default (cuDNN TF32 on, matmul off)."""
    torch.backends.cuda.matmul.allow_tf32 = False  # off in both tiers: torch ships with it off
    torch.backends.cudnn.allow_tf32 = not strict  # torch ships with this on


def train(run, **kwargs):
    """The PyTorch trainer (`bertcnn_torch.train`) on a `parity.training.loop.Run`; the final snapshot."""
    from bertcnn_torch.train import train as fit

    return fit(run, **kwargs)


def join(directory, **kwargs):
    """Join torchrun's process group for a run writing `directory` (rank 0 of 1 without torchrun)."""
    from bertcnn_torch.distributed import join as join_world

    return join_world(directory, **kwargs)
