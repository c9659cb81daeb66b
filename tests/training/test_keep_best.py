"""`keep_best` and `early_stopping`: which epoch DIR keeps, when a run stops, and that resume is untouched.

The evaluator here is scripted (it still runs the model on held-out rows, then reports the
next of a fixed list of scores), so which epoch is best is known in advance; the weights
DIR keeps are compared with the weights an independent run without `keep_best` saved at
the end of that epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

from bertcnn_torch.train import train as torch_train
from parity.io.checkpoint import load_checkpoint
from parity.training.loop import Run
from parity.training.state import LAST_NAME, load_snapshot
from tests.helpers import make_run, recipe, tiny_setup, train_with
from tests.training.test_state import CrashError, crash_at

PER_EPOCH = 8  # 29 rows in batches of 4


@pytest.fixture(scope="module")
def setup():
    return tiny_setup(seed=6)


def scripted(setup, scores: list[float], metric: str = "accuracy"):
    """An evaluator that runs the model on 5 rows, then reports scores[epoch] as `metric`."""
    from parity.training.state import pad_batch

    _, _, encoded, _ = setup
    pending = iter(scores)

    def evaluate(predict):
        logits = predict(pad_batch(encoded, np.arange(5), 0))
        assert np.isfinite(logits).all()
        value = next(pending)
        out = {"loss": 1.0, "accuracy": 0.5, "macro_f1": 0.5}
        out[metric] = value
        return out

    return evaluate


def _weights_after_epoch(setup, r, epoch: int, tmp_path, framework="torch") -> dict[str, np.ndarray]:
    """An independent run without keep_best, crashed right after `epoch`'s end save: that save's weights."""
    out = tmp_path / f"plain-{epoch}"
    plain = r.replace(keep_best=None, early_stopping=None)
    with pytest.raises(CrashError):
        train_with(
            framework, make_run(setup, plain, framework, out=out, progress=crash_at((epoch + 1) * PER_EPOCH + 1))
        )
    return load_snapshot(out).tensors


def test_dir_keeps_the_best_epoch_and_resume_continues_the_last(setup, tmp_path):
    r = recipe(epochs=4, dropout=True, keep_best="accuracy")
    out = tmp_path / "run"
    final = torch_train(make_run(setup, r, out=out, evaluate=scripted(setup, [0.5, 0.7, 0.6, 0.65])))
    assert final.state.best == {"epoch": 1, "step": 2 * PER_EPOCH, "value": 0.7} and not final.state.early_stopped
    _, kept = load_checkpoint(out)  # what predict / evaluate / port read
    best = _weights_after_epoch(setup, r, 1, tmp_path)
    assert all(kept[k].tobytes() == best[k].tobytes() for k in best)
    # The training weights (last.safetensors) are those of a run without keep_best: it changes no update.
    plain = torch_train(make_run(setup, r.replace(keep_best=None)))
    saved = load_snapshot(out)
    assert all(saved.tensors[k].tobytes() == plain.tensors[k].tobytes() for k in plain.tensors)
    assert (out / LAST_NAME).is_file() and saved.best_tensors is not None
    assert [m["best_epoch"] for m in final.metrics if "eval_accuracy" in m] == [0, 1, 1, 1]


def test_a_crashed_keep_best_run_resumes_bit_identical(setup, tmp_path):
    r = recipe(epochs=4, dropout=True, keep_best="loss")
    losses = [0.9, 0.8, 0.85, 0.8]  # a tie is no improvement: epoch 1 stays
    whole = torch_train(make_run(setup, r, out=tmp_path / "whole", evaluate=scripted(setup, losses, "loss")))
    out = tmp_path / "run"
    with pytest.raises(CrashError):
        torch_train(make_run(setup, r, out=out, progress=crash_at(2 * PER_EPOCH + 3),
                             evaluate=scripted(setup, losses, "loss")))  # fmt: skip
    saved = load_snapshot(out)
    assert saved.state.step == 2 * PER_EPOCH and saved.state.best["epoch"] == 1
    _, _, encoded, labels = setup
    resumed = torch_train(Run(saved, encoded, labels, out=out, evaluate=scripted(setup, losses[2:], "loss")))
    assert resumed.state == whole.state and resumed.metrics == whole.metrics
    for a, b in ((resumed.tensors, whole.tensors), (resumed.best_tensors, whole.best_tensors)):
        assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert whole.state.best["epoch"] == 1


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_early_stopping_after_patience_epochs_without_improvement(framework, setup, tmp_path):
    r = recipe(epochs=6, keep_best="macro_f1", early_stopping=2)
    out = tmp_path / "run"
    final = train_with(framework, make_run(setup, r, framework, out=out,
                                         evaluate=scripted(setup, [0.5, 0.7, 0.6, 0.65, 0.9], "macro_f1")))  # fmt: skip
    # Epoch 1 is best; epochs 2 and 3 bring nothing: the run ends after epoch 3, finished, 2 epochs early.
    assert final.state.step == 4 * PER_EPOCH and final.state.finished and final.state.early_stopped
    evals = [m for m in final.metrics if "eval_macro_f1" in m]
    assert [m["epoch"] for m in evals] == [0, 1, 2, 3] and evals[-1]["early_stopped"] is True
    assert load_snapshot(out).state == final.state
    _, kept = load_checkpoint(out)
    best = _weights_after_epoch(setup, r, 1, tmp_path, framework)
    assert all(kept[k].tobytes() == best[k].tobytes() for k in best)
    # A finished run has nothing left: resuming it trains nothing.
    _, _, encoded, labels = setup
    assert Run(load_snapshot(out), encoded, labels).remaining() == []


def test_keep_best_needs_an_evaluator_and_early_stopping_needs_keep_best(setup):
    with pytest.raises(ValueError, match="give the run an evaluator"):
        make_run(setup, recipe(keep_best="loss"))
    with pytest.raises(ValueError, match="set `keep_best` too"):
        recipe(early_stopping=2)
    with pytest.raises(ValueError, match="keep_best"):
        recipe(keep_best="f1")
