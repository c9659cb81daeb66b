"""Output paths are checked before any work: never an input, never the current folder, --force only for ours."""

from __future__ import annotations

import os

import pytest

from parity.io.lock import lock_path, writer_lock
from parity.io.outputs import DIR, FILE, OutputError, check_output, ours
from parity.io.owned import write_marker


def test_a_new_path_in_a_writable_folder_is_fine(tmp_path):
    assert check_output(tmp_path / "new", flag="--out", kind=DIR) == tmp_path / "new"
    assert check_output(tmp_path / "taps.npz", flag="--taps") == tmp_path / "taps.npz"


def test_missing_or_unwritable_parent_is_refused_before_work(tmp_path):
    with pytest.raises(OutputError, match="does not exist; create it first"):
        check_output(tmp_path / "nope" / "x.json", flag="--json-out")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits
            pytest.skip("running as a user who can write anywhere (root): permission bits are not enforced")
        with pytest.raises(OutputError, match="is not writable"):
            check_output(locked / "x.json", flag="--json-out")
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("force", [False, True])
def test_the_current_folder_and_its_ancestors_are_never_outputs(tmp_path, monkeypatch, force):
    here = tmp_path / "here"
    here.mkdir()
    (here / "train.jsonl").write_text("{}\n")
    monkeypatch.chdir(here)
    for path in (".", "../here", str(tmp_path)):
        with pytest.raises(OutputError, match="must not be the current folder or one that contains it"):
            check_output(path, flag="--out", kind=DIR, force=force)
    assert (here / "train.jsonl").is_file()


@pytest.mark.parametrize("force", [False, True])
def test_an_input_is_never_an_output_nor_inside_one_nor_containing_one(tmp_path, force):
    data = tmp_path / "t2.jsonl"
    data.write_text("{}\n")
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text('{"kernel_sizes": [3]}')
    (ck / "model.safetensors").write_bytes(b"x")
    for out in (data, ck, ck / "sub", tmp_path / "ck" / ".." / "ck"):
        with pytest.raises(OutputError, match="must not be, contain or lie inside an input"):
            check_output(out, flag="--out", kind=DIR, inputs=[ck, data], force=force)
    with pytest.raises(OutputError, match="must not be, contain or lie inside an input"):
        check_output(tmp_path, flag="--out", kind=DIR, inputs=[data], force=force)  # contains an input
    assert data.read_text() == "{}\n" and (ck / "model.safetensors").read_bytes() == b"x"


def test_an_existing_file_needs_force_and_a_folder_must_be_ours(tmp_path):
    f = tmp_path / "report.json"
    f.write_text("keep")
    with pytest.raises(OutputError, match="already exists; pass --force"):
        check_output(f, flag="--json-out")
    assert check_output(f, flag="--json-out", force=True) == f
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match=r"is a folder bertcnn did not write .* not even with --force"):
        check_output(mine, flag="--out", kind=DIR, force=True)
    with pytest.raises(OutputError, match="must be a file"):
        check_output(mine, flag="--taps", kind=FILE, force=True)
    with pytest.raises(OutputError, match="must be a folder"):
        check_output(f, flag="--out", kind=DIR, force=True)


def test_what_counts_as_ours_is_the_marker_never_the_file_names(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    lookalikes = {  # what the names of our files would have suggested: a training run, an export, a checkpoint
        "run": ("trainer_state.json", "config.json", "model.safetensors"),
        "export": ("manifest.json", "config.json"),
        "ck": ("config.json", "model.safetensors"),
    }
    for name, files in lookalikes.items():
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_text('{"kernel_sizes": [3]}')
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / "config.json").write_text("{}")
    write_marker(marked, "export")
    assert [ours(tmp_path / d) for d in ("empty", "run", "export", "ck", "marked", "missing")] == [
        "an empty folder",
        None,
        None,
        None,
        "an export",
        None,
    ]
    (marked / "notes.txt").write_text("mine")
    assert ours(marked) == "an export"  # still ours, but --force refuses it while the notes are inside:
    with pytest.raises(OutputError, match=r"also holds files bertcnn did not write .*\['notes.txt'\]"):
        check_output(marked, flag="DIR", kind=DIR, force=True)


def test_one_writer_per_directory_and_the_lock_file_goes_with_the_writer(tmp_path):
    out = tmp_path / "run"
    second = pytest.raises(OutputError, match=r"is being written by another run \(pid \d+ on ")
    with writer_lock(out), second, writer_lock(out):
        pass
    assert not lock_path(out).exists()
    with writer_lock(out):  # free again
        pass
