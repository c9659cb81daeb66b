"""The Keras side of a parity run, on any Keras backend, in this process or a child.

The Keras backend is process-global (fixed at `import keras`), so a backend other
than this process's runs in a child (`python -m parity.backends JOB.json`) with
`KERAS_BACKEND` set. Parent and child exchange JSON and `.npz` only (loaded with
`allow_pickle=False`): nothing executable crosses the boundary.

Each task returns arrays plus `meta`: the backend, the dtypes Keras actually
computed and stored in, and any workaround applied, so a float64 request that
Keras silently ran in float32 is reported as such instead of as a float64 result.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig

BACKENDS = ("tensorflow", "jax", "torch")
TASKS = ("taps", "grad", "train")


def current_backend() -> str:
    """This process's Keras backend, without importing Keras when it is not loaded yet."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


# -- workarounds -------------------------------------------------------------------------


def _keep_float64() -> str | None:
    """Stop Keras demoting float64 to float32 inside ops on the jax and torch backends.

    Keras's dtype lattice maps float64 -> float32 in `result_type` on every backend but
    TensorFlow ("to be aligned with JAX's default"), so e.g. `ops.tanh` and
    `ops.layer_normalization` on float64 inputs compute in float32 and cast back: the
    outputs *say* float64 but carry float32 error (measured 1.8e-6 on a LayerNorm). With
    this mapping removed those ops compute in float64, which JAX honours once x64 is on.
    """
    import keras
    from keras.src.backend.common import dtypes

    if keras.backend.backend() == "tensorflow":
        return None
    dtypes.BIT64_TO_BIT32_DTYPE.pop("float64", None)
    return _FLOAT64_NOTE


_FLOAT64_NOTE = (
    "Keras demotes float64 to float32 in ops on jax/torch (dtypes.BIT64_TO_BIT32_DTYPE); "
    "that demotion was switched off for this run"
)


def _keras_device(device: str):
    import keras

    return keras.device("gpu:0" if device.startswith("cuda") else "cpu")


def build_keras(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], dtype: str):
    """The Keras build in `dtype` holding the canonical `tensors`."""
    if dtype == "float64":
        _keep_float64()
    from bertcnn_tf import BertCNN

    model = BertCNN(config, dtype=dtype)
    model.set_canonical_weights(dict(tensors))
    return model


def _meta(model, arrays: Mapping[str, np.ndarray], dtype: str) -> dict:
    import keras

    computed = sorted({a.dtype.name for a in arrays.values() if a.dtype.kind == "f" or a.dtype.name == "bfloat16"})
    meta = {
        "backend": keras.backend.backend(),
        "requested_dtype": dtype,
        "computed_dtypes": computed,
        "variable_dtypes": sorted({str(v.dtype) for v in model.weights}),
        "notes": [],
    }
    if dtype == "float64" and keras.backend.backend() != "tensorflow":
        from keras.src.backend.common import dtypes

        if "float64" not in dtypes.BIT64_TO_BIT32_DTYPE:
            meta["notes"].append(_FLOAT64_NOTE)
    if keras.backend.backend() == "jax":
        import jax

        meta["jax_enable_x64"] = bool(jax.config.jax_enable_x64)
    return meta


# -- tasks -----------------------------------------------------------------------------------
def keras_taps(config, tensors, inputs, dtype: str = "float32", device: str = "cpu"):
    """Every tap of the Keras build, as numpy, plus meta."""
    import keras
    from keras import ops

    from parity.inputs import check_inputs

    with _keras_device(device):
        model = build_keras(config, tensors, dtype)
        if keras.backend.backend() == "jax":
            # One compiled graph, as Keras runs JAX in fit/predict (op-by-op is ~5x slower here).
            import jax

            check_inputs(inputs["input_ids"], inputs.get("attention_mask"), inputs.get("token_type_ids"), config)
            tv, ntv = [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]
            taps = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, **x, training=False, return_taps=True)[0])(
                tv, ntv, dict(inputs)
            )
        else:
            taps = model(**inputs, training=False, return_taps=True)
        out = {k: np.asarray(ops.convert_to_numpy(v)) for k, v in taps.items()}
    meta = _meta(model, out, dtype)
    # npz has no bfloat16; float32 holds every bfloat16 value exactly.
    return {k: v.astype(np.float32) if v.dtype.name == "bfloat16" else v for k, v in out.items()}, meta


