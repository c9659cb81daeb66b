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

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.taps)

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
            "taps": [asdict(t) for t in self.taps],
        }


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
    result = RunResult(dtype=dtype, device=device, backend=backend)
    for name in tap_names(config):
        if name not in reference or name not in candidate:
            side, got = ("reference", reference) if name not in reference else ("candidate", candidate)
            raise ValueError(f"The {side} build returned no tap {name!r}. Received: taps {sorted(got)}")
        a = np.asarray(reference[name], dtype=np.float64)
        b = np.asarray(candidate[name], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"Tap {name!r} has different shapes in the two builds. Received: {a.shape} vs {b.shape}")
        shape = list(a.shape)
        if is_token_level(name):
            a, b = a[real], b[real]  # (n_real_tokens, H)
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        scale = float(np.abs(a).max()) if a.size else 0.0
        bound = tolerance.bound(name, scale)
        finite = bool(np.isfinite(a).all() and np.isfinite(b).all())
        result.taps.append(
            TapResult(
                name=name,
                shape=shape,
                max_abs=diff,
                max_rel=diff / scale if scale > 0 else diff,
                atol=bound,
                passed=finite and diff <= bound,
            )
        )
    return result


def format_table(run: RunResult) -> str:
    """A fixed-width table; the first failing tap is marked with `<- first divergence`."""
    head = f"{'tap':<22} {'shape':<16} {'max abs':>10} {'max rel':>10} {'tolerance':>10}  status"
    lines = [f"== {run.dtype} on {run.device}, Keras backend {run.backend} ==", head, "-" * len(head)]
    first = run.first_divergence
    for t in run.taps:
        status = "ok" if t.passed else "FAIL"
        mark = "  <- first divergence" if t.name == first else ""
        shape = "x".join(map(str, t.shape))
        lines.append(f"{t.name:<22} {shape:<16} {t.max_abs:>10.2e} {t.max_rel:>10.2e} {t.atol:>10.2e}  {status}{mark}")
    verdict = "PASS" if run.passed else f"FAIL (first divergence: {first})"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
