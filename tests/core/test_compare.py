"""`diagnose`: what a failing float32 run means next to float64 (rounding, or a structural bug)."""

from parity.compare import RunResult, TapResult, diagnose


def test_diagnosis_tells_rounding_from_structure():
    def run(dtype, ok):
        return RunResult(dtype, "cpu", "tensorflow", [TapResult("logits", [2, 2], 1e-3, 1e-3, 1e-5, ok)])

    rounding = diagnose([run("float32", False), run("float64", True)])
    assert len(rounding) == 1 and "rounding" in rounding[0]
    structural = diagnose([run("float32", False), run("float64", False)])
    assert any("STRUCTURAL" in s and "float64" in s for s in structural)
