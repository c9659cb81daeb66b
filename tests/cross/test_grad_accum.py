"""Gradient accumulation is exact: `batch_size b, grad_accum N` trains as `batch_size N b`.

float64, dropout off, the tiny setup's 29 rows: updates of 8 rows end each epoch with a
5-row update (micro-batches 4 + 1), updates of 9 with a 2-row one (one micro-batch of 3;
the Keras trainer fills the update up with two zero-weight stand-ins). Both trainers,
against one big batch in the same trainer and against each other; a crash mid-run
resumed from the last save ends bit-identical. The pitfall: weighting each micro-batch
1/N (Keras' own `gradient_accumulation_steps`, a mean of micro-batch means) is measurably
another training, so the equality checks below would catch it.
"""

from __future__ import annotations

import numpy as np
import pytest

from bertcnn_torch.train import train as torch_train
from parity.tolerance import tolerance_for
from parity.training import plan as plan_module
from parity.training.parity import flat
from tests.helpers import make_run, max_diff, recipe, tiny_setup, train_with
from tests.training.test_state import assert_bit_identical, crashed_then_resumed

TOL = tolerance_for("float64", "cpu", "train").atol


@pytest.fixture(scope="module")
def setup():
    return tiny_setup(seed=4)


def _updates(snap) -> list[dict]:
    return [m for m in snap.metrics if "loss" in m]


def _assert_same(a, b) -> float:
    worst, name = max_diff(flat(a), flat(b))
    assert worst <= TOL, (worst, name)
    la, lb = _updates(a), _updates(b)
    assert [m["step"] for m in la] == [m["step"] for m in lb] and [m["lr"] for m in la] == [m["lr"] for m in lb]
    np.testing.assert_allclose([m["loss"] for m in la], [m["loss"] for m in lb], rtol=0, atol=TOL)
    np.testing.assert_allclose([m["grad_norm"] for m in la], [m["grad_norm"] for m in lb], rtol=0, atol=TOL)
    return worst


@pytest.fixture(scope="module")
def big(setup):
    """One batch of 8 rows per update, torch: the reference."""
    return torch_train(make_run(setup, recipe(batch_size=8)))


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_two_micro_batches_of_4_train_as_one_batch_of_8(framework, setup, big):
    got = train_with(framework, make_run(setup, recipe(batch_size=4, grad_accum=2), framework))
    assert got.state.step == big.state.step == 8 and got.state.finished  # the schedule counts updates
    assert [m["clipped"] for m in _updates(got)] == [m["clipped"] for m in _updates(big)]
    assert any(m["clipped"] for m in _updates(got)) and not all(m["clipped"] for m in _updates(got))
    _assert_same(big, got)


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_a_last_update_shorter_than_one_micro_batch(framework, setup):
    """29 rows in updates of 9 = 3 x 3: each epoch's last update has 2 rows, one micro-batch of 3 missing 2."""
    ref = torch_train(make_run(setup, recipe(batch_size=9)))
    got = train_with(framework, make_run(setup, recipe(batch_size=3, grad_accum=3), framework))
    assert got.state.step == ref.state.step == 8
    _assert_same(ref, got)


def test_the_mean_of_micro_batch_means_is_another_training(setup, big, monkeypatch):
    """Keras' stock accumulation averages the N micro-batch gradients: put it back and the equality fails."""
    exact = plan_module.micro_batches

    def mean_of_means(batch, r):
        parts = exact(batch, r)
        return [(rows, 1.0 / len(parts)) for rows, _ in parts]

    monkeypatch.setattr("parity.training.loop.micro_batches", mean_of_means)
    wrong = torch_train(make_run(setup, recipe(batch_size=4, grad_accum=2)))
    worst, _ = max_diff(flat(big), flat(wrong))
    assert worst > 1e3 * TOL, worst


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_a_crash_mid_run_resumes_bit_identical(framework, setup, tmp_path):
    r = recipe(batch_size=4, grad_accum=2, dropout=True, shuffle=True, group_by_length=True)
    whole = train_with(framework, make_run(setup, r, framework))
    resumed = crashed_then_resumed(setup, r, tmp_path, framework, framework, crash=7, save_every=3)
    assert_bit_identical(resumed, whole)


def test_keras_optimizer_counts_updates_not_micro_batches(setup):
    from bertcnn_tf.train import KerasTrainer

    t = KerasTrainer(make_run(setup, recipe(batch_size=4, grad_accum=3), "keras"))
    final = t.fit()
    assert int(t.optimizer.iterations) == final.state.step == 2 * 3  # 29 rows / 12 per update: 3 per epoch
    assert int(t.optimizer._iterations) == 3 * final.state.step
    with pytest.raises(ValueError, match="accumulate with grad_accum"):
        type(t.optimizer)(gradient_accumulation_steps=2)
