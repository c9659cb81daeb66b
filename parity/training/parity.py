"""Training parity through the real trainers: one recipe, one start, the same batches.

The report and the tests train with `bertcnn_torch.train` and `bertcnn_tf.train` (the
trainers `bertcnn train` runs, through each build's `runtime.train_parity`), never a
second harness, and compare the final weights and AdamW moments. Inputs travel as one
padded batch (ids, mask, token types) whose mask gives each row's length; the trainers
re-pad each batch of the plan to its own longest row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from parity.config import BertCnnConfig
from parity.tokenize import Document
from parity.training.recipe import TrainingRecipe
from parity.training.state import Snapshot, TrainerState


def encoded_rows(inputs: Mapping[str, np.ndarray]) -> list:
    """(ids, type_ids) per row, unpadded, from a right-padded batch and its attention mask; (batch, windows,
    tokens) inputs give `Document`s (their all-padding windows dropped)."""
    ids, mask = np.asarray(inputs["input_ids"]), np.asarray(inputs["attention_mask"])
    types = np.asarray(inputs.get("token_type_ids", np.zeros_like(ids)))
    if ids.ndim == 3:
        rows = [encoded_rows({"input_ids": i, "attention_mask": m, "token_type_ids": t})
                for i, m, t in zip(ids, mask, types, strict=True)]  # fmt: skip
        return [Document(w for w in doc if len(w[0])) for doc in rows]
    lengths = mask.sum(axis=1)
    return [(ids[i, :n].astype(np.int64), types[i, :n].astype(np.int64)) for i, n in enumerate(lengths)]


def start(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], recipe: TrainingRecipe, num_rows: int,
          framework: str = "torch") -> Snapshot:  # fmt: skip
    """Step 0 of a run from canonical `tensors`, in the recipe's dtype."""
    state = TrainerState(step=0, epoch=0, batch=0, framework=framework, data_sha256="", num_rows=num_rows)
    return Snapshot(config, {k: np.asarray(v).astype(recipe.dtype) for k, v in tensors.items()}, {}, recipe, state)


def flat(snapshot: Snapshot) -> dict[str, np.ndarray]:
    """Weights under their canonical names and moments as `exp_avg.<name>` / `exp_avg_sq.<name>`."""
    return {**snapshot.tensors, **snapshot.moments}


def parity_recipe(batch_size: int, dtype: str, *, epochs: int = 1, lr: float = 1e-3, warmup_steps: int = 1,
                  max_grad_norm: float | None = 1.0, class_weights=None) -> TrainingRecipe:  # fmt: skip
    """The report's recipe: AdamW with warmup, decay and clipping; dropout off, file order."""
    return TrainingRecipe(epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                          max_grad_norm=max_grad_norm, dtype=dtype, dropout=False, shuffle=False,
                          class_weights=class_weights)  # fmt: skip


def train_batches(inputs: Mapping[str, np.ndarray], labels: np.ndarray, steps: int):
    """`steps` batches of `inputs`, rotated one row per step so each batch differs: (inputs, labels, batch size)."""
    n = inputs["input_ids"].shape[0]
    rolled = [{k: np.roll(v, s, axis=0) for k, v in inputs.items()} for s in range(steps)]
    stacked = {k: np.concatenate([r[k] for r in rolled]) for k in inputs}
    return stacked, np.concatenate([np.roll(labels, s, axis=0) for s in range(steps)]), n
