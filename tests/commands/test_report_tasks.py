"""`bertcnn report` on issue 30's problems: a multi-label model read as windows, trained with class weights by both
real trainers; every forward, gradient and training check within its tier."""

from __future__ import annotations

import json

import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from tests.helpers import TINY, tiny_checkpoint

TEXTS = ["w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22", "w4 w9", "w7 w8 w9 w10 w11 w12 w13"]


@pytest.mark.parametrize(
    "multi", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["multi-label", "single-label"]
)
def test_report_checks_windows_and_class_weighted_training(multi, tmp_path, capsys):
    problem = "multi_label_classification" if multi else "single_label_classification"
    ck = tiny_checkpoint(tmp_path / "ck", BertCnnConfig(**TINY, problem_type=problem), tokenizer="words")
    (tmp_path / "w.json").write_text("[0.5, 2.0, 3.0]")
    weights = "balanced" if multi else str(tmp_path / "w.json")  # 3 seeded single labels may miss a class
    args = ["report", "--checkpoint", str(ck), *TEXTS, "--long-text", "windows", "--stride", "2", "--max-length",
            "8", "--dtype", "float64", "--grad", "--train-steps", "2", "--class-weights", weights,
            "--json-out", str(tmp_path / "r.json")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "read as windows of up to 8 tokens, 4 windows at most (windows per text [4, 1, 2])" in out
    assert "class weights: " in out and "PARITY OK" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert sorted(r["check"] for r in doc["results"]) == ["forward", "grad", "train"]
    (forward,) = [r for r in doc["results"] if r["check"] == "forward"]
    shapes = {t["name"]: t["shape"] for t in forward["taps"]}
    assert shapes["last_hidden_state"] == [12, 8, 12] and shapes["logits"] == [3, 3]  # 3 texts x 4 windows
    assert all(t["passed"] for r in doc["results"] for t in r["taps"])


def test_class_weights_need_the_training_check(tmp_path, capsys):
    ck = tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    assert main(["report", "--checkpoint", str(ck), "--class-weights", "balanced"]) == 2
    assert "--class-weights weighs the loss of the training check: add --train-steps N" in capsys.readouterr().err
