"""The marker records what bertcnn wrote; only listed, unchanged files are ever deleted, everything else is kept."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.io.owned import MARKER, discard, foreign, read_marker, write_marker


def _ours(folder, files=("config.json", "model.safetensors", "sub/variables.index"), kind="export"):
    folder.mkdir()
    for i, name in enumerate(files):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(bytes([i]) * (i + 3))
    return write_marker(folder, kind)


def test_the_marker_lists_every_file_with_its_size_and_sha256(tmp_path):
    listing = _ours(tmp_path / "x")
    assert listing.kind == "export" and sorted(listing.files) == ["config.json", "model.safetensors",
                                                                  "sub/variables.index"]  # fmt: skip
    assert read_marker(tmp_path / "x") == listing
    assert foreign(tmp_path / "x") == []


def test_an_edited_file_an_added_file_a_link_and_a_stray_folder_are_foreign(tmp_path):
    d = tmp_path / "x"
    _ours(d)
    (d / "config.json").write_bytes(b"\1\1\1")  # same size, other content: the sha256 tells
    (d / "NOTES.txt").write_text("mine")
    (d / "sub" / "extra.txt").write_text("mine too")
    (d / "empty").mkdir()
    os.symlink(d / "model.safetensors", d / "link")
    assert foreign(d) == ["NOTES.txt", "config.json", "empty", "link", "sub/extra.txt"]


def test_without_a_marker_nothing_is_ours_whatever_the_names(tmp_path):
    d = tmp_path / "hf-checkpoint-500"
    d.mkdir()
    for name in ("trainer_state.json", "config.json", "model.safetensors", "optimizer.pt"):
        (d / name).write_text("{}")
    assert read_marker(d) is None and foreign(d) == sorted(p.name for p in d.iterdir())
    assert discard(d) == sorted(p.name for p in d.iterdir())  # nothing deleted
    assert len(list(d.iterdir())) == 4


@pytest.mark.parametrize(
    "doc",
    [
        {"written_by": "bertcnn", "kind": "export", "files": {"../outside.txt": {"size": 1, "sha256": "x"}}},
        {"written_by": "bertcnn", "kind": "export", "files": {"/etc/passwd": {"size": 1, "sha256": "x"}}},
        {"written_by": "bertcnn", "kind": "export", "files": {"a/../../b": {"size": 1, "sha256": "x"}}},
        {"written_by": "bertcnn", "kind": "export", "files": ["config.json"]},
        {"written_by": "someone", "kind": "export", "files": {}},
        {"written_by": "bertcnn", "kind": "rootkit", "files": {}},
        [1, 2],
    ],
)
def test_a_hostile_or_foreign_marker_is_no_marker(tmp_path, doc):
    """A marker naming paths outside its folder must never make bertcnn delete there."""
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    d = tmp_path / "x"
    d.mkdir()
    (d / MARKER).write_text(json.dumps(doc))
    assert read_marker(d) is None
    discard(d)
    assert outside.read_text() == "x"


def test_discard_deletes_ours_and_moves_the_rest_into_the_new_folder(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _ours(old)
    new.mkdir()
    (new / "sub").mkdir()
    (old / "NOTES.txt").write_text("mine")
    (old / "sub" / "extra.txt").write_text("mine too")
    (old / "logs").mkdir()
    (old / "logs" / "a.log").write_text("log")
    assert discard(old, rescue_to=new) == []
    assert not old.exists()
    assert (new / "NOTES.txt").read_text() == "mine" and (new / "sub" / "extra.txt").read_text() == "mine too"
    assert (new / "logs" / "a.log").read_text() == "log"


def test_discard_keeps_what_it_cannot_move(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _ours(old)
    new.mkdir()
    (old / "NOTES.txt").write_text("mine")
    (new / "NOTES.txt").write_text("taken")
    assert discard(old, rescue_to=new) == ["NOTES.txt"]
    assert (old / "NOTES.txt").read_text() == "mine" and sorted(p.name for p in old.iterdir()) == ["NOTES.txt"]


def test_a_staging_marker_means_everything_inside_is_ours(tmp_path):
    d = tmp_path / ".x.staging"
    d.mkdir()
    write_marker(d, "checkpoint", complete=False)
    (d / "model.safetensors").write_bytes(b"half")
    assert not read_marker(d).complete
    assert discard(d) == [] and not d.exists()


names = st.lists(st.text("abcxyz.", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")),
                 min_size=1, max_size=6, unique=True)  # fmt: skip


@given(ours=names, theirs=names)
def test_fuzz_discard_never_loses_a_file_that_is_not_listed(tmp_path_factory, ours, theirs):
    root = tmp_path_factory.mktemp("fuzz")
    old, new = root / "old", root / "new"
    old.mkdir()
    new.mkdir()
    for n in ours:
        (old / n).write_text("ours:" + n)
    write_marker(old, "checkpoint")
    edited = [n for n in theirs if n in ours]
    for n in theirs:
        (old / n).write_text("theirs:" + n)  # a new file, or one of ours edited
    left = discard(old, rescue_to=new)
    assert left == []
    for n in theirs:
        assert (new / n).read_text() == "theirs:" + n
    for n in set(ours) - set(theirs):
        assert not (new / n).exists()
    assert not old.exists()
    assert set(edited) <= set(theirs)
