"""Nothing of the user's is lost around the runs: folders bertcnn did not write, files of the user's inside its own
folders, a destination that appears during the work, another writer holding the folder (issue 27, items 1-3, 11, 12).

Every case is the command as users run it (`parity.commands.main`), on the tiny checkpoint where real weights are
not the point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import parity.io.swap as swap
from parity.commands import main
from parity.io.lock import writer_lock
from parity.io.owned import MARKER
from parity.training.loop import Run
from tests.helpers import files, tree_bytes

RECIPE = ["--framework", "torch", "--epochs", "2", "--batch-size", "4", "--max-length", "16", "--threads", "1"]


def _err(capsys) -> str:
    """The one error line (train prints what it read before it)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "Received:" in errors[0] and "Traceback" not in err, err
    return errors[0]


def _myapp(tmp_path: Path) -> Path:
    """The issue's folder: looks like an export by its file names, holds someone's work."""
    app = tmp_path / "myapp"
    (app / "src").mkdir(parents=True)
    (app / "manifest.json").write_text("{}")
    (app / "config.json").write_text("{}")
    (app / "thesis.tex").write_text("x")
    (app / "src" / "main.py").write_text("c")
    return app


def _hf_trainer_checkpoint(tmp_path: Path) -> Path:
    """What transformers' Trainer writes at checkpoint-500/: names like a training directory's."""
    d = tmp_path / "checkpoint-500"
    d.mkdir()
    for name, data in {"trainer_state.json": "{}", "config.json": '{"model_type": "bert"}', "model.safetensors": "w",
                       "optimizer.pt": "moments", "training_args.bin": "args", "NOTES.md": "mine"}.items():  # fmt: skip
        (d / name).write_text(data)
    return d


