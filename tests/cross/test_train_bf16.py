"""`mixed_precision="bf16"` training: bf16 compute, float32 weights, moments and saves, in both trainers.

bf16 keeps 8 significant bits, so weights are not compared (AdamW's normalised steps turn
bf16 noise in a small gradient into an O(lr) change of that weight); the per-update training
loss is, against float32 and across frameworks, within the tolerance table's bf16 train entry.
A resumed bf16 run is bit-identical, as in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity.tolerance import tolerance_for
from parity.training.parity import flat
from tests.helpers import make_run, recipe, tiny_setup, train_with
from tests.training.test_state import assert_bit_identical, crashed_then_resumed

TOL = tolerance_for("bfloat16", "cpu", "train")


@pytest.fixture(scope="module")
def setup():
    return tiny_setup(seed=2)


def _losses(snap) -> np.ndarray:
    return np.array([m["loss"] for m in snap.metrics if "loss" in m])


@pytest.fixture(scope="module")
def runs(setup):
    r = recipe("float32")
    out = {("torch", "float32"): train_with("torch", make_run(setup, r))}
    for fw in ("torch", "keras"):
        out[(fw, "bf16")] = train_with(fw, make_run(setup, r.replace(mixed_precision="bf16"), fw))
    return out


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_bf16_training_is_bf16_compute_on_float32_weights(framework, runs):
    f32, bf = runs[("torch", "float32")], runs[(framework, "bf16")]
    assert {v.dtype for v in flat(bf).values()} == {np.dtype("float32")}  # weights and AdamW moments
    gap = float(np.abs(_losses(f32) - _losses(bf)).max())
    assert 1e-4 < gap <= TOL.atol, gap  # really bf16 (float32 runs agree to ~1e-6), and close


def test_the_two_trainers_agree_in_bf16(runs):
    gap = float(np.abs(_losses(runs[("torch", "bf16")]) - _losses(runs[("keras", "bf16")])).max())
    assert gap <= TOL.atol, gap


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_a_crashed_bf16_run_resumes_bit_identical(framework, setup, tmp_path):
    r = recipe("float32", dropout=True, mixed_precision="bf16")
    whole = train_with(framework, make_run(setup, r, framework))
    assert_bit_identical(crashed_then_resumed(setup, r, tmp_path, framework, framework), whole)


def test_bf16_needs_float32_master_weights():
    with pytest.raises(ValueError, match="needs dtype float32"):
        recipe("float64", mixed_precision="bf16")
