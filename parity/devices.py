"""GPU discovery and matmul precision, for the CUDA tiers of the parity report.

The strict float32 tier must not let any framework use TF32 (10-bit mantissa):
torch's cuBLAS and cuDNN switches, TensorFlow's TF32 execution and JAX's default
matmul precision are all set before any GPU work. The default tier leaves each
framework as it ships, which is what users get.
"""

from __future__ import annotations

import os


def torch_gpu() -> str | None:
    """None when torch can use a GPU, else the reason it cannot."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"no GPU found: torch.cuda.is_available() is False (torch {torch.__version__})"
    return None


def keras_gpu(backend: str) -> str | None:
    """None when the Keras `backend` can reach a GPU, else why not (checked without starting Keras)."""
    if backend == "torch":
        return torch_gpu()
    if backend == "jax":
        try:
            import jax
        except ImportError:
            return "jax is not installed (pip install 'bertcnn[jax]')"
        try:
            return None if jax.devices("gpu") else "no GPU found by jax"
        except RuntimeError:
            return "no GPU found: jax has no GPU backend (install jax[cuda12])"
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return "no GPU found by TensorFlow (tensorflow-cpu has no CUDA build)"
    return None


def set_matmul_precision(strict: bool, frameworks: tuple[str, ...] = ("torch", "keras")) -> None:
    """strict=True: full float32 everywhere (TF32 off); False: each framework's shipped default."""
    if "torch" in frameworks or os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False  # off in both tiers: torch ships with it off
        torch.backends.cudnn.allow_tf32 = not strict  # torch ships with this on
    if "keras" in frameworks:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_tensor_float_32_execution(not strict)
        elif backend == "jax":
            import jax

            jax.config.update("jax_default_matmul_precision", "highest" if strict else None)