def keras_grads(config, tensors, inputs, labels, dtype: str = "float32", device: str = "cpu"):
    """d(mean cross-entropy)/d(every weight), dropout off, as canonical (torch-layout) arrays."""
    import keras
    from keras import ops

    from parity.layout import keras_to_torch

    backend = keras.backend.backend()
    with _keras_device(device):
        model = build_keras(config, tensors, dtype)
        variables = model.trainable_variables

        def loss_of(logits):
            y = ops.convert_to_tensor(labels)
            return ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

        if backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_of(model(**inputs, training=False))
            grads = [None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        elif backend == "jax":
            import jax

            trainable = [v.value for v in variables]
            fixed = [v.value for v in model.non_trainable_variables]

            def f(tv):
                logits, _ = model.stateless_call(tv, fixed, **inputs, training=False)
                return loss_of(logits)

            loss, grads = jax.jit(jax.value_and_grad(f))(trainable)
        elif backend == "torch":
            loss = loss_of(model(**inputs, training=False))
            loss.backward()
            grads = [v.value.grad for v in variables]
        else:
            raise ValueError(f"Gradients are implemented for {BACKENDS}. Received: backend {backend!r}")
        # Weights the loss does not reach (BERT's pooler, frozen in Keras) have gradient exactly zero.
        by_path = {_rel_path(model, v): np.zeros(v.shape, v.dtype) for v in model.weights}
        for v, g in zip(variables, grads, strict=True):
            if g is not None:
                by_path[_rel_path(model, v)] = ops.convert_to_numpy(g)
    out = keras_to_torch(by_path, config)
    meta = _meta(model, out, dtype)
    meta["loss"] = float(ops.convert_to_numpy(loss))
    return out, meta


def keras_train(config, tensors, inputs, labels, *, recipe: dict):
    """The real Keras trainer (`bertcnn_tf.train`: compile/fit, TorchAdamW) on these rows."""
    from bertcnn_tf.train import KerasTrainer
    from parity.train import encoded_rows, flat, start
    from parity.training import TrainingRecipe
    from parity.training.loop import Run

    r = TrainingRecipe.from_dict(recipe)
    trainer = KerasTrainer(Run(start(config, tensors, r, len(labels), "keras"), encoded_rows(inputs), labels))
    snap = trainer.fit()
    out = flat(snap)
    meta = _meta(trainer.model, snap.tensors, r.dtype)
    meta["metrics"] = snap.metrics
    return out, meta


def _rel_path(model, variable) -> str:
    prefix = model.name + "/"
    return variable.path[len(prefix) :] if variable.path.startswith(prefix) else variable.path


def run_task(task: dict, config, tensors, inputs, labels=None):
    kind = task["task"]
    if task.get("device", "cpu").startswith("cuda"):
        # Here, not only in the child: a task run in this process (its backend is ours) needs the
        # tier's matmul precision too, or a "strict" tier would run with TF32 (JAX's GPU default).
        from parity.devices import set_matmul_precision

        set_matmul_precision(strict=task.get("strict", True), frameworks=("keras",))
    if kind == "taps":
        return keras_taps(config, tensors, inputs, task["dtype"], task.get("device", "cpu"))
    if kind == "grad":
        return keras_grads(config, tensors, inputs, labels, task["dtype"], task.get("device", "cpu"))
    if kind == "train":
        return keras_train(config, tensors, inputs, labels, recipe=task["recipe"])
    raise ValueError(f"Unknown task; expected one of {TASKS}. Received: {kind!r}")


# -- parent side ---------------------------------------------------------------------------
def keras_side(
    backend: str,
    tasks: list[dict],
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    timeout: float = 900,
    jax_x64: bool = True,
) -> list[tuple[dict[str, np.ndarray], dict]]:
    """Run `tasks` on the Keras `backend`: in this process when it is ours, else in one child."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown Keras backend; expected one of {BACKENDS}. Received: {backend!r}")
    if backend == current_backend():
        return [run_task(t, config, tensors, inputs, labels) for t in tasks]
    with tempfile.TemporaryDirectory(prefix="bertcnn-parity-") as tmp:
        d = Path(tmp)
        np.savez(d / "tensors.npz", **tensors)
        np.savez(d / "inputs.npz", **inputs)
        if labels is not None:
            np.save(d / "labels.npy", np.asarray(labels))
        (d / "job.json").write_text(json.dumps({"config": config.to_dict(), "tasks": tasks}), encoding="utf-8")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        if backend == "jax" and jax_x64 and any(t["dtype"] == "float64" for t in tasks):
            # Workaround: without x64 JAX truncates float64 to float32 (with only a warning).
            env["JAX_ENABLE_X64"] = "1"
        elif backend == "jax" and not jax_x64:
            env.pop("JAX_ENABLE_X64", None)
        proc = subprocess.run(
            [sys.executable, "-m", "parity.backends", str(d)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"Keras {backend} child failed (exit {proc.returncode}):\n{tail}")
        results = []
        for i in range(len(tasks)):
            with np.load(d / f"out{i}.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            results.append((arrays, json.loads((d / f"meta{i}.json").read_text(encoding="utf-8"))))
        return results


def _child(directory: str) -> int:
    d = Path(directory)
    job = json.loads((d / "job.json").read_text(encoding="utf-8"))
    config = BertCnnConfig.from_dict(job["config"])
    with np.load(d / "tensors.npz", allow_pickle=False) as z:
        tensors = {k: z[k] for k in z.files}
    with np.load(d / "inputs.npz", allow_pickle=False) as z:
        inputs = {k: z[k] for k in z.files}
    labels = np.load(d / "labels.npy", allow_pickle=False) if (d / "labels.npy").is_file() else None
    for i, task in enumerate(job["tasks"]):
        arrays, meta = run_task(task, config, tensors, inputs, labels)
        np.savez(d / f"out{i}.npz", **arrays)
        (d / f"meta{i}.json").write_text(json.dumps(meta), encoding="utf-8")
    return 0


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):
        sys.exit(_child(sys.argv[1]))
