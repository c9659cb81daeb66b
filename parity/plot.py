"""One picture of a parity report: max abs difference per tap, log scale, one line per run.

Tolerances are drawn as dashed lines in the run's colour, so the margin, and how the
error grows from the embeddings through the encoder into the head, is visible at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from parity.compare import RunResult

# log10 of 0 is undefined: exact agreement is drawn at this floor.
FLOOR = 1e-18


def plot_runs(
    runs: Sequence[RunResult], path: str | os.PathLike, *, losses: Mapping[str, Sequence[dict]] | None = None
) -> None:
    """Forward runs share the x axis (tap names); grad/train runs get a panel of their own.

    `losses`: label -> a trainer's metrics log; their loss curves are overlaid in a last
    panel, so the two frameworks' training runs can be seen to coincide.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError(
            "--plot needs matplotlib; install it with `pip install 'bertcnn[plot]'`. Received: matplotlib not installed"
        ) from None
    if not runs:
        raise ValueError(f"Nothing to plot: no run was compared. Received: {len(runs)} runs")
    panels = [c for c in ("forward", "grad", "train", "cpu-vs-cuda") if any(r.check == c for r in runs)]
    curves = {k: v for k, v in (losses or {}).items() if v}
    n = len(panels) + bool(curves)
    fig, axes = plt.subplots(n, 1, figsize=(12, 4.5 * n), squeeze=False)
    for ax, check in zip(axes[:, 0], panels, strict=False):
        group = [r for r in runs if r.check == check]
        names = list(dict.fromkeys(t.name for r in group for t in r.taps if t.name != "logits.argmax"))
        pos = {n: i for i, n in enumerate(names)}
        for r in group:
            taps = [t for t in r.taps if t.name in pos]
            xs = [pos[t.name] for t in taps]
            label = f"{r.dtype}{'' if r.tier == 'strict' else ' ' + r.tier} / {r.backend} / {r.device}"
            if not r.passed:
                label += " (FAIL)" if r.limitation is None else " (not a " + r.dtype + " result)"
            (line,) = ax.plot(xs, [max(t.max_abs, FLOOR) for t in taps], marker="o", ms=3, label=label)
            ax.plot(xs, [t.atol for t in taps], ls="--", lw=1, color=line.get_color(), alpha=0.6)
        ax.set_yscale("log")
        ax.set_ylabel("max abs difference")
        ax.set_title(f"{check}: PyTorch build vs Keras build (dashed: tolerance)")
        step = max(1, len(names) // 40)
        ax.set_xticks(range(0, len(names), step))
        ax.set_xticklabels([n.split("/", 1)[-1] for n in names[::step]], rotation=70, ha="right", fontsize=7)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if curves:
        ax = axes[-1, 0]
        for i, (label, log) in enumerate(curves.items()):
            updates = [m for m in log if "loss" in m]
            ax.plot([m["step"] for m in updates], [m["loss"] for m in updates], marker="o", ms=3,
                    ls="-" if label.startswith("torch") else "--", lw=2.5 - i * 0.4, label=label)  # fmt: skip
        ax.set_xlabel("update")
        ax.set_ylabel("training loss (batch mean)")
        ax.set_title("training loss: PyTorch trainer vs Keras trainer (same recipe and batches)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
