"""What the parity suite and the command line ask of the Keras build, in numpy terms, on any Keras backend.

Every function takes and returns numpy (canonical tensors, inputs, logits, taps). Each
task returns arrays plus `meta`: the backend, the dtypes Keras actually computed and
stored in, and any workaround applied, so a float64 request that Keras silently ran in
float32 is reported as such instead of as a float64 result. The Keras backend is fixed
at `import keras`; `parity.commands.keras_child` runs these tasks in a child process
for a backend other than the parent's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import numpy as np
from keras import ops

from bertcnn_tf.dtypes import FLOAT64_NOTE, float64_kept, keep_float64
from bertcnn_tf.losses import per_row_loss
from bertcnn_tf.model import BertCNN
from parity.config import BertCnnConfig
from parity.inputs import check_inputs
from parity.layout import keras_to_torch
from parity.training.parity import encoded_rows, flat, start
from parity.training.recipe import TrainingRecipe

TASKS = ("taps", "grad", "train")
Forward = Callable[..., np.ndarray]  # inputs -> (B, num_labels) logits; return_taps=True -> taps


def _keras_device(device: str):
    return keras.device("gpu:0" if device.startswith("cuda") else "cpu")


def build(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], dtype: str):
    """The Keras build in `dtype` holding the canonical `tensors`."""
    if dtype == "float64":
        keep_float64()
    model = BertCNN(config, dtype=dtype)
    model.set_canonical_weights(dict(tensors))
    return model


def _meta(model, arrays: Mapping[str, np.ndarray], dtype: str) -> dict:
    computed = sorted({a.dtype.name for a in arrays.values() if a.dtype.kind == "f" or a.dtype.name == "bfloat16"})
    meta = {
        "backend": keras.backend.backend(),
        "requested_dtype": dtype,
        "computed_dtypes": computed,
        "variable_dtypes": sorted({str(v.dtype) for v in model.weights}),
        "notes": [],
    }
    if dtype == "float64" and keras.backend.backend() != "tensorflow" and float64_kept():
        meta["notes"].append(FLOAT64_NOTE)
    if keras.backend.backend() == "jax":
        import jax

        meta["jax_enable_x64"] = bool(jax.config.jax_enable_x64)
    return meta


# -- tasks -----------------------------------------------------------------------------------
def taps(config, tensors, inputs, dtype: str = "float32", device: str = "cpu", *, mixed: bool = False):
    """Every tap of the Keras build, as numpy, plus meta.

    `mixed`: Keras' `mixed_bfloat16` policy, float32 variables and bf16 compute (`dtype` must be bfloat16).
    """
    with _keras_device(device):
        model = build(config, tensors, "mixed_bfloat16" if mixed else dtype)
        if keras.backend.backend() == "jax":
            # One compiled graph, as Keras runs JAX in fit/predict (op-by-op is ~5x slower here).
            import jax

            check_inputs(inputs["input_ids"], inputs.get("attention_mask"), inputs.get("token_type_ids"), config)
            tv, ntv = [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]
            found = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, **x, training=False, return_taps=True)[0])(
                tv, ntv, dict(inputs)
            )
        else:
            found = model(**inputs, training=False, return_taps=True)
        out = {k: np.asarray(ops.convert_to_numpy(v)) for k, v in found.items()}
    meta = _meta(model, out, dtype)
    # npz has no bfloat16; float32 holds every bfloat16 value exactly.
    return {k: v.astype(np.float32) if v.dtype.name == "bfloat16" else v for k, v in out.items()}, meta


def grads(config, tensors, inputs, labels, dtype: str = "float32", device: str = "cpu"):
    """d(mean cross-entropy)/d(every weight), dropout off, as canonical (torch-layout) arrays."""
    backend = keras.backend.backend()
    with _keras_device(device):
        model = build(config, tensors, dtype)
        variables = model.trainable_variables

        rows = per_row_loss(config.multi_label, None)  # the model's own loss: softmax CE, or multi-label BCE

        def loss_of(logits):
            return ops.mean(rows(ops.convert_to_tensor(labels), logits))

        if backend == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_of(model(**inputs, training=False))
            gradients = [None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
        elif backend == "jax":
            import jax

            trainable = [v.value for v in variables]
            fixed = [v.value for v in model.non_trainable_variables]

            def f(tv):
                logits, _ = model.stateless_call(tv, fixed, **inputs, training=False)
                return loss_of(logits)

            loss, gradients = jax.jit(jax.value_and_grad(f))(trainable)
        elif backend == "torch":
            loss = loss_of(model(**inputs, training=False))
            loss.backward()
            gradients = [v.value.grad for v in variables]
        else:
            raise ValueError(f"Gradients are implemented for tensorflow, jax, torch. Received: backend {backend!r}")
        # Weights the loss does not reach (BERT's pooler, frozen in Keras) have gradient exactly zero.
        by_path = {_rel_path(model, v): np.zeros(v.shape, v.dtype) for v in model.weights}
        for v, g in zip(variables, gradients, strict=True):
            if g is not None:
                by_path[_rel_path(model, v)] = ops.convert_to_numpy(g)
    out = keras_to_torch(by_path, config)
    meta = _meta(model, out, dtype)
    meta["loss"] = float(ops.convert_to_numpy(loss))
    return out, meta


def train_parity(config, tensors, inputs, labels, *, recipe: dict):
    """The real Keras trainer (`bertcnn_tf.train`: compile/fit, TorchAdamW) on these rows."""
    from bertcnn_tf.train import KerasTrainer
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
    """One task of a parity run ({"task": taps|grad|train, "dtype", "device", ...}): (arrays, meta)."""
    kind = task["task"]
    if task.get("device", "cpu").startswith("cuda"):
        # Here, not only in the child: a task run in this process (its backend is ours) needs the
        # tier's matmul precision too, or a "strict" tier would run with TF32 (JAX's GPU default).
        set_matmul_precision(strict=task.get("strict", True))
    if kind == "taps":
        return taps(
            config, tensors, inputs, task["dtype"], task.get("device", "cpu"), mixed=task.get("tier") == "mixed"
        )
    if kind == "grad":
        return grads(config, tensors, inputs, labels, task["dtype"], task.get("device", "cpu"))
    if kind == "train":
        return train_parity(config, tensors, inputs, labels, recipe=task["recipe"])
    raise ValueError(f"Unknown task; expected one of {TASKS}. Received: {kind!r}")


def predictor(model: BertCNN, *, compiled: bool = True, jit_compile: bool = False) -> Forward:
    """numpy in, numpy out, on a compiled graph on TensorFlow, else eager (other backends: not measured yet).

    Eager Keras runs op by op through Python: on this CPU a MiniLM batch takes 2-3x
    longer than the same graph. On TensorFlow the graph is traced once for
    (None, None) inputs, so no length or batch size retraces; XLA (`jit_compile`)
    specialises on shapes instead (pair it with `pad_multiple`). Inputs are checked
    here in numpy, once per batch, because a traced call cannot see values.
    """
    names = ("input_ids", "attention_mask", "token_type_ids")
    graphs = {}  # by input rank: 2 (texts), 3 (documents read as windows)
    on_tf = compiled and keras.backend.backend() == "tensorflow"

    def compiled_call(x):
        rank = x["input_ids"].ndim
        if rank not in graphs:
            import tensorflow as tf

            spec = {k: tf.TensorSpec((None,) * rank, tf.int64) for k in names}
            signature = None if jit_compile else [spec]
            graphs[rank] = tf.function(lambda x: model(**x, training=False), input_signature=signature,
                                       jit_compile=jit_compile)  # fmt: skip
        return graphs[rank](x)

    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False):
        if return_taps or not on_tf:
            out = model(**inputs, training=False, return_taps=return_taps)
            if return_taps:
                return {k: _host(v) for k, v in out.items()}
            return _host(out)
        check_inputs(inputs["input_ids"], inputs.get("attention_mask"), inputs.get("token_type_ids"), model.config)
        ids = np.asarray(inputs["input_ids"], dtype=np.int64)
        x = {
            "input_ids": ids,
            "attention_mask": np.asarray(inputs.get("attention_mask", np.ones_like(ids)), dtype=np.int64),
            "token_type_ids": np.asarray(inputs.get("token_type_ids", np.zeros_like(ids)), dtype=np.int64),
        }
        return _host(compiled_call(x))

    return forward


def _host(x) -> np.ndarray:
    """A result as numpy; bfloat16 (mixed precision) as float32, which holds it exactly."""
    a = np.asarray(ops.convert_to_numpy(x))
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def forward(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], *, compiled: bool = True,
            jit_compile: bool = False, mixed: bool = False) -> Forward:  # fmt: skip
    """`predictor` of the Keras build holding `tensors` (the slow part: builds the model).

    `mixed`: Keras' `mixed_bfloat16` policy, float32 variables and bf16 compute (`--mixed-precision bf16`).
    """
    kwargs = {"dtype": "mixed_bfloat16"} if mixed else {}
    model = BertCNN._from_tensors(config, dict(tensors), **kwargs)
    return predictor(model, compiled=compiled, jit_compile=jit_compile)


def export(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], fmt: str, path: Path, *,
           opset: int | None, text=None) -> dict:  # fmt: skip
    """`fmt` (onnx via tf2onnx, saved_model, litert) from the float32 Keras build holding `tensors`.

    `text` (a `parity.serving.text_spec.TextSpec`): a SavedModel also takes strings (`serving_text`)."""
    from bertcnn_tf import export as tf_export

    model = BertCNN._from_tensors(config, dict(tensors), dtype="float32")
    if fmt == "onnx":
        return tf_export.export_onnx(model, path, opset=opset)
    if fmt == "saved_model":
        return tf_export.export_saved_model(model, path, text=text)
    return tf_export.export_litert(model, path)


def probe_devices() -> None:
    """Have TensorFlow find its devices now. The `tensorflow` wheel (GPU-capable) logs its CUDA probe at the first
    device query (on a machine with no GPU, an E line, `failed call to cuInit`), straight to file descriptor 2;
    `parity.commands.builds.runtime` calls this where that is muted. Threads can still be set after it (the
    runtime context is not started)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices()


def set_threads(threads: int) -> None:
    """Intra-op threads of the backend's runtime."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(threads)


def set_matmul_precision(strict: bool) -> None:
    """strict=True: full float32 matmuls on the GPU (TF32 off); False: the backend's shipped default."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(not strict)
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest" if strict else None)
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = not strict


def train(run, **kwargs):
    """The Keras trainer (`bertcnn_tf.train`: compile/fit) on a `parity.training.loop.Run`; the final snapshot."""
    from bertcnn_tf.train import train as fit

    return fit(run, **kwargs)
