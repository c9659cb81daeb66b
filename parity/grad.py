"""Gradient parity: d(mean cross-entropy)/d(every weight), dropout off, in both builds.

Gradients are compared in the canonical (torch) layout: the Keras gradients go
through the weight table's inverse ops, so a wrong op in the table shows up here
even when the forward pass agrees. Unused weights (BERT's pooler) get exactly zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from parity.config import BertCnnConfig
from parity.layout import rows


def seeded_labels(config: BertCnnConfig, batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, config.num_labels, size=batch).astype(np.int64)


def torch_grads(
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    dtype: str = "float32",
    device: str = "cpu",
) -> tuple[dict[str, np.ndarray], float]:
    import torch
    import torch.nn.functional as F

    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(config, dict(tensors)).to(device=device, dtype=getattr(torch, dtype))
    model.eval()  # dropout off
    batch = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in inputs.items()}
    loss = F.cross_entropy(model(**batch), torch.from_numpy(np.asarray(labels)).to(device))
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        grads[name] = np.zeros(tuple(p.shape), dtype) if p.grad is None else p.grad.detach().cpu().numpy()
    return grads, float(loss.detach())


def grad_names(config: BertCnnConfig) -> list[str]:
    """Canonical names in forward (weight table) order."""
    return [r.torch_name for r in rows(config)]
