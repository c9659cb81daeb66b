"""Tap-by-tap comparison of two builds' intermediates -> a structured report.

Taps are walked in forward order, so the first failing tap is where the two
functions part ways. `max_rel` is `max_abs / max|reference|` over the compared
elements: scale-relative, so it stays meaningful where single elements are ~0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from parity.config import BertCnnConfig
from parity.taps import is_token_level, tap_names
from parity.tolerance import Tolerance


@dataclass
class TapResult:
    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    atol: float  # the bound this tap was held to
    passed: bool


@dataclass
class RunResult:
    dtype: str
    device: str
    backend: str
    taps: list[TapResult] = field(default_factory=list)
    check: str = "forward"  # forward (taps), grad, train
    tier: str = "strict"  # strict; on GPU also "default" (TF32 allowed) and bf16
    notes: list[str] = field(default_factory=list)
    # Set when the candidate did not compute in `dtype` (e.g. float64 silently run in
    # float32): the run is then not a `dtype` result and cannot pass as one.
    limitation: str | None = None

    @property
    def passed(self) -> bool:
        return self.limitation is None and all(t.passed for t in self.taps)

    @property
    def label(self) -> str:
        tier = "" if self.tier == "strict" else f" [{self.tier}]"
        return f"{self.check} {self.dtype}{tier} on {self.device}, Keras backend {self.backend}"

    @property
    def limited(self) -> str:
        """The verdict of a run that is not a result of its dtype (see `limitation`)."""
        return f"NOT A {self.dtype} RESULT ({self.limitation})"

    @property
    def first_divergence(self) -> str | None:
        return next((t.name for t in self.taps if not t.passed), None)

    def to_dict(self) -> dict:
        return {
            "dtype": self.dtype,
            "device": self.device,
            "backend": self.backend,
            "passed": self.passed,
            "first_divergence": self.first_divergence,
            "check": self.check,
            "tier": self.tier,
            "limitation": self.limitation,
            "notes": list(self.notes),
            "taps": [asdict(t) for t in self.taps],
        }


def _pair(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], name: str):
    """Both builds' `name` as float64, refusing a missing tensor or a shape mismatch."""
    for side, got in (("reference", reference), ("candidate", candidate)):
        if name not in got:
            raise ValueError(
                f"The {side} build returned no {name!r}. Received: {len(got)} tensors, e.g. {sorted(got)[:5]}"
            )
    a = np.asarray(reference[name], dtype=np.float64)
    b = np.asarray(candidate[name], dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name!r} has different shapes in the two builds. Received: {a.shape} vs {b.shape}")
    return a, b


def compare_taps(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    attention_mask: np.ndarray,
    config: BertCnnConfig,
    tolerance: Tolerance,
    *,
    dtype: str,
    device: str,
    backend: str,
) -> RunResult:
    """Compare every tap of `config`; hidden states on real tokens only."""
    real = np.asarray(attention_mask).astype(bool)
    real = real.reshape(-1, real.shape[-1])  # documents read as windows: the encoder sees (batch x windows) rows
    result = RunResult(dtype=dtype, device=device, backend=backend)
    for name in tap_names(config):
        a, b = _pair(reference, candidate, name)
        shape = list(a.shape)
        if is_token_level(name):
            a, b = a[real], b[real]  # (n_real_tokens, H)
        result.taps.append(_tap(name, shape, a, b, tolerance))
    return result


def compare_arrays(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    names: list[str],
    tolerance: Tolerance,
    *,
    prefix: str,
    dtype: str,
    device: str,
    backend: str,
    check: str,
) -> RunResult:
    """Whole-array comparison of named tensors (gradients, trained weights), in `names` order."""
    result = RunResult(dtype=dtype, device=device, backend=backend, check=check)
    for name in names:
        a, b = _pair(reference, candidate, name)
        result.taps.append(_tap(f"{prefix}{name}", list(a.shape), a, b, tolerance))
    return result


def _tap(name: str, shape: list[int], a: np.ndarray, b: np.ndarray, tolerance: Tolerance) -> TapResult:
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    scale = float(np.abs(a).max()) if a.size else 0.0
    bound = tolerance.bound(name, scale)
    finite = bool(np.isfinite(a).all() and np.isfinite(b).all())
    return TapResult(name, shape, diff, diff / scale if scale > 0 else diff, bound, finite and diff <= bound)


def argmax_tap(reference: np.ndarray, candidate: np.ndarray, max_disagreement: float) -> TapResult:
    """Low-precision tiers are judged on predictions: the fraction of rows whose argmax differs."""
    a, b = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    frac = float(np.mean(a.argmax(-1) != b.argmax(-1)))
    return TapResult("logits.argmax", [a.shape[0]], frac, frac, max_disagreement, frac <= max_disagreement)


def diagnose(runs: list[RunResult]) -> list[str]:
    """What a failure means. float64 rounding is ~1e-16 relative, so a float64 failure is
    structure (wrong transpose, GELU form, epsilon), located at its first divergence; a
    float32 failure where float64 passes on the same backend is rounding, not structure."""
    lines = []
    for r in runs:
        if r.limitation:
            lines.append(f"{r.label}: NOT a {r.dtype} result: {r.limitation}")
        elif not r.passed and r.dtype == "float64":
            lines.append(
                f"{r.label}: STRUCTURAL difference first seen at {r.first_divergence!r}: float64 rounding "
                "cannot explain it; look for a wrong transpose, activation form, epsilon or mask there"
            )
        elif not r.passed:
            twin = next(
                (
                    x
                    for x in runs
                    if x.dtype == "float64" and (x.check, x.device, x.backend) == (r.check, r.device, r.backend)
                ),
                None,
            )
            if twin is not None and twin.passed:
                lines.append(
                    f"{r.label}: fails at {r.first_divergence!r} but float64 agrees: accumulated rounding, "
                    "not structure (check the op's numerics in this dtype before touching the tolerance)"
                )
            elif twin is not None:
                lines.append(f"{r.label}: fails at {r.first_divergence!r}; float64 fails too: structure (below)")
            else:
                lines.append(
                    f"{r.label}: fails at {r.first_divergence!r}; run --dtype float64 to tell structure from rounding"
                )
    return lines


def format_table(run: RunResult) -> str:
    """A fixed-width table; the first failing tap is marked with `<- first divergence`."""
    width = max([22, *(len(t.name) for t in run.taps)])
    head = f"{'tap':<{width}} {'shape':<16} {'max abs':>10} {'max rel':>10} {'tolerance':>10}  status"
    lines = [f"== {run.label} ==", head, "-" * len(head)]
    first = run.first_divergence
    for t in run.taps:
        status = "ok" if t.passed else "FAIL"
        mark = "  <- first divergence" if t.name == first else ""
        shape = "x".join(map(str, t.shape))
        lines.append(
            f"{t.name:<{width}} {shape:<16} {t.max_abs:>10.2e} {t.max_rel:>10.2e} {t.atol:>10.2e}  {status}{mark}"
        )
    lines += [f"note: {n}" for n in run.notes]
    verdict = run.limited if run.limitation else "PASS" if run.passed else f"FAIL (first divergence: {first})"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
