"""Every file of a training state is checked before it is used: a truncated, garbled, reshaped or renamed
file, or a training file changed since the save, is refused with exit 2 and one line naming the file and
what is wrong, and the directory is left untouched. Fuzzed with hypothesis, as test_port_hostile fuzzes
the checkpoint readers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.commands import main
from parity.io.safetensors import write_safetensors
from tests.helpers import files, tree_bytes

RECIPE = ["--epochs", "2", "--batch-size", "4", "--lr", "1e-2", "--max-length", "20", "--save-every", "1"]
STATE_FILES = ["optimizer.safetensors", "trainer_state.json", "recipe.json", "rng.npz", "metrics.jsonl",
               "model.safetensors", "config.json", "tokenizer.json"]  # fmt: skip


class CrashError(Exception):
    pass


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A torch run that crashed after update 3 of 12, saving every update: a save with moments, mid-run."""
    import parity.training.loop as loop

    d = tmp_path_factory.mktemp("state")
    ck, train = files(d)
    out = d / "run"
    real = loop.Run.log_update

    def crash_at_4(self, epoch, batch, step, *rest):
        if step == 3:  # update 4, before its save
            raise CrashError
        real(self, epoch, batch, step, *rest)

    loop.Run.log_update = crash_at_4
    try:
        with pytest.raises(CrashError):
            main(["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(out), "--framework", "torch",
                  *RECIPE])  # fmt: skip
    finally:
        loop.Run.log_update = real
    assert json.loads((out / "trainer_state.json").read_text())["step"] == 3
    return d, out, train


def _resume(run, train, capsys) -> tuple[int, str]:
    rc = main(["train", "--resume", "--train", str(train), "--out", str(run), "--framework", "torch", *RECIPE])
    return rc, capsys.readouterr().err


def _copy(saved, tmp_path):
    _, out, train = saved
    run = tmp_path / "run"
    shutil.copytree(out, run)
    return run, train


def _refused(run, train, name, capsys, *fragments):
    before = tree_bytes(run)
    rc, err = _resume(run, train, capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{run / name}" in lines[0] and "Received:" in lines[0], lines[0]
    for f in fragments:
        assert f in lines[0], lines[0]
    assert tree_bytes(run) == before  # nothing rewritten
    assert sorted(p.name for p in run.parent.iterdir() if p.name.startswith(".")) == []


def test_the_pristine_save_resumes(saved, tmp_path, capsys):
    run, train = _copy(saved, tmp_path)
    rc, _ = _resume(run, train, capsys)
    assert rc == 0 and json.loads((run / "trainer_state.json").read_text())["finished"]


@pytest.mark.parametrize("name", STATE_FILES)
def test_a_truncated_file_is_refused_naming_it(saved, tmp_path, capsys, name):
    run, train = _copy(saved, tmp_path)
    raw = (run / name).read_bytes()
    (run / name).write_bytes(raw[: len(raw) // 2])
    _refused(run, train, name, capsys)


@pytest.mark.parametrize("name", STATE_FILES)
def test_a_missing_file_is_refused_naming_it(saved, tmp_path, capsys, name):
    run, train = _copy(saved, tmp_path)
    (run / name).unlink()
    if name == "trainer_state.json":  # no state at all: nothing to resume
        rc, err = _resume(run, train, capsys)
        assert rc == 2 and "has none" in err and len(err.strip().splitlines()) == 1
        return
    _refused(run, train, name, capsys, "missing")


def _rewrite_safetensors(path, change):
    from parity.io.safetensors import read_safetensors

    tensors = {k: np.array(v) for k, v in read_safetensors(path).tensors.items()}
    write_safetensors(path, list(change(tensors).items()), {"step": "3"})


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: {("exp_avg.nope" if i == 0 else k): v for i, (k, v) in enumerate(t.items())},
         "1 missing, 1 unexpected"),
        (lambda t: {k: (v[..., :1] if i == 0 else v) for i, (k, v) in enumerate(t.items())}, "1 mis-shaped"),
        (lambda t: dict(list(t.items())[1:]), "1 missing"),
        (lambda t: {k: v.astype(np.float64) for k, v in t.items()}, "training dtype float32"),
    ],
    ids=["renamed", "reshaped", "dropped", "dtype"],
)  # fmt: skip
def test_moments_with_wrong_names_shapes_or_dtype_are_refused(saved, tmp_path, capsys, change, says):
    run, train = _copy(saved, tmp_path)
    _rewrite_safetensors(run / "optimizer.safetensors", change)
    _refused(run, train, "optimizer.safetensors", capsys, says)


def test_moments_from_another_step_are_refused(saved, tmp_path, capsys):
    run, train = _copy(saved, tmp_path)
    from parity.io.safetensors import read_safetensors

    t = {k: np.array(v) for k, v in read_safetensors(run / "optimizer.safetensors").tensors.items()}
    write_safetensors(run / "optimizer.safetensors", list(t.items()), {"step": "2"})
    _refused(run, train, "optimizer.safetensors", capsys, "another step")


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


