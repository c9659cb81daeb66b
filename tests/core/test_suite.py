"""`judge` and `limitation_of`: a float64 request computed in float32 is a limitation, never a pass."""

from parity.compare import RunResult, TapResult
from parity.suite import judge, limitation_of


def test_a_float64_request_computed_in_float32_is_not_a_float64_result():
    meta = {"backend": "jax", "computed_dtypes": ["float32"], "jax_enable_x64": False, "notes": []}
    assert "jax_enable_x64 is off" in limitation_of(meta, "float64")
    ok = RunResult("float64", "cpu", "jax", [TapResult("logits", [2, 2], 0.0, 0.0, 1e-12, True)])
    judged = judge(ok, meta)
    assert not judged.passed and judged.limitation
    assert limitation_of({"backend": "jax", "computed_dtypes": ["float64"]}, "float64") is None