@pytest.mark.parametrize("folder", [_myapp, _hf_trainer_checkpoint], ids=["myapp", "hf-checkpoint-500"])
@pytest.mark.parametrize("command", ["port", "train", "export"])
def test_force_never_touches_a_folder_bertcnn_did_not_write(tmp_path, capsys, folder, command):
    ck, train = files(tmp_path)
    dest = folder(tmp_path)
    before = tree_bytes(dest)
    argv = {
        "port": ["port", str(ck), str(dest)],
        "train": ["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(dest), *RECIPE],
        "export": ["export", str(dest), "--checkpoint", str(ck), "--format", "onnx"],
    }[command]
    assert main(argv) == 2
    assert "--force" not in _err(capsys).split("Received:")[0].replace("not even with --force", "")
    assert main([*argv, "--force"]) == 2
    err = _err(capsys)
    assert "a folder bertcnn did not write" in err and "never replaced, not even with --force" in err
    assert tree_bytes(dest) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_init_force_on_the_issues_myapp_keeps_everything(tmp_path, capsys):
    app = _myapp(tmp_path)
    before = tree_bytes(app)
    assert main(["init", str(app)]) == 2
    _err(capsys)
    assert main(["init", str(app), "--force"]) == 2
    assert "did not write" in _err(capsys) and tree_bytes(app) == before


def test_force_refuses_a_checkpoint_of_ours_that_also_holds_a_file_of_the_users(tmp_path, capsys):
    ck, _ = files(tmp_path)
    out = tmp_path / "ported"
    assert main(["port", str(ck), str(out)]) == 0
    (out / "NOTES.txt").write_text("mine")
    (out / "config.json").write_text(Path(out / "config.json").read_text().replace("{", "{ ", 1))  # an edit
    capsys.readouterr()
    assert main(["port", str(ck), str(out), "--force"]) == 2
    err = _err(capsys)
    assert "also holds files bertcnn did not write (or that changed since): ['NOTES.txt', 'config.json']" in err
    assert (out / "NOTES.txt").read_text() == "mine"
    (out / "NOTES.txt").unlink()
    assert main(["port", str(ck), str(out), "--force"]) == 2  # the edited config.json is still the user's
    _err(capsys)


def test_an_empty_folder_is_a_new_destination_for_every_command(tmp_path, capsys):
    ck, train = files(tmp_path)
    for name, argv in {
        "p": ["port", str(ck)],
        "t": ["train", "--checkpoint", str(ck), "--train", str(train), *RECIPE, "--out"],
    }.items():
        (tmp_path / name).mkdir()
        assert main([*argv, str(tmp_path / name)]) == 0
        assert (tmp_path / name / MARKER).is_file()
    capsys.readouterr()


@pytest.mark.parametrize("command", ["init", "port", "export", "train"])
def test_a_folder_held_by_a_running_writer_is_refused_with_the_lock_message(tmp_path, capsys, command):
    """Item 3: `init`/`port`/`export --force` (and a second `train`) while a run writes the folder."""
    ck, train = files(tmp_path)
    run = tmp_path / "run3"
    assert main(["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(run), *RECIPE]) == 0
    capsys.readouterr()
    before = tree_bytes(run)
    argv = {
        "init": ["init", str(run), "--force"],
        "port": ["port", str(ck), str(run), "--force"],
        "export": ["export", str(run), "--checkpoint", str(ck), "--format", "onnx", "--force"],
        "train": ["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(run), *RECIPE],
    }[command]
    with writer_lock(run):  # the running `train --out run3`
        assert main(argv) == 2
    err = _err(capsys)
    assert f"{str(run)!r} is being written by another run (pid {os.getpid()}" in err
    assert "exists" not in err  # not "exists and is not empty": who holds it is what matters
    assert tree_bytes(run) == before


def _interrupted_run(tmp_path, monkeypatch, capsys) -> tuple[Path, list[str]]:
    """A training directory whose run stopped after update 3 of 8 (as a Ctrl-C leaves it), and its argv."""
    ck, train = files(tmp_path)
    out = tmp_path / "run2"
    argv = ["train", "--train", str(train), "--out", str(out), *RECIPE]
    real = Run._stop_asked
    monkeypatch.setattr(Run, "_stop_asked", lambda self: self.saves >= 1 or real(self))
    assert main([*argv, "--checkpoint", str(ck), "--save-every", "3"]) in (0, 75)
    monkeypatch.undo()
    capsys.readouterr()
    assert json.loads((out / "trainer_state.json").read_text())["finished"] is False
    return out, [*argv, "--save-every", "3", "--resume"]


def test_saves_keep_the_users_files_in_a_training_directory(tmp_path, monkeypatch, capsys):
    """Item 2: notes, a folder and an edited copy of a file dropped into a run directory survive every save."""
    out, resume = _interrupted_run(tmp_path, monkeypatch, capsys)
    (out / "NOTES.txt").write_text("notes")
    (out / "plots").mkdir()
    (out / "plots" / "loss.png").write_bytes(b"png")
    assert main(resume) == 0
    capsys.readouterr()
    assert (out / "NOTES.txt").read_text() == "notes" and (out / "plots" / "loss.png").read_bytes() == b"png"
    assert json.loads((out / "trainer_state.json").read_text())["finished"] is True


def test_a_note_written_during_the_run_is_kept_by_the_next_save(tmp_path, monkeypatch, capsys):
    out, resume = _interrupted_run(tmp_path, monkeypatch, capsys)
    real = swap.publish

    def user_writes_then_publish(new, dest, **kw):
        if dest == out and not (dest / "late.txt").exists():
            (dest / "late.txt").write_text("written while it trained")
        return real(new, dest, **kw)

    monkeypatch.setattr(swap, "publish", user_writes_then_publish)
    import parity.io.destination as destination

    monkeypatch.setattr(destination, "publish", user_writes_then_publish)
    assert main(resume) == 0
    capsys.readouterr()
    assert (out / "late.txt").read_text() == "written while it trained"


@pytest.mark.parametrize("command", ["init", "port", pytest.param("export", marks=pytest.mark.slow), "train"])
@pytest.mark.parametrize("appears", ["folder", "file"])
def test_a_destination_that_appears_during_the_work_is_never_replaced(tmp_path, monkeypatch, capsys, command,
                                                                      appears):  # fmt: skip
    """Item 11: the check at the start is repeated in the swap itself; no --force given, none needed."""
    import parity.io.destination as destination

    ck, train = files(tmp_path)
    dest = tmp_path / ("new.safetensors" if command == "port" and appears == "file" else "new")
    real = destination.publish

    def appear_then_publish(new, where, **kw):
        if where == dest and not os.path.lexists(dest):
            if appears == "folder":
                dest.mkdir()
                (dest / "work.txt").write_text("mine")
            else:
                dest.write_text("mine")
        return real(new, where, **kw)

    monkeypatch.setattr(destination, "publish", appear_then_publish)
    argv = {
        "init": ["init", str(dest)],
        "port": ["port", str(ck), str(dest)],
        "export": ["export", str(dest), "--checkpoint", str(ck), "--format", "onnx"],
        "train": ["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(dest), *RECIPE],
    }[command]
    assert main(argv) == 2
    err = _err(capsys)
    assert "while this command ran" in err and ("appeared" in err or "changed" in err)
    if appears == "folder":
        assert tree_bytes(dest) == {"work.txt": b"mine"}
    else:
        assert dest.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# A child `bertcnn` that stops, staged output complete, right before it publishes: the worst moment to be killed.
PAUSED_CHILD = """
import sys, time
import parity.io.destination as destination
def pause(*a, **k):
    print("PAUSED", file=sys.stderr, flush=True)
    time.sleep(600)
destination.publish = pause
from parity.commands import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("dest_name", ["ported", "ported.safetensors"])
def test_a_port_killed_before_its_swap_leaves_what_the_next_run_removes(tmp_path, capsys, dest_name):
    """Item 14: SIGKILL with the whole output staged; the rerun recovers, nothing is left beside DST."""
    import signal
    import subprocess
    import sys

    from tests.helpers import env

    ck, _ = files(tmp_path)
    dest = tmp_path / dest_name
    assert main(["port", str(ck), str(dest)]) == 0  # the previous output, replaced with --force below
    capsys.readouterr()
    before = tree_bytes(dest) if dest.is_dir() else dest.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", PAUSED_CHILD, "port", str(ck), str(dest), "--force",
                              "--dtype", "float64"], env=env(), stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stderr.readline().strip() == "PAUSED"
        assert os.path.lexists(tmp_path / f".{dest_name}.staging")  # model-sized, as the issue saw
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert (tree_bytes(dest) if dest.is_dir() else dest.read_bytes()) == before  # the kill lost nothing
    assert main(["port", str(ck), str(dest), "--force", "--dtype", "float64"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
