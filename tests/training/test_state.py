"""A crashed run, resumed from its last save, ends bit-identical to an uninterrupted run;
a save resumes in the other framework; saves are whole even when a swap is cut short."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from bertcnn_torch.train import train as torch_train
from parity.io.owned import write_marker
from parity.training.loop import Run
from parity.training.parity import flat
from parity.training.state import STATE_NAME, load_snapshot, recover
from tests.helpers import make_run, max_diff, recipe, tiny_setup


class CrashError(Exception):
    pass


def crash_at(step: int):
    def progress(record):
        if "loss" in record and record["step"] == step:
            raise CrashError

    return progress


def crashed_then_resumed(setup, r, tmp_path, first: str, second: str, crash: int = 7, save_every: int = 3):
    """Train with `first` until it crashes after update `crash`; resume DIR's last save with `second`."""
    trainers = {"torch": torch_train}
    if "keras" in (first, second):
        from bertcnn_tf.train import train as keras_train

        trainers["keras"] = keras_train
    out = tmp_path / "run"
    with pytest.raises(CrashError):
        trainers[first](make_run(setup, r, first, out=out, save_every=save_every, progress=crash_at(crash)))
    saved = load_snapshot(out)
    assert saved.state.step == crash // save_every * save_every and saved.state.framework == first
    _, _, encoded, labels = setup
    return trainers[second](Run(saved, encoded, labels, out=out, save_every=save_every))


def assert_bit_identical(a, b):
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k].dtype == fb[k].dtype and fa[k].tobytes() == fb[k].tobytes(), k
    assert a.metrics == b.metrics and a.state == b.state


def assert_the_seed_draws_dropout_and_batches(train, setup, r, whole, framework):
    """Not vacuous: another seed gives other dropout masks and other batches, so other weights.

    The batches alone would make that so (the seed shuffles too), so also in file order, where the
    seed draws nothing but the dropout masks: another seed must still end on other weights, or the
    trainer ran with dropout off (and a bit-identical resume would prove nothing about its masks).
    """
    other = train(make_run(setup, r.replace(seed=r.seed + 1), framework))
    assert other.tensors["fc.weight"].tobytes() != whole.tensors["fc.weight"].tobytes()
    a, b = (train(make_run(setup, r.replace(shuffle=False, seed=s), framework)) for s in (r.seed, r.seed + 1))
    assert a.tensors["fc.weight"].tobytes() != b.tensors["fc.weight"].tobytes(), "in file order, seeds end alike"


@pytest.fixture(scope="module")
def setup():
    return tiny_setup(seed=3)


def test_torch_resume_is_bit_identical_with_dropout_and_shuffling(setup, tmp_path):
    r = recipe("float32", dropout=True, shuffle=True, seed=5)
    whole = torch_train(make_run(setup, r))
    assert_bit_identical(crashed_then_resumed(setup, r, tmp_path, "torch", "torch"), whole)
    assert_the_seed_draws_dropout_and_batches(torch_train, setup, r, whole, "torch")
    # What is on disk is the final state, a canonical checkpoint in the training dtype.
    disk = load_snapshot(tmp_path / "run")
    assert disk.state.finished and disk.tensors["fc.weight"].dtype == np.float32
    assert disk.tensors["fc.weight"].tobytes() == whole.tensors["fc.weight"].tobytes()


@pytest.mark.slow  # 32 s; its torch twin stays in the default suite
def test_keras_resume_is_bit_identical_with_dropout_and_shuffling(setup, tmp_path):
    from bertcnn_tf.train import train as keras_train

    r = recipe("float32", dropout=True, shuffle=True, seed=5)
    whole = keras_train(make_run(setup, r, "keras"))
    assert_bit_identical(crashed_then_resumed(setup, r, tmp_path, "keras", "keras"), whole)
    assert_the_seed_draws_dropout_and_batches(keras_train, setup, r, whole, "keras")


def test_torch_save_resumes_in_keras_within_float64_tolerance(setup, tmp_path):
    r = recipe("float64")
    whole = torch_train(make_run(setup, r))
    resumed = crashed_then_resumed(setup, r, tmp_path, "torch", "keras")
    worst, name = max_diff(flat(whole), flat(resumed))
    assert worst <= 1e-10, (worst, name)
    assert resumed.state.framework == "keras" and resumed.state.step == 16


@pytest.mark.slow
def test_keras_save_resumes_in_torch_within_float64_tolerance(setup, tmp_path):
    r = recipe("float64")
    whole = torch_train(make_run(setup, r))
    resumed = crashed_then_resumed(setup, r, tmp_path, "keras", "torch", crash=11, save_every=5)
    worst, name = max_diff(flat(whole), flat(resumed))
    assert worst <= 1e-10, (worst, name)


def _saved(setup, r, tmp_path, crash):
    out = tmp_path / "run"
    with pytest.raises(CrashError):
        torch_train(make_run(setup, r, out=out, save_every=1, progress=crash_at(crash)))
    return out


def test_a_swap_killed_between_its_renames_recovers_the_new_save(setup, tmp_path):
    """The fallback swap (no RENAME_EXCHANGE) killed between its renames: DIR moved aside, the staged save whole."""
    r = recipe("float64", epochs=1)
    older = _saved(setup, r, tmp_path / "a", crash=3)  # saves after updates 1 and 2
    newer = _saved(setup, r, tmp_path / "b", crash=4)  # ... and 3
    os.replace(older, tmp_path / ".run.previous")
    os.replace(newer, tmp_path / ".run.staging")
    out = tmp_path / "run"
    assert not out.exists()  # what a kill between the renames leaves: only the two hidden folders
    assert load_snapshot(out).state.step == 3  # the staged save was whole: it wins
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "run"]


def test_a_save_killed_while_staging_leaves_the_previous_save(setup, tmp_path):
    r = recipe("float64", epochs=1)
    out = _saved(setup, r, tmp_path, crash=3)
    staging = tmp_path / ".run.staging"
    staging.mkdir()
    write_marker(staging, "training directory", complete=False)  # what a save writes first
    (staging / "model.safetensors").write_bytes(b"half")
    recover(out)
    assert not staging.exists() and load_snapshot(out).state.step == 2


def test_saves_honour_the_umask(setup, tmp_path):
    old = os.umask(0o027)
    try:
        out = _saved(setup, recipe("float64", epochs=1), tmp_path, crash=2)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f.name
    assert (out / STATE_NAME).is_file()
