"""Training parity through the real trainers: torch AdamW loop vs Keras compile/fit.

float64, dropout off, tiny config, 29 rows, 2 epochs with warmup, decay and clipping:
every weight and every AdamW moment must agree within the float64 train tolerance.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bertcnn_torch.train import train as torch_train
from parity.tolerance import tolerance_for
from parity.training.parity import encoded_rows, flat
from tests.helpers import make_run, max_diff, recipe, tiny_setup


def _padded(encoded):
    """The rows as one padded batch (what the backends child takes)."""
    width = max(len(ids) for ids, _ in encoded)
    out = {k: np.zeros((len(encoded), width), np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    for i, (ids, types) in enumerate(encoded):
        out["input_ids"][i, : len(ids)], out["token_type_ids"][i, : len(ids)] = ids, types
        out["attention_mask"][i, : len(ids)] = 1
    return out


@pytest.fixture(scope="module")
def setup():
    return tiny_setup()


@pytest.fixture(scope="module")
def torch_runs(setup):
    return {dt: torch_train(make_run(setup, recipe(dt))) for dt in ("float64", "float32")}


def test_recipe_exercises_warmup_decay_and_clipping(torch_runs, setup):
    log = [m for m in torch_runs["float64"].metrics if "loss" in m]
    assert len(log) == 16 and [m["lr"] for m in log[:4]] == pytest.approx([0.0, 1e-2 / 3, 2e-2 / 3, 1e-2], abs=1e-18)
    assert all(a["lr"] > b["lr"] for a, b in itertools.pairwise(log[3:]))  # decays to the end
    clipped = [m["clipped"] for m in log]
    assert any(clipped) and not all(clipped), clipped
    tensors = setup[1]
    assert np.abs(torch_runs["float64"].tensors["fc.weight"] - tensors["fc.weight"]).max() > 1e-2
    # The pooler is not trained (no loss reaches it) and has no moments.
    np.testing.assert_array_equal(torch_runs["float64"].tensors["bert.pooler.dense.weight"],
                                  tensors["bert.pooler.dense.weight"].astype(np.float64))  # fmt: skip
    assert not any("pooler" in k for k in torch_runs["float64"].moments)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_keras_fit_lands_on_the_torch_weights_and_moments(dtype, torch_runs, setup):
    from bertcnn_tf.train import train as keras_train

    ref = torch_runs[dtype]
    cand = keras_train(make_run(setup, recipe(dtype), "keras"))
    tol = tolerance_for(dtype, "cpu", "train")
    worst, name = max_diff(flat(ref), flat(cand))
    assert worst <= tol.atol, (worst, name)
    assert flat(cand)["fc.weight"].dtype == np.dtype(dtype)
    ref_log = [m for m in ref.metrics if "loss" in m]
    cand_log = [m for m in cand.metrics if "loss" in m]
    assert [m["lr"] for m in ref_log] == [m["lr"] for m in cand_log]
    assert [m["clipped"] for m in ref_log] == [m["clipped"] for m in cand_log]
    np.testing.assert_allclose([m["loss"] for m in cand_log], [m["loss"] for m in ref_log], rtol=0, atol=tol.atol)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_keras_backends_match_in_float64(backend, torch_runs, setup):
    from parity.commands.keras_child import keras_side

    config, tensors, encoded, labels = setup
    r = recipe("float64")
    task = {"task": "train", "dtype": "float64", "recipe": r.to_dict()}
    ((cand, meta),) = keras_side(backend, [task], config, tensors, _padded(encoded), labels)
    assert meta["backend"] == backend and meta["computed_dtypes"] == ["float64"]
    worst, name = max_diff(flat(torch_runs["float64"]), cand)
    assert worst <= tolerance_for("float64", "cpu", "train").atol, (worst, name)


def test_encoded_rows_undo_padding(setup):
    encoded = setup[2]
    again = encoded_rows(_padded(encoded))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(encoded, again, strict=True))
