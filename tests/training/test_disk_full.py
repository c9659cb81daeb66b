"""A full disk loses nothing: the save that cannot be written stops the run with exit 2 and one line
saying the disk is full and where; the previous complete save stays, nothing hidden is left beside
it, and it resumes. The same for `bertcnn init`, `port` and `export --format onnx`, on a 2 MiB tmpfs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import parity.training.loop as loop
from parity.commands import main
from parity.training.state import load_snapshot
from tests.helpers import (
    RECIPE,
    assert_same_run,
    env,
    files,
    fill,
    hidden,
)


def _one_disk_line(err: str, where: str) -> None:
    lines = [x for x in err.strip().splitlines() if x.startswith("bertcnn ")]  # after train's data summary
    assert "Traceback" not in err and len(lines) == 1 and err.strip().endswith(lines[0]), err[-3000:]
    assert "the disk is full while writing" in lines[0] and where in lines[0] and "Received:" in lines[0], lines[0]


def test_a_full_disk_during_a_save_keeps_the_previous_save_and_resumes(tmp_path, tmpfs, monkeypatch, capsys):
    ck, train = files(tmp_path)
    out = tmpfs / "run"
    args = ["train", "--train", str(train), "--out", str(out), "--framework", "torch", *RECIPE]
    real_save, saves = loop.Run.save, []

    def save_then_fill(self, snap):
        real_save(self, snap)
        saves.append(snap.state.step)
        if len(saves) == 3:
            fill(tmpfs, leave=4096)  # the next save cannot be written

    monkeypatch.setattr(loop.Run, "save", save_then_fill)
    assert main([*args, "--checkpoint", str(ck)]) == 2
    _one_disk_line(capsys.readouterr().err, str(out))
    monkeypatch.undo()
    assert hidden(tmpfs) == [] and sorted(p.name for p in tmpfs.iterdir()) == ["filler", "run"]
    assert load_snapshot(out).state.step == saves[-1] == 2  # the last complete save
    os.unlink(tmpfs / "filler")
    assert main([*args, "--resume"]) == 0
    whole = tmp_path / "whole"
    assert main([*args[:4], str(whole), *args[5:], "--checkpoint", str(ck)]) == 0
    capsys.readouterr()
    assert_same_run(out, whole)
    assert hidden(tmpfs) == []


def test_a_disk_too_small_for_the_first_save_leaves_nothing(tmp_path, tmpfs, capsys):
    ck, train = files(tmp_path)
    fill(tmpfs, leave=20_000)  # the 115 kB step-0 save does not fit
    out = tmpfs / "run"
    rc = main(["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(out), "--framework", "torch",
               *RECIPE])  # fmt: skip
    assert rc == 2
    _one_disk_line(capsys.readouterr().err, str(out))
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler"]


def _child(*argv: str) -> tuple[int, str]:
    """The command in its own process: a library left broken by a failed write cannot take the suite down."""
    proc = subprocess.run([sys.executable, "-m", "parity", *argv], env=env(), capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    return proc.returncode, proc.stderr


def test_init_on_a_full_disk_is_one_line_and_leaves_nothing(tmpfs):
    rc, err = _child("init", str(tmpfs / "ck"))  # the embedded MiniLM: 90 MB on 2 MiB
    assert list(tmpfs.iterdir()) == []
    assert rc == 2, err[-3000:]
    _one_disk_line(err, str(tmpfs / "ck"))  # the file of DIR, not a hidden staging one nor "the output"


@pytest.mark.parametrize(
    "dest", ["ported", "ported.safetensors", "ported.pt", pytest.param("ported.keras", marks=pytest.mark.slow)]
)
def test_port_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, tmpfs, dest):
    ck, _ = files(tmp_path)
    fill(tmpfs, leave=8192)
    rc, err = _child("port", str(ck), str(tmpfs / dest))
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler"]
    assert rc == 2, err[-3000:]
    _one_disk_line(err, f"while writing {tmpfs / dest}")


@pytest.mark.slow  # 11 s of torch.onnx; init and port on a full disk stay in the default
def test_export_onnx_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, tmpfs):
    pytest.importorskip("onnx")
    ck, _ = files(tmp_path)
    fill(tmpfs, leave=8192)
    rc, err = _child("export", str(tmpfs / "exp"), "--checkpoint", str(ck), "--format", "onnx")
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler"]
    assert rc == 2, err[-3000:]
    _one_disk_line(err, f"while writing {tmpfs / 'exp'}")
