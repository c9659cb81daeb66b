"""Training parity: N plain-SGD steps from one checkpoint, same batches, dropout off.

The Keras build trains the way Keras users train (`compile`/`fit`), the PyTorch build
with a plain loop. With identical gradients (see `parity.grad`) and plain SGD the two
trajectories may only drift by rounding, so the final checkpoints are compared.

The learning rate must be exactly representable in float32: Keras keeps it in a
float32 variable and casts it to the weights' dtype, so with lr=0.1 a float64 run
would step by 0.10000000149 in Keras and 0.1 in torch (a 1.5e-8 relative, structural
difference). `DEFAULT_LR` is a power of two for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from parity.config import BertCnnConfig

DEFAULT_LR = 0.125


def check_lr(lr: float) -> None:
    if not np.float64(np.float32(lr)) == np.float64(lr) or lr <= 0:
        raise ValueError(
            "The learning rate must be positive and exactly representable in float32 (Keras stores it in "
            f"float32), e.g. 0.125, 0.0625. Received: {lr!r}"
        )


def no_dropout(config: BertCnnConfig) -> BertCnnConfig:
    return config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)


def torch_train(
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    batch_size: int,
    lr: float = DEFAULT_LR,
    dtype: str = "float32",
) -> tuple[dict[str, np.ndarray], list[float]]:
    """A plain loop: consecutive batches in order, SGD without momentum or weight decay."""
    import torch
    import torch.nn.functional as F

    from bertcnn_torch import BertCNN

    check_lr(lr)
    model = BertCNN._from_tensors(no_dropout(config), dict(tensors)).to(getattr(torch, dtype))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    n, losses = len(labels), []
    for start in range(0, n, batch_size):
        batch = {k: torch.from_numpy(np.asarray(v[start : start + batch_size])) for k, v in inputs.items()}
        y = torch.from_numpy(np.asarray(labels[start : start + batch_size]))
        opt.zero_grad()
        loss = F.cross_entropy(model(**batch), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}, losses
