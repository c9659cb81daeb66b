"""One writer per training directory, and readers that always see one complete save.

A second `bertcnn train --out DIR [--resume]` while a run writes DIR is refused at once (exit 2,
naming DIR and the holder); a SIGKILLed run leaves no lock that blocks the next. Every save's final
swap is one `renameat2(RENAME_EXCHANGE)`, so a reader of DIR never finds it missing or half-written;
where the system cannot exchange, the two-rename fallback still gives whole saves."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from parity.commands import main
from parity.io.checkpoint import load_checkpoint
from parity.io.lock import writer_lock
from parity.training.state import load_snapshot
from tests.helpers import (
    RECIPE,
    assert_same_run,
    files,
    hidden,
    saved_step,
    start_child,
    tree_bytes,
    wait_for_step,
)


def _args(ck, train, out, *extra):
    start = ["--resume"] if "--resume" in extra else ["--checkpoint", str(ck)]
    rest = [e for e in extra if e != "--resume"]
    return ["train", *start, "--train", str(train), "--out", str(out), "--framework", "torch", *RECIPE, *rest]


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_writer_is_refused_at_once_naming_the_directory_and_holder(tmp_path, capsys, resume):
    ck, train = files(tmp_path)
    out = tmp_path / "run"
    if resume:
        assert main(_args(ck, train, out, "--epochs", "1")) == 0
        capsys.readouterr()
    before = tree_bytes(out) if out.exists() else None
    with writer_lock(out):  # another run holds DIR
        rc = main(_args(ck, train, out, *(["--resume", "--epochs", "1"] if resume else [])))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--out {str(out)!r} is being written by another run (pid {os.getpid()} on " in err and "Received:" in err
    assert (tree_bytes(out) if out.exists() else None) == before  # nothing written


@pytest.mark.slow  # a child run; the lock refusal itself is in-process in tests/commands/test_ownership.py
def test_a_running_training_holds_its_directory(tmp_path, capsys):
    ck, train = files(tmp_path)
    out = tmp_path / "run"
    child = start_child(_args(ck, train, out)[0:], slow_save=0.3)
    try:
        wait_for_step(out, 1, child)
        assert main(_args(ck, train, out, "--resume")) == 2
        err = capsys.readouterr().err
        assert f"being written by another run (pid {child.pid} " in err, err
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    # Killed for real: the kernel released the lock, so the next run proceeds (and cleans up).
    assert main(_args(ck, train, out, "--resume")) == 0
    capsys.readouterr()
    assert hidden(tmp_path) == []
    whole = tmp_path / "whole"
    assert main(_args(ck, train, whole)) == 0
    assert_same_run(out, whole)


def test_a_reader_never_sees_the_directory_missing_during_a_save(tmp_path, monkeypatch, capsys):
    """After every rename or exchange a save makes, DIR is a whole, readable checkpoint."""
    import parity.io.swap as swap

    ck, train = files(tmp_path)
    out = tmp_path / "run"
    checks = []

    def readable(what):
        if checks or out.exists():  # from the first save on
            load_checkpoint(out)  # raises if DIR is missing or half there
            checks.append(what)

    real_replace, real_rename, real_exchange = os.replace, os.rename, swap.exchange

    def replace(a, b):
        real_replace(a, b)
        readable("replace")

    def rename(a, b):
        real_rename(a, b)
        readable("rename")

    def exchange(a, b):
        done = real_exchange(a, b)
        readable("exchange")
        return done

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(swap, "exchange", exchange)
    assert main(_args(ck, train, out, "--epochs", "1")) == 0
    capsys.readouterr()
    assert checks.count("exchange") == 11  # the step-0 save is a plain rename, then one exchange per save


def test_the_two_rename_fallback_gives_the_same_whole_saves(tmp_path, monkeypatch, capsys):
    import parity.io.swap as swap

    ck, train = files(tmp_path)
    monkeypatch.setattr(swap, "_renameat2", lambda: None)  # a system without renameat2
    assert main(_args(ck, train, tmp_path / "fallback")) == 0
    monkeypatch.undo()
    assert main(_args(ck, train, tmp_path / "exchange")) == 0
    capsys.readouterr()
    assert_same_run(tmp_path / "fallback", tmp_path / "exchange")
    assert hidden(tmp_path) == []


@pytest.mark.slow  # 7 s; the single-reader check of every swap stays in the default
def test_readers_in_a_loop_see_one_complete_save_while_a_run_saves_every_update(tmp_path):
    ck, train = files(tmp_path)
    out = tmp_path / "run"
    child = start_child(_args(ck, train, out))
    wait_for_step(out, 0, child)
    failures, reads, done = [], [0], threading.Event()

    def reader():
        while not done.is_set():
            try:
                load_checkpoint(out)
                load_snapshot(out, recover_first=False)
                reads[0] += 1
            except (OSError, ValueError) as e:
                failures.append(f"{type(e).__name__}: {str(e)[:200]}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        _, err = child.communicate(timeout=600)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert child.returncode == 0, err[-2000:]
    assert saved_step(out) == 33
    assert reads[0] > 20 and not failures, (reads[0], failures[:3])


def test_a_reader_outpaced_by_saves_says_so_and_does_not_blame_the_files(tmp_path, monkeypatch):
    import parity.training.state as state

    ck, train = files(tmp_path)
    out = tmp_path / "run"
    assert main(_args(ck, train, out, "--epochs", "1")) == 0
    ticks = iter(range(10**6))
    monkeypatch.setattr(state, "_inode", lambda d: (next(ticks), 0, 0))  # DIR swapped during every read

    def torn(d):  # what a read across two saves finds: files of different saves
        raise ValueError(f"{d}/optimizer.safetensors: the moments were saved at another step")

    monkeypatch.setattr(state, "_read_snapshot", torn)
    monkeypatch.setattr(state, "READ_PATIENCE_S", 0.05)
    with pytest.raises(OSError, match=r"replaced by new saves during every read for 0\.05 s"):
        load_snapshot(out, recover_first=False)
    monkeypatch.setattr(state, "_inode", lambda d: (1, 0, 0))  # DIR unchanged: the files' own error, at once
    with pytest.raises(ValueError, match="moments were saved at another step"):
        load_snapshot(out, recover_first=False)
