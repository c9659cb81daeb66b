"""THE tolerance table: one entry per (dtype, device), each saying what it was measured on.

A tap passes when `max_abs <= atol + rtol * max|reference|`; logits are held to
`atol` alone (the number users care about). Tighten freely; never loosen an entry
to make a test pass: a failure at these bounds is a bug (see README, Parity).
"""

from __future__ import annotations

from dataclasses import dataclass

from parity.taps import LOGITS


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    measured: str  # what the observed maxima were, on what, so the margin is visible

    def bound(self, tap: str, scale: float) -> float:
        return self.atol if tap == LOGITS else self.atol + self.rtol * scale


TOLERANCES: dict[tuple[str, str], Tolerance] = {
    # float32 is what users run. Measured with `bertcnn report` (embedded MiniLM-L6,
    # seeded head, TF 2.21 / torch 2.13 CPU): logits max abs 6.3e-7, hidden
    # states max rel 6.0e-7, conv taps 2.2e-6: >= 4x margin on every tap.
    ("float32", "cpu"): Tolerance(
        atol=1e-5, rtol=1e-5, measured="MiniLM-L6 CPU: logits 6.3e-7, hidden rel <= 6.0e-7, conv rel <= 2.2e-6"
    ),
    # float64 checks structure: rounding is ~1e-16 relative, so anything above 1e-12 is
    # a wrong transpose, GELU form or epsilon, not arithmetic. Measured on MiniLM-L6 CPU:
    # logits 7.8e-16, every tap <= 6.6e-15 abs (>= 150x margin).
    ("float64", "cpu"): Tolerance(atol=1e-12, rtol=1e-12, measured="MiniLM-L6 CPU: logits 7.8e-16, taps <= 6.6e-15"),
}


def tolerance_for(dtype: str, device: str) -> Tolerance:
    key = (dtype, device.split(":")[0])
    if key not in TOLERANCES:
        raise ValueError(
            f"No tolerance is defined for dtype/device {key}; known: {sorted(TOLERANCES)}. Received: {key}"
        )
    return TOLERANCES[key]
