"""What both trainers minimise, defined once: the loss, class weights, and how a batch's parts add up to it.

Single-label: softmax cross-entropy. With class weights w (one per class) it is torch's
`CrossEntropyLoss(weight=w)`: the mean *weighted by the rows' class weights*,
sum_i w[y_i] l_i / sum_i w[y_i]. Keras's `fit(class_weight=...)` turns the same w into
sample weights and divides by the batch size instead, sum_i w[y_i] l_i / B: another loss
(its scale moves with the batch's class mix), so the Keras trainer does not use it that
way; it gives the sample weights w[y_i] B / sum_j w[y_j], whose division by B leaves
torch's weighted mean.

Multi-label: binary cross-entropy with logits, the mean over rows and labels; with class
weights, torch's `BCEWithLogitsLoss(pos_weight=w)`: label j's positive term weighed w[j],
the normaliser still rows x labels.

Parts of an update (gradient-accumulation micro-batches, data-parallel shares) each
compute their own mean and are weighed by their share of the update's normaliser: the
sum of their rows' weights (`row_weights`: the class weight of each row's class when a
single-label run has class weights, else 1, when the share is the plain row count).
The weighted sum of the parts is then exactly the update's loss.

`balanced` weights are scikit-learn's `compute_class_weight("balanced")`: n_rows /
(n_classes x rows of the class). For multi-label, label j's pos_weight is the ratio of the
two balanced weights of its own yes/no problem, rows without j / rows with j (torch's
advice for `pos_weight`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["balanced_weights", "objective", "read_class_weights", "resolve_class_weights", "row_weights"]


def balanced_weights(labels: np.ndarray, num_labels: int, names: Sequence[str], *, source: str) -> tuple[float, ...]:
    """scikit-learn's "balanced" class weights (single-label) or balanced pos_weight per label (multi-label)."""
    y = np.asarray(labels)
    n = len(y)
    if y.ndim == 1:
        counts = np.bincount(y, minlength=num_labels)
        missing = [names[i] for i in np.flatnonzero(counts == 0)]
        if missing:
            raise ValueError(f"{source}: --class-weights balanced weighs each class by n_rows / (n_classes x its "
                             f"rows), and {len(missing)} class(es) have no row: {missing[:10]!r}; expected every "
                             "class in the training file, or give the weights yourself (--class-weights FILE.json). "
                             f"Received: rows per class {dict(zip(names, counts.tolist(), strict=True))}")  # fmt: skip
        return tuple(float(n / (num_labels * c)) for c in counts)
    positives = y.sum(axis=0)
    never = [names[i] for i in np.flatnonzero((positives == 0) | (positives == n))]
    if never:
        raise ValueError(
            f"{source}: --class-weights balanced gives label j the pos_weight rows without j / rows with "
            f"j, and {len(never)} label(s) are on no row or on every row: {never[:10]!r}; expected each "
            "label on some rows and not others, or give the weights yourself (--class-weights "
            f"FILE.json). Received: rows per label {dict(zip(names, positives.tolist(), strict=True))}"
        )
    return tuple(float((n - p) / p) for p in positives)


def read_class_weights(path: str | Path, names: Sequence[str]) -> tuple[float, ...]:
    """A JSON file of class weights: {"name": weight, ...} naming every class, or a list in id order."""
    p = Path(path)
    shape = '{"name": weight, ...} naming every class (or a list of weights in id order)'
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--class-weights file not found; expected a JSON file {shape}. "
                                f"Received: {str(p)!r}") from None  # fmt: skip
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not a readable JSON file ({str(e)[:120]}); expected {shape}. "
                         f"Received: {str(p)!r}") from None  # fmt: skip
    if isinstance(raw, dict):
        unknown, missing = sorted(set(raw) - set(names)), [n for n in names if n not in raw]
        if unknown or missing:
            raise ValueError(f"{p}: the class weights must name every class of the model, {list(names)!r}, and no "
                             f"other; fix the names. Received: unknown {unknown[:10]!r}, missing "
                             f"{missing[:10]!r}")  # fmt: skip
        values = [raw[n] for n in names]
    elif isinstance(raw, list):
        if len(raw) != len(names):
            raise ValueError(f"{p}: a list of class weights needs one per class in id order ({len(names)}: "
                             f"{list(names)!r}). Received: {len(raw)} numbers")  # fmt: skip
        values = raw
    else:
        raise ValueError(f"{p}: expected {shape}. Received: a JSON {type(raw).__name__}")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
           or v <= 0]  # fmt: skip
    if bad:
        raise ValueError(f"{p}: every class weight must be a positive number. Received: {bad[:5]!r}")
    return tuple(float(v) for v in values)


def resolve_class_weights(spec: str, labels: np.ndarray, names: Sequence[str], *, source: str) -> tuple[float, ...]:
    """`--class-weights balanced|FILE.json` as numbers, one per class (or label), in id order."""
    if spec == "balanced":
        return balanced_weights(labels, len(names), names, source=source)
    return read_class_weights(spec, names)


def row_weights(labels: np.ndarray, class_weights: Sequence[float] | None, multi_label: bool) -> np.ndarray | None:
    """Each row's weight in its update's normaliser: its class's weight (single-label, weighted); None: 1 each."""
    if class_weights is None or multi_label:
        return None
    return np.asarray(class_weights, dtype=np.float64)[np.asarray(labels)]


def objective(logits, labels, *, multi_label: bool = False, class_weights: Sequence[float] | None = None) -> float:
    """The training loss of one batch in float64, as defined above (the reference the trainers are checked against)."""
    z = np.asarray(logits, dtype=np.float64)
    if multi_label:
        from parity.training.multilabel import binary_cross_entropy

        return binary_cross_entropy(z, labels, pos_weight=class_weights)
    y = np.asarray(labels)
    m = z.max(axis=1, keepdims=True)
    nll = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1))) - z[np.arange(len(y)), y]
    w = np.ones(len(y)) if class_weights is None else np.asarray(class_weights, dtype=np.float64)[y]
    return float((w * nll).sum() / w.sum())
