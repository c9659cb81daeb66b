"""Multi-label metrics, loss and thresholds in numpy: `bertcnn evaluate`, both trainers' eval, `--tune-thresholds`.

A multi-label model gives one logit per label; a label's probability is its sigmoid, and
a label is predicted when its probability reaches its threshold (`p >= t`, default 0.5,
per label with `train --tune-thresholds`). Conventions are scikit-learn's for a label
indicator matrix, so every figure can be checked against it: precision/recall/F1 per
label with `zero_division=0`; micro = from the summed counts of all labels; macro = the
plain mean over *all* labels (a label absent from truth and predictions scores 0, as
sklearn's label set for indicator matrices is every column); weighted = weighted by
support; subset accuracy = rows whose predicted set equals the true set exactly;
Hamming loss = the fraction of (row, label) cells predicted wrong. The loss is the mean
binary cross-entropy with logits over rows and labels, computed in float64 in the stable
form torch's `binary_cross_entropy_with_logits` uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parity.config import DEFAULT_THRESHOLD
from parity.training.metrics import precision_recall_f1

__all__ = [
    "binary_cross_entropy",
    "evaluate_multilabel",
    "multilabel_report",
    "predicted",
    "sigmoid",
    "tune_thresholds",
]


def sigmoid(logits) -> np.ndarray:
    """Probabilities in float64, without overflow for either sign (exp of a non-positive number only)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _targets(targets, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(targets)
    if y.shape != shape or not (y.size == 0 or np.isin(y, (0, 1)).all()):
        raise ValueError(f"targets must be a 0/1 matrix of shape {shape}, one column per label. "
                         f"Received: shape {y.shape}")  # fmt: skip
    return y.astype(np.int64)


def binary_cross_entropy(logits, targets, pos_weight=None) -> float:
    """Mean over rows and labels of torch's BCE with logits: (1 - y) z + (1 + (p - 1) y) (log1p(e^-|z|) + max(-z, 0)).

    `pos_weight` (one per label, torch's `BCEWithLogitsLoss(pos_weight=)`) weighs each label's positive term.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"logits must be (N, num_labels) with N >= 1. Received: shape {z.shape}")
    y = _targets(targets, z.shape).astype(np.float64)
    p = np.ones(z.shape[1]) if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    softplus = np.log1p(np.exp(-np.abs(z))) + np.maximum(-z, 0.0)
    return float(np.mean((1.0 - y) * z + (1.0 + (p - 1.0) * y) * softplus))


def predicted(logits, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """(N, L) 0/1: a label is predicted where sigmoid(logit) >= its threshold (default 0.5 each)."""
    probs = sigmoid(logits)
    t = np.full(probs.shape[-1], DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds, np.float64)
    if t.shape != (probs.shape[-1],):
        raise ValueError(f"one threshold per label ({probs.shape[-1]}). Received: {list(t)!r}")
    return (probs >= t).astype(np.int64)


def multilabel_report(targets, predictions, label_names: Sequence[str]) -> dict:
    """Per-label precision/recall/F1/support; micro, macro and weighted F1; subset accuracy; Hamming loss."""
    names = [str(n) for n in label_names]
    p = np.asarray(predictions)
    if p.ndim != 2 or p.shape[1] != len(names) or len(p) == 0:
        raise ValueError(f"predictions must be (N >= 1, {len(names)}), one column per label name. "
                         f"Received: shape {p.shape}")  # fmt: skip
    p = _targets(p, p.shape)
    y = _targets(targets, p.shape)
    tp, fp, fn = (y & p).sum(0), ((1 - y) & p).sum(0), (y & (1 - p)).sum(0)
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    support = y.sum(0)
    micro_p, micro_r, micro_f1 = (float(v[0]) for v in precision_recall_f1([tp.sum()], [fp.sum()], [fn.sum()]))
    weighted = float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
    return {
        "accuracy": float((y == p).all(axis=1).mean()),  # subset accuracy: the whole set right
        "subset_accuracy": float((y == p).all(axis=1).mean()),
        "hamming_loss": float((y != p).mean()),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": micro_f1,
        "macro_f1": float(f1.mean()),
        "weighted_f1": weighted,
        "per_label": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                "predicted": int(p[:, i].sum()),
            }
            for i, name in enumerate(names)
        },
        "labels": names,
        "num_examples": len(y),
    }


def evaluate_multilabel(logits, targets, label_names: Sequence[str], thresholds: Sequence[float] | None = None) -> dict:
    """`multilabel_report` of the thresholded sigmoids, plus `loss` (mean BCE) and the thresholds used."""
    z = np.asarray(logits)
    if z.ndim != 2 or z.shape[1] != len(label_names):
        raise ValueError(f"logits must be (N, {len(label_names)}), one column per label name. "
                         f"Received: shape {z.shape}")  # fmt: skip
    t = [DEFAULT_THRESHOLD] * z.shape[1] if thresholds is None else [float(x) for x in thresholds]
    report = multilabel_report(targets, predicted(z, t), label_names)
    return {"loss": binary_cross_entropy(z, targets), **report, "thresholds": t}


def tune_thresholds(logits, targets) -> tuple[float, ...]:
    """Per label, the probability threshold that maximises that label's F1 on these rows.

    Candidates are the midpoints between consecutive distinct probabilities (and 0.5), so a
    threshold never sits exactly on a held-out probability; of equal F1s the one nearest 0.5
    wins. A label with no positive row keeps 0.5: its F1 cannot tell thresholds apart.
    """
    probs = sigmoid(logits)
    y = _targets(targets, probs.shape)
    out = []
    for j in range(probs.shape[1]):
        p, t = probs[:, j], y[:, j]
        if not t.any():
            out.append(DEFAULT_THRESHOLD)
            continue
        values = np.unique(p)
        candidates = np.unique(np.concatenate([(values[:-1] + values[1:]) / 2, [DEFAULT_THRESHOLD],
                                               [values[0] / 2, (values[-1] + 1.0) / 2]]))  # fmt: skip
        pred = p[None, :] >= candidates[:, None]
        tp = (pred & (t[None, :] == 1)).sum(1)
        fp = (pred & (t[None, :] == 0)).sum(1)
        fn = t.sum() - tp
        f1 = precision_recall_f1(tp, fp, fn)[2]
        best = np.flatnonzero(f1 == f1.max())
        out.append(float(candidates[best[np.argmin(np.abs(candidates[best] - DEFAULT_THRESHOLD))]]))
    return tuple(out)
