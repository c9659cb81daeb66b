"""The training objective, defined once: class weights as torch weighs them, and Keras' class_weight shown to differ."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.training.objective import balanced_weights, objective, read_class_weights, row_weights

W = (0.5, 2.0, 3.0)


def _batch(seed=0, n=7, labels=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, labels)), rng.integers(0, labels, size=n)


def test_weighted_cross_entropy_is_torchs_weighted_mean():
    import torch

    z, y = _batch()
    want = torch.nn.CrossEntropyLoss(weight=torch.tensor(W, dtype=torch.float64))(
        torch.from_numpy(z), torch.from_numpy(y)
    )
    assert objective(z, y, class_weights=W) == pytest.approx(float(want), abs=1e-15)
    assert objective(z, y) == pytest.approx(
        float(torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)))
    )


def test_keras_class_weight_divides_by_the_batch_size_and_the_trainers_weights_do_not():
    """Keras' `fit(class_weight=)` is sum w[y] l / B; torch's (and ours) sum w[y] l / sum w[y]."""
    import keras

    z, y = _batch(seed=1)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    w_y = np.asarray(W)[y]
    keras_way = float(ce(y, z, sample_weight=w_y))
    ours = float(ce(y, z, sample_weight=w_y * len(y) / w_y.sum()))  # what bertcnn_tf.train.PlanDataset gives
    torch_way = objective(z, y, class_weights=W)
    assert ours == pytest.approx(torch_way, abs=1e-14)
    assert abs(keras_way - torch_way) > 0.1 * torch_way  # here sum w[y] / B = 1.79: another scale, another loss
    assert keras_way == pytest.approx(torch_way * w_y.sum() / len(y), abs=1e-14)


def test_balanced_is_scikit_learns_and_multi_label_is_negatives_over_positives():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0, 0, 0, 0, 1, 2, 2, 0, 1, 0, 0])
    want = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert balanced_weights(y, 3, ["a", "b", "c"], source="f") == pytest.approx(tuple(want), abs=1e-15)
    m = np.array([[1, 0], [0, 0], [1, 1], [0, 0], [0, 0]])
    assert balanced_weights(m, 2, ["a", "b"], source="f") == (1.5, 4.0)  # 3/2 and 4/1
    with pytest.raises(
        ValueError, match=r"f: --class-weights balanced .* 1 class\(es\) have no row: \['c'\].*Received"
    ):
        balanced_weights(np.array([0, 1, 1]), 3, ["a", "b", "c"], source="f")
    with pytest.raises(ValueError, match=r"on no row or on every row: \['b'\].*Received"):
        balanced_weights(np.array([[1, 1], [0, 1]]), 2, ["a", "b"], source="f")


def test_a_weights_file_names_every_class_or_lists_them_in_id_order(tmp_path):
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"c": 3, "a": 0.5, "b": 2}))
    assert read_class_weights(f, ["a", "b", "c"]) == W
    f.write_text("[0.5, 2, 3]")
    assert read_class_weights(f, ["a", "b", "c"]) == W
    bad = [
        ({"a": 1, "b": 2}, r"must name every class.*missing \['c'\]"),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, r"unknown \['d'\]"),
        ([1, 2], r"one per class in id order \(3.*Received: 2 numbers"),
        ({"a": 1, "b": 0, "c": 3}, r"positive number. Received: \[0\]"),
        ({"a": 1, "b": True, "c": 3}, r"positive number. Received: \[True\]"),
        ("x", r"expected .*Received: a JSON str"),
    ]
    for content, fragment in bad:
        f.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=fragment):
            read_class_weights(f, ["a", "b", "c"])
    f.write_text("{")
    with pytest.raises(ValueError, match=r"w.json: not a readable JSON file"):
        read_class_weights(f, ["a", "b", "c"])


def test_row_weights_are_each_rows_class_weight_only_for_weighted_single_label():
    assert row_weights(np.array([2, 0, 1]), W, False).tolist() == [3.0, 0.5, 2.0]
    assert row_weights(np.array([2, 0]), None, False) is None
    assert row_weights(np.array([[1, 0, 1]]), W, True) is None  # pos_weight leaves the normaliser rows x labels
