"""A framework name -> its build: the one place in `parity` that names `bertcnn_torch` or `bertcnn_tf`.

Commands ask for "torch" or "keras" here and get the build's `runtime` module (the
numpy-level functions the suite and the command line use), the Keras h5 layout the
readers need, or a GPU answer; nothing else in `parity` imports a build.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from parity.stderr import quiet_native_stderr

FRAMEWORKS = ("torch", "keras")
BACKENDS = ("tensorflow", "jax", "torch")  # Keras backends
# What each build needs installed: (module, pyproject extra); a Keras backend needs its library too.
NEEDS = {"torch": (("torch", "torch"), ("transformers", "torch")), "keras": (("keras", "tf"),)}
BACKEND_NEEDS = {"tensorflow": ("tensorflow", "tf"), "jax": ("jax", "jax"), "torch": ("torch", "torch")}


def needs(framework: str, why: str, backend: str | None = None) -> list[tuple[str, str, str]]:
    """(module, why, extra) for `framework`'s build (on `backend` for keras): what `common.require` checks."""
    out = [(m, why, extra) for m, extra in NEEDS[framework]]
    if framework == "keras":
        module, extra = BACKEND_NEEDS[backend or current_backend()]
        out.append((module, why if backend is None else f"--backend {backend}", extra))
    return out


def current_backend() -> str:
    """This process's Keras backend, without importing Keras when it is not loaded yet."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def runtime(framework: str) -> ModuleType:
    """`bertcnn_torch.runtime` or `bertcnn_tf.runtime` (imports the framework: seconds; its start-up chatter muted)."""
    if framework == "torch":
        import bertcnn_torch.runtime as rt
    elif framework == "keras":
        with quiet_native_stderr():
            import bertcnn_tf.runtime as rt

            rt.probe_devices()  # the first device query logs the GPU-capable wheel's CUDA probe: here, muted
    else:
        raise ValueError(f"framework must be one of {list(FRAMEWORKS)}. Received: {framework!r}")
    return rt


def keras_template(config):
    """The Keras h5 layout of `config`'s model: the `template_of` that `parity.io` takes for Keras files."""
    with quiet_native_stderr():
        from bertcnn_tf.h5_layout import keras_template as probe

        return probe(config)


def forward(framework: str, config, tensors, **kwargs):
    """`framework`'s predictor (numpy inputs -> logits; `return_taps=True` -> taps) holding `tensors`."""
    return runtime(framework).forward(config, tensors, **kwargs)


def set_threads(framework: str, threads: int | None) -> None:
    """Intra-op threads for either build; None keeps the framework's default (all cores).

    On a machine shared with other busy processes, `--threads 1` can win by far:
    PyTorch's OpenMP threads meet at a barrier after every op, and a thread held off
    its core makes every op wait out a scheduler slice (profiled at load ~5 on 2
    cores: 20.6 s with 2 threads vs 4.9 s with 1). On an idle machine all cores win
    (1500 sentences: 12.5 s with 2 threads vs 17.9 s with 1), so that is the default;
    guessing from the load average misfired when runs follow each other.
    """
    if threads:
        runtime(framework).set_threads(threads)


def gpu_unavailable(library: str) -> str | None:
    """None when `library` (torch, tensorflow or jax; a Keras backend) can reach a GPU, else why not.

    Asked of the library itself, without building a model or starting Keras.
    """
    if library == "torch":
        try:
            import torch
        except ImportError:
            return "torch is not installed"
        if not torch.cuda.is_available():
            return f"no GPU found: torch.cuda.is_available() is False (torch {torch.__version__})"
        return None
    if library == "jax":
        try:
            import jax
        except ImportError:
            return "jax is not installed (pip install 'bertcnn[jax]')"
        try:
            return None if jax.devices("gpu") else "no GPU found by jax"
        except RuntimeError:
            return "no GPU found: jax has no GPU backend (install jax[cuda12])"
    with quiet_native_stderr():  # the import's lines, and the CUDA probe's at the first device query
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "no GPU found by TensorFlow (tensorflow-cpu has no CUDA build)"
    return None


def set_matmul_precision(strict: bool, frameworks: tuple[str, ...] = FRAMEWORKS) -> None:
    """strict=True: full float32 everywhere (TF32 off); False: each framework's shipped default."""
    for framework in frameworks:
        runtime(framework).set_matmul_precision(strict)


# Where a CPU has bf16 matmul units: x86 AVX-512 BF16 or AMX, Arm's BF16 extension.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_without_bf16(cpuinfo: str | None = None) -> str | None:
    """The CPU's model name when /proc/cpuinfo shows no bf16 units; None where it has them or cannot tell."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:  # not Linux: no guess
            return None
    flags, name = set(), "this CPU"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
        elif key.strip() == "model name" and value.strip():
            name = value.strip()
    return name if flags and not flags & BF16_FLAGS else None


def bf16_note(framework: str) -> None:
    """Say so on stderr when bf16 compute will run on a CPU that has no bf16 units (emulated: far slower)."""
    cpu = cpu_without_bf16()
    if cpu is None or (framework == "keras" and gpu_unavailable(current_backend()) is None):
        return  # bf16 units, or the Keras build runs on a GPU
    print(f"note: --mixed-precision bf16 on a CPU without bf16 units ({cpu}: /proc/cpuinfo has none of "
          f"{', '.join(sorted(BF16_FLAGS))}): bf16 matmuls are emulated there, far slower than float32; "
          "drop --mixed-precision for speed", file=sys.stderr)  # fmt: skip
