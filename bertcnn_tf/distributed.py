"""Data-parallel training on Keras' own engine: `keras.distribution.DataParallel` on JAX.

`use_data_parallel()` puts every local device in a 1-D mesh and sets the distribution
before the model is built, so each variable is created replicated on every device;
`fit` then places each global batch sharded along its first axis and XLA all-reduces
the gradients inside the compiled step. The batch is the one one process would see,
so the training is the same (the sums are only grouped differently).

A global batch whose size is not a multiple of the device count cannot be sharded
(JAX refuses the uneven split), and the last batch of an epoch is usually such a batch.
It is *handled exactly*, not refused: `pad_for_devices` appends copies of the batch's
first row up to the next multiple and returns sample weights that are Bp/B on the B
real rows and 0 on the copies. Keras' default loss reduction ("sum_over_batch_size")
divides the weighted sum by the padded size Bp, so the loss is
(1/Bp) sum_i (Bp/B) l_i = (1/B) sum_i l_i, the one-process mean, and the copies
contribute exactly zero gradient (0 x a finite number). With B divisible by the device
count nothing is padded and every weight is exactly 1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

__all__ = ["device_count", "pad_for_devices", "use_data_parallel"]


def use_data_parallel(devices: list | None = None):
    """Set `keras.distribution.DataParallel` over `devices` (default: all local ones).

    Call before building the model. JAX backend only: the TensorFlow backend's
    data parallelism is `tf.distribute`, not `keras.distribution`.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            "Keras data parallelism (`--data-parallel`) runs on the JAX backend: set KERAS_BACKEND=jax "
            f"(on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N devices). Received: {backend}"
        )
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    return distribution


def device_count() -> int:
    """Devices the global batch is sharded over: 1 without a distribution."""
    import keras

    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)


def pad_for_devices(
    inputs: Mapping[str, np.ndarray], labels: np.ndarray, n_devices: int, dtype: str = "float32"
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Pad one global batch to a multiple of `n_devices`: (inputs, labels, sample_weight).

    See the module doc for why this is the one-process mean exactly.
    """
    labels = np.asarray(labels)
    size = len(labels)
    if size < 1 or n_devices < 1:
        raise ValueError(f"pad_for_devices needs a non-empty batch and >= 1 device. Received: {size} rows, "
                         f"{n_devices} devices")  # fmt: skip
    padded = -(-size // n_devices) * n_devices
    extra = padded - size
    take = np.concatenate([np.arange(size), np.zeros(extra, dtype=np.int64)])
    weight = np.zeros(padded, dtype=dtype)
    weight[:size] = 1.0 if extra == 0 else padded / size
    return {k: np.asarray(v)[take] for k, v in inputs.items()}, labels[take], weight


def simulated_devices_flag(n: int) -> dict[str, str]:
    """Environment for a child process that sees `n` CPU devices (set before JAX starts)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    return {"XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={n}"])}
