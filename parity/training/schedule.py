"""The learning-rate schedule both trainers follow: linear warmup, then linear decay to 0.

The formula of transformers' `get_linear_schedule_with_warmup`, written once. torch's
`LambdaLR` multiplies the peak lr by this factor; the Keras `LearningRateSchedule`
evaluates the same expression. The optimizer's k-th update (k = 0, 1, ...) uses
`factor(k)`, so with warmup the very first update has lr 0, exactly as in HF.
"""

from __future__ import annotations


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """lr multiplier for the update with index `step` (0-based)."""
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))
