"""Issue 30's problems through the two real trainers: class weights, multi-label, long documents as windows.

float64, dropout off, the tiny setup's 29 rows in updates of 4 (each epoch ends with a 1-row
update), warmup, decay and clipping. For each problem: torch and Keras land on the same weights
and AdamW moments (<= 1e-10), gradient accumulation trains as the whole batch, a crashed run
resumes bit-identical; the first update's logged loss is the definition of
`parity.training.objective` (torch's own `CrossEntropyLoss(weight=)` / `BCEWithLogitsLoss(pos_weight=)`).
The pitfalls put back fail: Keras' class_weight reduction (divide by the batch size), softmax
for a multi-label model, a micro-batch weighed by its row count when the rows weigh differently.
"""

from __future__ import annotations

import numpy as np
import pytest

from bertcnn_torch.train import TorchTrainer
from bertcnn_torch.train import train as torch_train
from parity.tolerance import tolerance_for
from parity.training.objective import objective
from parity.training.parity import flat
from tests.helpers import TASKS, make_run, max_diff, recipe, task_setup, train_with
from tests.training.test_state import assert_bit_identical, crashed_then_resumed

TOL = tolerance_for("float64", "cpu", "train").atol


@pytest.fixture(scope="module")
def setups():
    return {kind: task_setup(kind, seed=2) for kind in TASKS}


def _recipe(kind, weights, **changes):
    return recipe(class_weights=weights, **changes)


@pytest.fixture(scope="module")
def torch_runs(setups):
    return {kind: torch_train(make_run(setup, _recipe(kind, w))) for kind, (setup, w) in setups.items()}


def _losses(snap) -> list[float]:
    return [m["loss"] for m in snap.metrics if "loss" in m]


@pytest.mark.parametrize("kind", TASKS)
def test_keras_fit_lands_on_the_torch_weights_and_moments(kind, setups, torch_runs):
    from bertcnn_tf.train import train as keras_train

    setup, weights = setups[kind]
    ref = torch_runs[kind]
    got = keras_train(make_run(setup, _recipe(kind, weights), "keras"))
    worst, name = max_diff(flat(ref), flat(got))
    assert worst <= TOL, (kind, worst, name)
    np.testing.assert_allclose(_losses(got), _losses(ref), rtol=0, atol=TOL)
    clipped = [m["clipped"] for m in ref.metrics if "loss" in m]
    assert any(clipped) and not all(clipped)  # the recipe clips some updates, not all
    assert np.abs(ref.tensors["fc.weight"] - setup[1]["fc.weight"]).max() > 1e-2  # training moved the head


@pytest.mark.parametrize("kind", TASKS)
def test_the_first_logged_loss_is_the_objective_on_the_start_weights(kind, setups, torch_runs):
    """Update 1's loss is computed on the start weights: torch's own weighted mean / BCE, as defined once."""
    setup, weights = setups[kind]
    config = setup[0]
    run = make_run(setup, _recipe(kind, weights))
    inputs, labels = run.batch(0, 0)
    trainer = TorchTrainer(run)
    logits = trainer.predict(inputs)
    want = objective(logits, labels, multi_label=config.multi_label, class_weights=weights)
    assert abs(_losses(torch_runs[kind])[0] - want) <= 1e-13
    # Not vacuous: the weights change the loss (the plain mean is another number).
    plain = objective(logits, labels, multi_label=config.multi_label)
    assert abs(plain - want) > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("kind", TASKS)
