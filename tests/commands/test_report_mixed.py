"""`bertcnn report --mixed-precision bf16`: the bf16 tier on the CPU, torch.autocast vs Keras mixed_bfloat16."""

from __future__ import annotations

import json

from parity.commands import main
from parity.tolerance import tolerance_for
from tests.train_helpers import tiny_checkpoint


def test_the_mixed_tier_runs_and_is_judged_by_its_entry(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck")
    out = tmp_path / "r.json"
    argv = ["report", "--checkpoint", str(tmp_path / "ck"), "--dtype", "float32", "--mixed-precision", "bf16"]
    assert main([*argv, "--json-out", str(out)]) == 0
    runs = json.loads(out.read_text())["results"]
    (mixed,) = [r for r in runs if r["tier"] == "mixed"]
    assert mixed["dtype"] == "bfloat16" and mixed["passed"] and mixed["limitation"] is None
    taps = {t["name"]: t for t in mixed["taps"]}
    assert taps["logits"]["atol"] == tolerance_for("bfloat16", "cpu").atol
    assert "logits.argmax" in taps
    # bf16 compute really happened: farther from each other than float32 ever is.
    assert taps["logits"]["max_abs"] > tolerance_for("float32", "cpu").atol
    assert "forward bfloat16 [mixed] on cpu" in capsys.readouterr().out
