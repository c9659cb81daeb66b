"""An output is claimed, staged and published with its destination re-checked at the swap: nothing that appears
during the work is lost, a kill at any moment leaves the old or the new, and the lock never follows a link."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

import parity.io.swap as swap
from parity.io.destination import DIR, FILE, claim, write_file
from parity.io.lock import lock_path, writer_lock
from parity.io.outputs import OutputError
from parity.io.owned import MARKER, read_marker, write_marker
from tests.helpers import tree_bytes

NEW = {"config.json": b"{}", "model.safetensors": b"weights"}


def _write_new(folder) -> None:
    for name, data in NEW.items():
        (folder / name).write_bytes(data)


def _make_ours(dest) -> None:
    with claim(dest, flag="DIR", kind=DIR) as out, out.staged("checkpoint") as tmp:
        (tmp / "config.json").write_bytes(b"old")
        (tmp / "old.bin").write_bytes(b"old weights")


def _snapshot(p):
    """What is at `p`, to show it was left exactly as it was."""
    if p.is_symlink():
        return ("link", os.readlink(p))
    if p.is_dir():
        return ("dir", tree_bytes(p), sorted(str(q.relative_to(p)) for q in p.rglob("*")))
    if p.exists() and not p.is_file():
        return ("special", stat.S_IFMT(os.lstat(p).st_mode))
    return ("file", p.read_bytes()) if p.exists() else None


def _appear(dest, what, elsewhere) -> None:
    """Make `what` appear at (or inside) `dest` while the command works."""
    if what == "file_inside":
        (dest / "NOTES.txt").write_text("notes of mine")
        return
    if dest.is_dir() and not dest.is_symlink():
        os.rename(dest, elsewhere)  # the folder the command started with is moved away by the user
    if what == "file":
        dest.write_text("a file of mine")
    elif what == "empty_dir":
        dest.mkdir()
    elif what == "dir_with_files":
        (dest / "src").mkdir(parents=True)
        (dest / "src" / "main.py").write_text("print('mine')")
        (dest / "manifest.json").write_text("{}")
    elif what == "link_to_dir":
        os.symlink(elsewhere.parent, dest)
    elif what == "fifo":
        os.mkfifo(dest)


STARTS = ("absent", "empty", "ours")
APPEARS = ("nothing", "file", "empty_dir", "dir_with_files", "link_to_dir", "fifo", "file_inside")
CASES = [(s, a) for s in STARTS for a in APPEARS if not (s == "absent" and a == "file_inside")]


@pytest.mark.parametrize("fallback", [False, True], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize(("start", "appear"), CASES)
def test_a_destination_that_changes_during_the_work_is_never_lost(tmp_path, monkeypatch, start, appear, fallback):
    if fallback:
        monkeypatch.setattr(swap, "_renameat2", lambda: None)  # a system without renameat2
    dest, aside = tmp_path / "out", tmp_path / "moved-away"
    if start == "empty":
        dest.mkdir()
    elif start == "ours":
        _make_ours(dest)
    before_aside = None
    try:
        with claim(dest, flag="DIR", kind=DIR, force=start == "ours") as out, out.staged("checkpoint") as tmp:
            _write_new(tmp)
            if appear != "nothing":
                _appear(dest, appear, aside)
            before = _snapshot(dest)
            before_aside = _snapshot(aside)
    except OutputError as e:
        assert "while this command ran" in str(e) and "Received:" in str(e) and "\n" not in str(e)
        assert _snapshot(dest) == before and _snapshot(aside) == before_aside  # exactly as the user left them
        refused = True
    else:
        refused = False
        assert tree_bytes(dest) == {**NEW, MARKER: (dest / MARKER).read_bytes()}
        assert _snapshot(aside) == before_aside
    harmless = appear == "nothing" or (appear == "empty_dir" and (start != "absent" or fallback))
    assert refused != harmless, (start, appear)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging, lock left


@pytest.mark.parametrize("fallback", [False, True], ids=["renameat2", "two-renames"])
def test_a_save_keeps_a_file_of_the_users_that_appeared_inside(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(swap, "_renameat2", lambda: None)
    dest = tmp_path / "run"
    _make_ours(dest)
    (dest / "kept-from-the-start.txt").write_text("a")
    with claim(dest, flag="--out", kind=DIR, check=lambda p: None) as out:
        with out.staged("training directory", keep_foreign=True) as tmp:
            _write_new(tmp)
            (dest / "NOTES.txt").write_text("b")
        with out.staged("training directory", keep_foreign=True) as tmp:  # the next save keeps them too
            _write_new(tmp)
            (tmp / "step2.bin").write_bytes(b"2")
    assert (dest / "NOTES.txt").read_text() == "b" and (dest / "kept-from-the-start.txt").read_text() == "a"
    assert not (dest / "old.bin").exists() and (dest / "step2.bin").read_bytes() == b"2"
    assert sorted(read_marker(dest).files) == ["config.json", "model.safetensors", "step2.bin"]


@given(names=st.lists(st.sampled_from(["config.json", "model.safetensors", "a.txt", "b", "c.md"]), unique=True))
def test_fuzz_a_users_file_named_like_a_new_one_stops_the_save_and_loses_nothing(tmp_path_factory, names):
    dest = tmp_path_factory.mktemp("fuzz") / "run"
    _make_ours(dest)
    for n in names:
        (dest / n).write_text("mine:" + n)  # an edit of ours or a new file
    before = tree_bytes(dest)
    clash = {"config.json", "model.safetensors"} & set(names)
    try:
        with (
            claim(dest, flag="--out", kind=DIR, check=lambda p: None) as out,
            out.staged("training directory", keep_foreign=True) as tmp,
        ):
            _write_new(tmp)
    except OutputError as e:
        assert clash and "have the names of its new files" in str(e)
        assert tree_bytes(dest) == before
    else:
        assert not clash
        assert all((dest / n).read_text() == "mine:" + n for n in names)


@pytest.mark.parametrize("start", ["absent", "file"])
def test_a_file_output_is_replaced_only_when_it_was_there_and_is_still_a_file(tmp_path, start):
    dest = tmp_path / "report.json"
    if start == "file":
        dest.write_text("old")
    write_file(dest, lambda tmp: tmp.write_text("new"), flag="--json-out", force=True)
    assert dest.read_text() == "new"
    with pytest.raises(OutputError, match="already exists; pass --force"):
        write_file(dest, lambda tmp: tmp.write_text("newer"), flag="--json-out", force=False)

    def becomes_a_folder(tmp):
        tmp.write_text("newest")
        dest.unlink()
        dest.mkdir()
        (dest / "x").write_text("mine")

    with pytest.raises(OutputError, match="changed while this command ran: it is now a folder"):
        write_file(dest, becomes_a_folder, flag="--json-out", force=True)
    assert (dest / "x").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_file_that_appears_is_not_replaced_without_force(tmp_path):
    dest = tmp_path / "taps.npz"

    def appears(tmp):
        tmp.write_bytes(b"ours")
        dest.write_bytes(b"theirs")

    with pytest.raises(OutputError, match="appeared while this command ran"):
        write_file(dest, appears, flag="--taps", force=False)
    assert dest.read_bytes() == b"theirs"


@pytest.mark.parametrize("special", ["fifo", "chardev"])
def test_force_never_replaces_a_pipe_or_a_device(tmp_path, special):
    if special == "fifo":
        dest = tmp_path / "pipe"
        os.mkfifo(dest)
    else:
        dest = tmp_path / "null"
        try:
            os.mknod(dest, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
    for kind in (FILE, DIR):
        with pytest.raises(OutputError, match="is a special file"):
            write_file(dest, lambda tmp: tmp.write_text("x"), flag="--taps", force=True) if kind == FILE else \
                claim(dest, flag="DIR", kind=DIR, force=True).__enter__()  # fmt: skip
    assert stat.S_ISFIFO(os.lstat(dest).st_mode) or stat.S_ISCHR(os.lstat(dest).st_mode)


@pytest.mark.parametrize("planted", ["symlink", "hardlink", "folder", "other content"])
def test_the_lock_never_writes_through_what_is_planted_at_its_name(tmp_path, planted):
    victim = tmp_path / "precious.txt"
    victim.write_text("years of work")
    out = tmp_path / "run"
    lock = lock_path(out)
    if planted == "symlink":
        os.symlink(victim, lock)
    elif planted == "hardlink":
        os.link(victim, lock)
    elif planted == "folder":
        lock.mkdir()
    else:
        lock.write_text("a file of mine that happens to have this name")
    with pytest.raises(OutputError, match=r"is not a lock file of bertcnn's .* Received:"), writer_lock(out):
        pass
    assert victim.read_text() == "years of work" and os.path.lexists(lock)


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "run"
    lock_path(out).write_text('{"pid": 999999, "host": "h", "since": "then", "command": "bertcnn train"}')
    with writer_lock(out):
        pass
    assert not lock_path(out).exists()


def test_a_symlink_loop_as_an_output_is_one_line(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(OutputError, match=r"cannot be resolved .* link loop"):
        claim(loop, flag="--out", kind=DIR).__enter__()


def test_a_link_to_a_folder_is_not_a_folder_to_write(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x").write_text("mine")
    link = tmp_path / "link"
    os.symlink(real, link)
    with pytest.raises(OutputError, match=r"must be a folder; .* is a symbolic link to a folder\. .*points to"):
        claim(link, flag="--out", kind=DIR, force=True).__enter__()
    assert (real / "x").read_text() == "mine"


@pytest.mark.parametrize("moment", ["staging", "staged", "exchanged", "between-renames", "renamed"])
def test_every_moment_a_kill_can_leave_is_recovered_by_the_next_writer(tmp_path, moment):
    """What a SIGKILL at each point of a publish leaves; the next writer finishes or undoes it, losing nothing."""
    dest = tmp_path / "ck"
    _make_ours(dest)
    (dest / "NOTES.txt").write_text("mine")
    old = tree_bytes(dest)
    staging, previous = swap.staging_of(dest), swap.previous_of(dest)
    staging.mkdir()
    write_marker(staging, "checkpoint", complete=moment != "staging")
    _write_new(staging)
    if moment in ("staged", "exchanged", "between-renames", "renamed"):
        write_marker(staging, "checkpoint")
    if moment == "exchanged":
        assert swap.exchange(staging, dest)
    elif moment == "between-renames":
        os.rename(dest, previous)
    elif moment == "renamed":
        os.rename(dest, previous)
        os.rename(staging, dest)
    with claim(dest, flag="DIR", kind=DIR, check=lambda p: None):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    now = tree_bytes(dest)
    assert now["NOTES.txt"] == b"mine"  # the user's file survives every moment
    new_won = moment in ("exchanged", "between-renames", "renamed")
    expected = {**NEW, "NOTES.txt": b"mine"} if new_won else old
    assert {k: v for k, v in now.items() if k != MARKER} == {k: v for k, v in expected.items() if k != MARKER}


def test_a_leftover_that_is_not_ours_is_never_deleted(tmp_path):
    dest = tmp_path / "ck"
    staging = swap.staging_of(dest)
    staging.mkdir()
    (staging / "mine.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"is in the way of writing .* Received:"), claim(dest, flag="DIR", kind=DIR):
        pass
    assert (staging / "mine.txt").read_text() == "mine"