def test_other_keras_backends_match_in_float64(kind, backend, setups, torch_runs):
    from parity.commands.keras_child import keras_side
    from parity.tokenize import pad_rows

    (config, tensors, encoded, labels), weights = setups[kind]
    task = {"task": "train", "dtype": "float64", "recipe": _recipe(kind, weights).to_dict()}
    ((cand, meta),) = keras_side(backend, [task], config, tensors, pad_rows(encoded, config.pad_token_id), labels)
    assert meta["backend"] == backend and meta["computed_dtypes"] == ["float64"]
    worst, name = max_diff(flat(torch_runs[kind]), cand)
    assert worst <= TOL, (kind, backend, worst, name)


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", TASKS)
def test_gradient_accumulation_trains_as_the_whole_batch(kind, framework, setups):
    """Updates of 9 rows as 3 micro-batches of 3: each micro-batch weighs its share of the update's row weights."""
    setup, weights = setups[kind]
    whole = torch_train(make_run(setup, _recipe(kind, weights, batch_size=9)))
    got = train_with(framework, make_run(setup, _recipe(kind, weights, batch_size=3, grad_accum=3), framework))
    worst, name = max_diff(flat(whole), flat(got))
    assert worst <= TOL, (kind, framework, worst, name)
    np.testing.assert_allclose(_losses(got), _losses(whole), rtol=0, atol=TOL)


def test_a_micro_batch_weighed_by_its_row_count_is_another_training(setups, monkeypatch):
    """With class weights a micro-batch's share is its sum of row weights, not n_k / U: put n_k / U back."""
    from parity.training import loop

    setup, weights = setups["weighted"]
    whole = torch_train(make_run(setup, _recipe("weighted", weights, batch_size=9)))
    monkeypatch.setattr(loop, "row_weights", lambda *a: None)  # micro-batches weighed by row counts
    run = make_run(setup, _recipe("weighted", weights, batch_size=3, grad_accum=3))
    worst, _ = max_diff(flat(whole), flat(torch_train(run)))
    assert worst > 1e3 * TOL, worst


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", TASKS)
def test_a_crash_mid_run_resumes_bit_identical(kind, framework, setups, tmp_path):
    setup, weights = setups[kind]
    r = _recipe(kind, weights, dropout=True, shuffle=True, seed=3)
    whole = train_with(framework, make_run(setup, r, framework))
    resumed = crashed_then_resumed(setup, r, tmp_path, framework, framework, crash=7, save_every=3)
    assert_bit_identical(resumed, whole)
    assert resumed.recipe.class_weights == weights and resumed.config.problem_type == setup[0].problem_type


def test_keras_class_weight_reduction_is_another_loss(setups, monkeypatch):
    """Keras' `fit(class_weight=)`: sample weights w[y], the sum divided by the batch size. Put it back in the
    Keras trainer (no B / sum w factor) and it no longer trains as torch's CrossEntropyLoss(weight=)."""
    from bertcnn_tf import train as keras_module

    setup, weights = setups["weighted"]
    real = keras_module.PlanDataset.__getitem__

    def keras_reduction(self, i):
        inputs, labels, w = real(self, i)
        w_y = np.asarray(weights)[labels]
        return inputs, labels, (w_y * (w / (w_y * len(labels) / w_y.sum()))).astype(w.dtype)  # w[y] alone

    monkeypatch.setattr(keras_module.PlanDataset, "__getitem__", keras_reduction)
    got = keras_module.train(make_run(setup, _recipe("weighted", weights), "keras"))
    ref = torch_train(make_run(setup, _recipe("weighted", weights)))
    worst, _ = max_diff(flat(ref), flat(got))
    assert worst > 1e3 * TOL, worst


def test_softmax_for_a_multi_label_model_is_another_training(setups, torch_runs, monkeypatch):
    """A multi-label model trains sigmoid BCE per label; softmax cross-entropy over the label set is not it."""
    import torch.nn.functional as F

    setup, weights = setups["multi"]

    def softmax_loss(self, z, y):  # the label set as a target distribution over one softmax
        return F.cross_entropy(z, y.to(z.dtype) / y.sum(1, keepdim=True).clamp(min=1))

    monkeypatch.setattr(TorchTrainer, "loss", softmax_loss)
    wrong = torch_train(make_run(setup, _recipe("multi", weights)))
    worst, _ = max_diff(flat(torch_runs["multi"]), flat(wrong))
    assert worst > 1e3 * TOL, worst
