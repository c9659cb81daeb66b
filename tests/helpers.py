"""Helpers the tests import (never import conftest): shared sizes, tensors and the parity runs they check.

Sizes are odd and distinct (batch 3, seq 7, hidden 12, heads 3, intermediate 37,
vocab 99) so a wrong transpose or reshape cannot pass by symmetry.
"""

from __future__ import annotations


def run_parity(w, *, dtype: str = "float32", keras_w=None):
    """One forward check as `bertcnn report` runs it: the PyTorch build's taps vs the Keras build's, judged.

    `keras_w`: other weights (same config) for the Keras side.
    """
    from bertcnn_torch.runtime import taps
    from parity.commands.builds import current_backend
    from parity.commands.keras_child import keras_side
    from parity.suite import compare_task, judge

    task = {"task": "taps", "dtype": dtype, "device": "cpu", "strict": True, "tier": "strict"}
    kw = keras_w or w
    backend = current_backend()
    ((candidate, meta),) = keras_side(backend, [task], kw.config, kw.tensors, w.inputs)
    return judge(compare_task(task, taps(w.config, w.tensors, w.inputs, dtype), candidate, w, backend), meta)
