"""Classification metrics in numpy: one implementation for `bertcnn evaluate` and both trainers' eval.

Conventions are scikit-learn's, so figures can be checked against it: the confusion
matrix has true labels as rows and predictions as columns; a precision or recall
whose denominator is 0 is 0 (sklearn's `zero_division=0`); macro-F1 is the plain mean
of F1 over the labels that occur in the truth or the predictions (sklearn's default
label set: a class absent from both says nothing about the model). The loss is the
mean cross-entropy of the logits, computed in float64 with a stable log-softmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "classification_report",
    "confusion_matrix",
    "cross_entropy",
    "evaluate_logits",
    "precision_recall_f1",
    "softmax",
]


def _ids(a, name: str, num_labels: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integer label ids. Received: shape {a.shape}, {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= num_labels):
        raise ValueError(f"{name} must lie in [0, {num_labels}). Received: range [{a.min()}, {a.max()}]")
    return a.astype(np.int64)


def confusion_matrix(labels, predictions, num_labels: int) -> np.ndarray:
    """(num_labels, num_labels) int64 counts: row = true label, column = predicted label."""
    y, p = _ids(labels, "labels", num_labels), _ids(predictions, "predictions", num_labels)
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions must have the same length. Received: {len(y)} and {len(p)}")
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def precision_recall_f1(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label precision, recall and F1 from counts; 0 where a ratio has nothing to count (scikit-learn's
    `zero_division=0`)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def classification_report(labels, predictions, label_names: Sequence[str]) -> dict:
    """accuracy, macro_f1, per_label {name: precision, recall, f1, support}, confusion_matrix, labels."""
    names = [str(n) for n in label_names]
    cm = confusion_matrix(labels, predictions, len(names))
    n = int(cm.sum())
    if n == 0:
        raise ValueError("metrics need at least one example. Received: 0 labels")
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    precision, recall, f1 = precision_recall_f1(tp, predicted - tp, support - tp)
    present = (support + predicted) > 0
    return {
        "accuracy": float(tp.sum() / n),
        "macro_f1": float(f1[present].mean()),
        "per_label": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": cm.tolist(),
        "labels": names,
        "num_examples": n,
    }


def softmax(logits) -> np.ndarray:
    """Probabilities in float64, max subtracted first so no logit overflows exp."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(logits, labels) -> float:
    """Mean over rows of -log softmax(logits)[label], in float64 (logsumexp with the max taken out)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be (N, num_labels). Received: shape {z.shape}")
    y = _ids(labels, "labels", z.shape[1])
    if len(y) != len(z) or len(y) == 0:
        raise ValueError(f"one label per logits row, at least one row. Received: {len(z)} rows, {len(y)} labels")
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def evaluate_logits(logits, labels, label_names: Sequence[str]) -> dict:
    """`classification_report` of argmax predictions, plus `loss` (mean cross-entropy); the trainers' eval."""
    z = np.asarray(logits)
    if z.ndim != 2 or z.shape[1] != len(label_names):
        raise ValueError(
            f"logits must be (N, {len(label_names)}), one column per label name. Received: shape {z.shape}"
        )
    report = classification_report(labels, np.argmax(z, axis=1), label_names)
    return {"loss": cross_entropy(z, labels), **report}
