"""float64 on every Keras backend: the one workaround the Keras build needs for the float64 tier.

Keras' dtype lattice maps float64 -> float32 in `result_type` on every backend but
TensorFlow ("to be aligned with JAX's default"), so e.g. `ops.tanh` and
`ops.layer_normalization` on float64 inputs compute in float32 and cast back: the
outputs *say* float64 but carry float32 error (measured 1.8e-6 on a LayerNorm). With
this mapping removed those ops compute in float64, which JAX honours once x64 is on.
"""

from __future__ import annotations

FLOAT64_NOTE = (
    "Keras demotes float64 to float32 in ops on jax/torch (dtypes.BIT64_TO_BIT32_DTYPE); "
    "that demotion was switched off for this run"
)


def keep_float64() -> str | None:
    """Stop Keras demoting float64 to float32 inside ops on the jax and torch backends; the note, or None on TF."""
    import keras
    from keras.src.backend.common import dtypes

    if keras.backend.backend() == "tensorflow":
        return None
    dtypes.BIT64_TO_BIT32_DTYPE.pop("float64", None)
    return FLOAT64_NOTE


def float64_kept() -> bool:
    """Whether `keep_float64` is in effect in this process."""
    from keras.src.backend.common import dtypes

    return "float64" not in dtypes.BIT64_TO_BIT32_DTYPE
