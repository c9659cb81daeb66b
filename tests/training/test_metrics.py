"""Metrics: hand-computed examples, and scikit-learn's figures on random draws where it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.training.metrics import classification_report, confusion_matrix, cross_entropy, evaluate_logits, softmax

Y = [0, 0, 1, 1, 2, 2, 2]
P = [0, 1, 1, 1, 2, 0, 1]


def test_hand_computed_three_class_example():
    r = classification_report(Y, P, ["neg", "mid", "pos"])
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 1, 1]]  # rows true, columns predicted
    assert r["accuracy"] == pytest.approx(4 / 7, abs=1e-15)
    pl = r["per_label"]
    assert [pl[n]["precision"] for n in ("neg", "mid", "pos")] == pytest.approx([1 / 2, 1 / 2, 1], abs=1e-15)
    assert [pl[n]["recall"] for n in ("neg", "mid", "pos")] == pytest.approx([1 / 2, 1, 1 / 3], abs=1e-15)
    assert [pl[n]["f1"] for n in ("neg", "mid", "pos")] == pytest.approx([1 / 2, 2 / 3, 1 / 2], abs=1e-15)
    assert [pl[n]["support"] for n in ("neg", "mid", "pos")] == [2, 2, 3]
    assert r["macro_f1"] == pytest.approx(5 / 9, abs=1e-15)
    assert (r["labels"], r["num_examples"]) == (["neg", "mid", "pos"], 7)


def test_zero_denominators_are_zero_and_absent_classes_leave_the_macro_mean():
    r = classification_report([0, 0], [0, 1], ["a", "b", "c"])
    assert r["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["per_label"]["a"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx(1 / 3)  # mean over a and b; c occurs nowhere


def test_cross_entropy_and_softmax_by_hand_and_without_overflow():
    assert cross_entropy([[0.0, math.log(3)]], [0]) == pytest.approx(math.log(4), abs=1e-15)
    assert cross_entropy(np.array([[1000.0, 0.0]], dtype=np.float32), [1]) == pytest.approx(1000.0, abs=1e-12)
    np.testing.assert_allclose(
        softmax([[1000.0, 1000.0 + math.log(3)]]), [[0.25, 0.75]], rtol=0, atol=1e-13
    )  # ulp(1000)
    assert softmax(np.zeros((2, 3), np.float32)).dtype == np.float64
    r = evaluate_logits([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]], [0, 0, 0], ["x", "y"])
    assert r["accuracy"] == pytest.approx(2 / 3) and r["confusion_matrix"] == [[2, 1], [0, 0]]
    assert r["loss"] == pytest.approx(cross_entropy([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]], [0, 0, 0]))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: confusion_matrix([0, 3], [0, 1], 3), r"labels must lie in \[0, 3\)"),
        (lambda: confusion_matrix([0, 1], [0], 3), "same length"),
        (lambda: confusion_matrix([0.5], [0], 3), "integer label ids"),
        (lambda: classification_report([], [], ["a"]), "at least one example"),
        (lambda: evaluate_logits(np.zeros((2, 3)), [0, 1], ["a", "b"]), "one column per label name"),
    ],
)
def test_bad_arguments_are_refused(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


@pytest.mark.filterwarnings("ignore::UserWarning")
@given(
    st.integers(1, 5).flatmap(
        lambda k: st.tuples(
            st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40)
        )
    )
)
def test_agrees_with_scikit_learn(draw):  # fmt: skip
    metrics = pytest.importorskip("sklearn.metrics")
    k, pairs = draw
    y, p = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    r = classification_report(y, p, [f"c{i}" for i in range(k)])
    np.testing.assert_array_equal(r["confusion_matrix"], metrics.confusion_matrix(y, p, labels=range(k)))
    assert r["accuracy"] == pytest.approx(metrics.accuracy_score(y, p), abs=1e-15)
    assert r["macro_f1"] == pytest.approx(metrics.f1_score(y, p, average="macro", zero_division=0), abs=1e-15)
    prec, rec, f1, sup = metrics.precision_recall_fscore_support(y, p, labels=range(k), zero_division=0)
    for i in range(k):
        got = r["per_label"][f"c{i}"]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((prec[i], rec[i], f1[i]), abs=1e-15)
        assert got["support"] == sup[i]
    if k < 2:
        return  # log_loss refuses a single class
    z = np.random.default_rng(len(pairs)).standard_normal((len(y), k)) * 5
    assert cross_entropy(z, y) == pytest.approx(metrics.log_loss(y, softmax(z), labels=range(k)), abs=1e-12)
