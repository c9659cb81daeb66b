"""Multi-label metrics, loss and thresholds: scikit-learn's and torch's own figures on seeded draws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.training.multilabel import (
    binary_cross_entropy,
    evaluate_multilabel,
    multilabel_report,
    predicted,
    sigmoid,
    tune_thresholds,
)


@st.composite
def indicator_pair(draw):
    # Two labels at least: sklearn reads an (N, 1) matrix as a binary target, not a label indicator matrix.
    rows, labels = draw(st.integers(1, 17)), draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(rows, labels))
    p = rng.integers(0, 2, size=(rows, labels))
    if draw(st.booleans()):  # a label absent from truth and predictions: sklearn counts it in the macro mean
        y[:, 0] = p[:, 0] = 0
    return y, p


@given(indicator_pair())
def test_every_figure_is_scikit_learns(pair):
    from sklearn import metrics as M

    y, p = pair
    r = multilabel_report(y, p, [f"l{i}" for i in range(y.shape[1])])
    for average in ("micro", "macro", "weighted"):
        assert r[f"{average}_f1"] == pytest.approx(M.f1_score(y, p, average=average, zero_division=0), abs=1e-12)
    assert r["micro_precision"] == pytest.approx(M.precision_score(y, p, average="micro", zero_division=0), abs=1e-12)
    assert r["micro_recall"] == pytest.approx(M.recall_score(y, p, average="micro", zero_division=0), abs=1e-12)
    assert r["subset_accuracy"] == r["accuracy"] == pytest.approx(M.accuracy_score(y, p), abs=1e-12)
    assert r["hamming_loss"] == pytest.approx(M.hamming_loss(y, p), abs=1e-12)
    per = M.precision_recall_fscore_support(y, p, average=None, zero_division=0)
    for i in range(y.shape[1]):
        s = r["per_label"][f"l{i}"]
        got = (s["precision"], s["recall"], s["f1"], s["support"])
        assert got == pytest.approx(tuple(float(v[i]) for v in per), abs=1e-12)


def test_bce_is_torchs_with_and_without_pos_weight_and_never_overflows():
    import torch

    rng = np.random.default_rng(5)
    z, y = rng.normal(scale=4, size=(11, 3)), rng.integers(0, 2, size=(11, 3))
    for pw in (None, [1.0, 2.5, 0.3]):
        loss = torch.nn.BCEWithLogitsLoss(pos_weight=None if pw is None else torch.tensor(pw, dtype=torch.float64))
        want = float(loss(torch.from_numpy(z), torch.from_numpy(y.astype(np.float64))))
        assert binary_cross_entropy(z, y, pw) == pytest.approx(want, abs=1e-15)
    assert binary_cross_entropy([[1000.0, -1000.0]], [[0, 1]]) == pytest.approx(1000.0)
    assert sigmoid([-1000.0, 0.0, 1000.0]).tolist() == [0.0, 0.5, 1.0]


def test_a_label_is_predicted_where_its_probability_reaches_its_threshold():
    z = np.log(np.array([[0.5 / 0.5, 0.3 / 0.7, 0.7 / 0.3]]))  # probabilities 0.5, 0.3, 0.7
    assert predicted(z).tolist() == [[1, 0, 1]]  # 0.5 >= 0.5
    assert predicted(z, [0.6, 0.2, 0.8]).tolist() == [[0, 1, 0]]
    r = evaluate_multilabel(z, [[1, 1, 0]], ["a", "b", "c"], [0.6, 0.2, 0.8])
    assert (
        r["thresholds"] == [0.6, 0.2, 0.8] and r["subset_accuracy"] == 0.0 and r["hamming_loss"] == pytest.approx(1 / 3)
    )


@given(st.integers(0, 2**16), st.integers(2, 23))
def test_tuned_thresholds_give_each_label_its_best_f1(seed, rows):
    """No threshold does better on a label than the one chosen (brute force: every probability, and a grid)."""
    rng = np.random.default_rng(seed)
    z, y = rng.normal(size=(rows, 3)), rng.integers(0, 2, size=(rows, 3))
    chosen = tune_thresholds(z, y)
    probs = sigmoid(z)

    def f1(t, j):  # F1 of label j at each threshold in t, by hand
        pred = probs[None, :, j] >= np.asarray(t)[:, None]
        tp, fp, fn = (pred & (y[:, j] == 1)).sum(1), (pred & (y[:, j] == 0)).sum(1), (~pred & (y[:, j] == 1)).sum(1)
        return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)

    for j in range(3):
        if not y[:, j].any():
            assert chosen[j] == 0.5
            continue
        best = f1(np.concatenate([np.linspace(0, 1, 2001), probs[:, j]]), j).max()
        assert f1([chosen[j]], j)[0] >= best - 1e-12 and 0.0 <= chosen[j] <= 1.0
        assert not np.isin(chosen[j], probs[:, j])  # between held-out probabilities, never on one


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"0/1 matrix of shape \(2, 3\).*Received"):
        binary_cross_entropy(np.zeros((2, 3)), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"one threshold per label \(3\)"):
        predicted(np.zeros((1, 3)), [0.5])
    with pytest.raises(ValueError, match=r"one column per label name.*Received"):
        evaluate_multilabel(np.zeros((2, 3)), np.zeros((2, 3), int), ["a", "b"])
