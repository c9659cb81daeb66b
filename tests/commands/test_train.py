"""`bertcnn train`: a training directory that is a checkpoint, the summary, and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.commands import main
from parity.io.checkpoint import load_checkpoint
from tests.helpers import write_jsonl

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
