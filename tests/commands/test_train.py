"""`bertcnn train`: a training directory that is a checkpoint, the summary, and refusals.

SIGKILL at a random moment after a save, then `--resume`: bit-identical to a run never killed.
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
from parity.io.checkpoint import load_checkpoint
from tests.helpers import cli, write_jsonl

RECIPE = ["--epochs", "2", "--batch-size", "4", "--lr", "1e-2", "--warmup-steps", "2", "--dtype", "float64",
          "--max-length", "20"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train-cli")
    write_jsonl(d / "train.jsonl", 23, seed=1)
    write_jsonl(d / "eval.jsonl", 9, seed=2)
    return d


@pytest.fixture(scope="module")
def trained(files, words_ck, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "run"
    args = ["train", "--checkpoint", str(words_ck), "--train", str(files / "train.jsonl"), "--eval",
            str(files / "eval.jsonl"), "--out", str(out), "--framework", "torch", "--json", *RECIPE]  # fmt: skip
    return out, args


def test_train_writes_a_checkpoint_in_the_training_dtype_with_label_names(trained, capsys):
    out, args = trained
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["steps"] == 12 and summary["finished"] and summary["truncated"] > 0
    assert f"{summary['truncated']} truncated to 20 tokens" in captured.err
    assert captured.err.count("epoch ") >= 2 and "eval accuracy" in captured.err
    config, tensors = load_checkpoint(out)
    assert config.label_names == ("mid", "neg", "pos")
    assert {t.dtype for t in tensors.values()} == {np.dtype("float64")}
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in log if "loss" in m] == list(range(1, 13))
    assert [m["epoch"] for m in log if "eval_accuracy" in m] == [0, 1]
    assert (out / "tokenizer.json").is_file()


def test_a_non_empty_directory_is_refused_without_resume_or_force(trained, capsys):
    _, args = trained
    assert main([a for a in args if a != "--json"]) == 2
    assert "exists and is not empty; pass --resume" in capsys.readouterr().err


def test_resume_refuses_another_recipe_and_other_data(trained, files, capsys):
    out, _ = trained
    resume = ["train", "--train", str(files / "train.jsonl"), "--out", str(out), "--framework", "torch", "--resume"]
    assert main([*resume, "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "lr: saved 0.01, given 0.5" in err and "Received:" in err
    other = files / "other.jsonl"
    write_jsonl(other, 23, seed=9)
    assert main(["train", "--train", str(other), "--out", str(out), "--framework", "torch", "--resume"]) == 2
    assert "same data" in capsys.readouterr().err
    assert main([*resume, "--json"]) == 0  # a finished run resumes to itself: nothing left to do
    assert json.loads(capsys.readouterr().out)["steps"] == 12


# -- killed with SIGKILL, then --resume --------------------------------------------------------------
KILL_RECIPE = ["--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--warmup-ratio", "0.1", "--max-length", "20",
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


@pytest.mark.slow  # 36 s (three children); the in-process crash + resume tests (tests/training) stay in the default
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_killed_and_resumed_run_is_bit_identical(framework, words_ck, tmp_path, capsys):
    write_jsonl(tmp_path / "train.jsonl", 21, seed=4)
    base = ["train", "--checkpoint", str(words_ck), "--train", str(tmp_path / "train.jsonl"),
            "--framework", framework, *KILL_RECIPE]  # fmt: skip
    killed = tmp_path / "killed"
    _kill_after_a_save(base, killed)
    # Every part in a fresh process, as users run it (see tests.helpers.cli).
    resumed = cli([*_without_checkpoint(base), "--out", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = tmp_path / "whole"
    assert cli([*base, "--out", str(whole)]).returncode == 0
    a, b = _tensors(killed), _tensors(whole)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)]
    assert (killed / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left


@pytest.mark.slow
def test_a_killed_torch_run_resumes_in_keras_through_the_cli(words_ck, tmp_path, capsys):
    """float64, dropout off: torch killed, `--resume --framework keras` ends within 1e-10 of all-torch."""
    from safetensors.numpy import load_file

    write_jsonl(tmp_path / "train.jsonl", 21, seed=4)
    common = ["train", "--checkpoint", str(words_ck), "--train", str(tmp_path / "train.jsonl"),
              *KILL_RECIPE, "--dtype", "float64", "--no-dropout"]  # fmt: skip
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
