"""`bertcnn report --train-steps N`: the two real trainers, weights and AdamW moments compared."""

from __future__ import annotations

import json

import pytest

from parity.commands import main


def test_report_trains_with_both_trainers_and_compares_moments(tiny_ck, tmp_path, capsys):
    args = ["report", "--checkpoint", str(tiny_ck), "--dtype", "float64", "--train-steps", "3",
            "--json", str(tmp_path / "r.json")]  # fmt: skip
    pytest.importorskip("matplotlib", reason="--plot needs the `plot` extra: pip install 'bertcnn[plot]'")
    png = tmp_path / "p.png"
    args += ["--plot", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "PARITY OK" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    (train,) = [r for r in doc["results"] if r["check"] == "train"]
    names = [t["name"] for t in train["taps"]]
    assert "train/fc.weight" in names and "moments/exp_avg_sq.bert.embeddings.word_embeddings.weight" in names
    assert not any("pooler" in n for n in names if n.startswith("moments/"))
    assert png.read_bytes()[:4] == b"\x89PNG"
