"""The Keras trainer's losses: torch's definitions (`parity.training.objective`) in `keras.ops`.

Each loss gives one value per row and Keras' default reduction ("sum_over_batch_size")
divides the sample-weighted sum by the batch size; the trainer's sample weights
(`bertcnn_tf.train.PlanDataset`) carry everything else: a micro-batch's share of its
update, data-parallel padding, and with class weights w[y_i] B / sum_j w[y_j], so that the
division by B leaves torch's `CrossEntropyLoss(weight=w)` mean. Multi-label is torch's
`binary_cross_entropy_with_logits` formula with `pos_weight`, averaged over the labels here
and over the rows by the reduction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import ops

__all__ = ["BinaryCrossentropyWithLogits", "per_row_loss", "training_loss"]


def binary_cross_entropy_rows(y_true, logits, pos_weight=None):
    """(B,) mean over labels of (1 - y) z + (1 + (p - 1) y) (log1p(exp(-|z|)) + max(-z, 0)): torch's formula."""
    y = ops.cast(y_true, logits.dtype)
    softplus = ops.log1p(ops.exp(-ops.abs(logits))) + ops.relu(-logits)
    if pos_weight is None:
        terms = (1.0 - y) * logits + softplus
    else:
        p = ops.convert_to_tensor(pos_weight, dtype=logits.dtype)  # not via float32: 0.3 would move 1e-8
        terms = (1.0 - y) * logits + (1.0 + (p - 1.0) * y) * softplus
    return ops.mean(terms, axis=-1)


@keras.saving.register_keras_serializable(package="bertcnn")
class BinaryCrossentropyWithLogits(keras.losses.Loss):
    """Multi-label loss: torch's `BCEWithLogitsLoss(pos_weight=)`, one value per row (mean over its labels)."""

    def __init__(self, pos_weight: Sequence[float] | None = None, name: str = "bce_with_logits", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = None if pos_weight is None else [float(x) for x in pos_weight]

    def call(self, y_true, y_pred):
        return binary_cross_entropy_rows(y_true, y_pred, self.pos_weight)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight}


def per_row_loss(multi_label: bool, class_weights: Sequence[float] | None) -> Callable:
    """(y_true, logits) -> (B,) the loss of each row, before sample weights and reduction."""
    if multi_label:
        return lambda y, z: binary_cross_entropy_rows(y, z, class_weights)
    return lambda y, z: keras.losses.sparse_categorical_crossentropy(y, z, from_logits=True)


def training_loss(multi_label: bool, class_weights: Sequence[float] | None, dtype: str) -> keras.losses.Loss:
    """The loss `compile` gets, computed in the run's dtype (a Keras Loss computes in `floatx()` otherwise)."""
    if multi_label:
        return BinaryCrossentropyWithLogits(class_weights, dtype=dtype)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