@pytest.mark.parametrize(
    ("name", "edit", "says"),
    [
        ("trainer_state.json", lambda d: {**d, "step": 4}, "digest"),
        ("trainer_state.json", lambda d: _without(d, "digest") | {"step": 4}, "one place in the plan"),
        ("trainer_state.json", lambda d: _without(d, "digest", "batch"), "missing ['batch']"),
        ("trainer_state.json", lambda d: [1, 2], "not a JSON object"),
        ("recipe.json", lambda d: {**d, "lr": "fast"}, "`lr` must be a positive number"),
        ("recipe.json", lambda d: {k: v for k, v in d.items() if k != "seed"}, "missing ['seed']"),
        ("config.json", lambda d: {**d, "num_labels": "three"}, "config.json"),
    ],
    ids=["state-edited", "state-position", "state-key", "state-list", "recipe-type", "recipe-key", "config-type"],
)  # fmt: skip
def test_garbled_json_is_refused_naming_the_file(saved, tmp_path, capsys, name, edit, says):
    run, train = _copy(saved, tmp_path)
    (run / name).write_text(json.dumps(edit(json.loads((run / name).read_text()))))
    _refused(run, train, name, capsys, says)


def test_a_metrics_log_missing_an_update_is_refused(saved, tmp_path, capsys):
    run, train = _copy(saved, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(lines[1:]) + "\n")
    _refused(run, train, "metrics.jsonl", capsys, "one update record for each of the 3 updates")


def test_random_state_with_wrong_names_is_refused(saved, tmp_path, capsys):
    run, train = _copy(saved, tmp_path)
    np.savez(run / "rng.npz", other=np.zeros(3))
    _refused(run, train, "rng.npz", capsys, "carries no random state")


def test_a_training_file_changed_since_the_save_is_refused(saved, tmp_path, capsys):
    run, train = _copy(saved, tmp_path)
    changed = tmp_path / "train.jsonl"
    changed.write_text(train.read_text().replace("neg", "pos", 1))
    before = tree_bytes(run)
    rc, err = _resume(run, changed, capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "must train on the same data" in err and str(changed) in err and "changed since the save" in err
    assert tree_bytes(run) == before


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzzed_state_files_are_refused_cleanly(saved, tmp_path_factory, capsys, data):
    """Truncate a file at any length, flip any byte, or replace a JSON file by any JSON value."""
    run, train = _copy(saved, tmp_path_factory.mktemp("fuzz"))
    name = data.draw(st.sampled_from(STATE_FILES), label="file")
    raw = (run / name).read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip"] + (["json"] if name.endswith(".json") else [])), label="how")
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    elif how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[i + 1 :]
    else:
        value = data.draw(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                                       | st.text(max_size=8),
                                       lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                                           max_size=3),
                                       max_leaves=6), label="json")  # fmt: skip
        raw = json.dumps(value).encode()
    (run / name).write_bytes(raw)
    before = tree_bytes(run)
    rc, err = _resume(run, train, capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert name in lines[0] or (name == "trainer_state.json" and "has none" in lines[0]), lines[0]
    assert tree_bytes(run) == before


# -- rng.npz bombs: an .npy header's shape is checked against the bytes its member holds before any array is made
def _npz(path, members) -> None:
    """An .npz by hand: (name, shape, dtype, data bytes, zip method) per member; the header claims what it is told."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, shape, dtype, data, method in members:
            f = io.BytesIO()
            np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                     "shape": shape})  # fmt: skip
            zf.writestr(f"{name}.npy", f.getvalue() + data, compress_type=method)


def _peak(call):
    import tracemalloc

    tracemalloc.start()
    try:
        call()
    except Exception as e:  # the test asserts what was raised
        return e, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return None, 0


def test_a_random_state_declaring_terabytes_is_refused(saved, tmp_path, capsys):
    """8 TB declared in a file of a few hundred bytes: np.load would allocate it (MemoryError) before reading."""
    import zipfile

    run, train = _copy(saved, tmp_path)
    _npz(run / "rng.npz", [("keras/seed_generator/0", (10**12,), "<i8", bytes(16), zipfile.ZIP_STORED)])
    _refused(run, train, "rng.npz", capsys, "declares 8000000000000 bytes of data", "holds 16")


def test_a_random_state_inflating_to_hundreds_of_megabytes_is_refused(tmp_path):
    """A 300 MB array, deflated into ~300 KB: under the file-size cap, refused by its declared size, never inflated."""
    import zipfile

    from parity.training.statefiles import read_rng

    big = 300 * 1024 * 1024
    path = tmp_path / "rng.npz"
    _npz(path, [("keras/seed_generator/0", (big // 8,), "<i8", bytes(big), zipfile.ZIP_DEFLATED)])
    assert path.stat().st_size < 1024 * 1024
    raised, peak = _peak(lambda: read_rng(path, "keras"))
    assert isinstance(raised, ValueError) and str(raised).startswith(f"{path}: "), raised
    assert peak < 8 * 1024 * 1024, peak


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 2**40), max_size=3).map(tuple),
    dtype=st.sampled_from(["<i8", "<i4", "<u8", "<f8", "|u1"]),
    held=st.integers(0, 64),
    method=st.sampled_from(["stored", "deflated"]),
)
def test_any_declared_random_state_shape_is_bounded(tmp_path_factory, shape, dtype, held, method):
    """Whatever an .npy header declares: read only when it is exactly the bytes held (and then a seed state)."""
    import zipfile

    from parity.training.statefiles import read_rng

    path = tmp_path_factory.mktemp("rng") / "rng.npz"
    zmethod = zipfile.ZIP_STORED if method == "stored" else zipfile.ZIP_DEFLATED
    _npz(path, [("keras/seed_generator/0", shape, dtype, bytes(held), zmethod)])
    raised, peak = _peak(lambda: read_rng(path, "keras"))
    exact = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize == held
    seed_state = exact and shape == (2,) and np.dtype(dtype).kind in "iu"
    assert (raised is None) == seed_state, raised
    assert raised is None or (isinstance(raised, ValueError) and str(raised).startswith(f"{path}: ")), raised
    assert peak < 4 * 1024 * 1024, peak
