"""SIGKILL at a random moment after a save, then `--resume`: bit-identical to a run never killed.

Dropout and shuffling on; the run is `bertcnn train` in a child process, killed for real.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from parity.commands import main
from tests.train_helpers import tiny_checkpoint, write_jsonl

RECIPE = ["--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--warmup-ratio", "0.1", "--max-length", "20",
          "--seed", "7", "--save-every", "1"]  # fmt: skip


def _step(out) -> int:
    try:
        return json.loads((out / "trainer_state.json").read_text())["step"]
    except (OSError, ValueError):
        return -1  # between the renames of a save, or not yet written


def _tensors(out) -> dict[str, bytes]:
    from safetensors.numpy import load_file

    model, moments = load_file(str(out / "model.safetensors")), load_file(str(out / "optimizer.safetensors"))
    return {**{k: v.tobytes() for k, v in model.items()}, **{k: v.tobytes() for k, v in moments.items()}}


def _without_checkpoint(argv):
    """--resume reads the model from DIR: --checkpoint with it is refused."""
    i = argv.index("--checkpoint")
    return argv[:i] + argv[i + 2 :]


def _kill_after_a_save(base, killed):
    """Run `bertcnn train` in a child and SIGKILL it at a random moment after a random save."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), *sys.path]))
    child = subprocess.Popen([sys.executable, "-m", "parity", *base, "--out", str(killed)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    target = random.Random().randint(2, 12)  # of 33 updates
    deadline = time.monotonic() + 600
    while _step(killed) < target and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.Random().uniform(0.0, 0.05))  # anywhere: mid-update, mid-save, mid-swap
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.slow)])
def test_killed_and_resumed_run_is_bit_identical(framework, tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck")
    write_jsonl(tmp_path / "train.jsonl", 21, seed=4)
    base = ["train", "--checkpoint", str(tmp_path / "ck"), "--train", str(tmp_path / "train.jsonl"),
            "--framework", framework, *RECIPE]  # fmt: skip
    killed = tmp_path / "killed"
    _kill_after_a_save(base, killed)
    assert main([*_without_checkpoint(base), "--out", str(killed), "--resume"]) == 0
    whole = tmp_path / "whole"
    assert main([*base, "--out", str(whole)]) == 0
    capsys.readouterr()
    a, b = _tensors(killed), _tensors(whole)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)]
    assert (killed / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left


@pytest.mark.slow
def test_a_killed_torch_run_resumes_in_keras_through_the_cli(tmp_path, capsys):
    """float64, dropout off: torch killed, `--resume --framework keras` ends within 1e-10 of all-torch."""
    from safetensors.numpy import load_file

    tiny_checkpoint(tmp_path / "ck")
    write_jsonl(tmp_path / "train.jsonl", 21, seed=4)
    common = ["train", "--checkpoint", str(tmp_path / "ck"), "--train", str(tmp_path / "train.jsonl"),
              *RECIPE, "--dtype", "float64", "--no-dropout"]  # fmt: skip
    killed = tmp_path / "killed"
    _kill_after_a_save([*common, "--framework", "torch"], killed)
    assert main([*_without_checkpoint(common), "--out", str(killed), "--framework", "keras", "--resume"]) == 0
    assert "resuming a torch save with keras" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "whole"), "--framework", "torch"]) == 0
    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["framework"] == "keras" and state["finished"]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(str(killed / name)), load_file(str(tmp_path / "whole" / name))
        assert a.keys() == b.keys()
        worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        assert worst <= 1e-10, (name, worst)
