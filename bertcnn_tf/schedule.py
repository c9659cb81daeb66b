"""`LinearWarmupDecay`: torch's LambdaLR with transformers' linear warmup/decay, as a Keras 3 schedule."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from parity.training.schedule import linear_warmup_decay

__all__ = ["LinearWarmupDecay"]


@keras.saving.register_keras_serializable(package="bertcnn")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`peak_lr x` transformers' `get_linear_schedule_with_warmup` factor, as torch's LambdaLR applies it.

    The optimizer's k-th update (k = 0, 1, ...; Keras' `iterations` before the update)
    gets `peak_lr * linear_warmup_decay(k, warmup_steps, total_steps)`: lr 0 on the first
    update when there is warmup, peak at k = warmup_steps, 0 from k = total_steps on.

    The values are tabulated once in Python float64 from `parity.training.schedule`
    (the formula both trainers use, so there is one formula, not a re-derivation) and
    looked up by step: bit-identical to torch's `base_lr * lambda(k)`. Called with
    `dtype="float64"` (as `TorchAdamW` does for float64 variables) the lr is never
    rounded to float32; Keras' default call returns float32 like any Keras schedule.
    The table holds `max(total_steps, warmup_steps) + 1` numbers (8 bytes each).
    """

    def __init__(self, peak_lr: float, warmup_steps: int, total_steps: int):
        if isinstance(peak_lr, bool) or not isinstance(peak_lr, (int, float)) or not peak_lr > 0:
            raise ValueError(f"LinearWarmupDecay: `peak_lr` must be a positive number. Received: {peak_lr!r}")
        for name, v in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"LinearWarmupDecay: `{name}` must be an integer >= 0. Received: {v!r}")
        self.peak_lr, self.warmup_steps, self.total_steps = float(peak_lr), int(warmup_steps), int(total_steps)
        last = max(self.total_steps, self.warmup_steps)  # from here on the factor is 0 for good
        self._table = np.array(
            [self.peak_lr * linear_warmup_decay(k, self.warmup_steps, self.total_steps) for k in range(last + 1)],
            dtype=np.float64,
        )
        self._tables: dict[str, np.ndarray] = {"float64": self._table}

    def lr_at(self, step: int) -> float:
        """The learning rate of update `step` as a Python float (for logs; torch's `get_last_lr()`)."""
        return float(self._table[min(int(step), len(self._table) - 1)])

    def __call__(self, step, dtype: str | None = None):
        dtype = keras.backend.standardize_dtype(dtype or keras.backend.floatx())
        if dtype not in self._tables:
            self._tables[dtype] = self._table.astype(dtype)  # one correct rounding of torch's double
        # Numpy into the op: a constant in a traced graph, never a tensor cached across traces.
        index = ops.minimum(ops.cast(step, "int32"), len(self._table) - 1)
        return ops.take(ops.convert_to_tensor(self._tables[dtype], dtype=dtype), index)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
