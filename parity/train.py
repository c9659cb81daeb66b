"""Training parity through the real trainers: one recipe, one start, the same batches.

The report and the tests train with `bertcnn_torch.train` and `bertcnn_tf.train` (the
trainers `bertcnn train` runs), never a second harness, and compare the final weights
and AdamW moments. Inputs travel as one padded batch (ids, mask, token types) whose
mask gives each row's length; the trainers re-pad each batch of the plan to its own
longest row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from parity.config import BertCnnConfig
from parity.training.recipe import TrainingRecipe
from parity.training.state import Snapshot, TrainerState


def no_dropout(config: BertCnnConfig) -> BertCnnConfig:
    return config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)


def encoded_rows(inputs: Mapping[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids, type_ids) per row, unpadded, from a right-padded batch and its attention mask."""
    ids, mask = np.asarray(inputs["input_ids"]), np.asarray(inputs["attention_mask"])
    types = np.asarray(inputs.get("token_type_ids", np.zeros_like(ids)))
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
                  max_grad_norm: float | None = 1.0) -> TrainingRecipe:  # fmt: skip
    """The report's recipe: AdamW with warmup, decay and clipping; dropout off, file order."""
    return TrainingRecipe(epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                          max_grad_norm=max_grad_norm, dtype=dtype, dropout=False, shuffle=False)  # fmt: skip


def torch_train(
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    recipe: TrainingRecipe,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The PyTorch trainer on these rows: (weights + moments, the metrics log)."""
    from bertcnn_torch.train import train
    from parity.training.loop import Run

    snap = train(Run(start(config, tensors, recipe, len(labels)), encoded_rows(inputs), labels))
    return flat(snap), snap.metrics
