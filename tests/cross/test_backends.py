"""The Keras build on the jax and torch backends, each in its own process, against PyTorch.

Child processes take seconds to start, so each does several tasks: float32 at 1e-5 and
float64 at 1e-12 forward, float64 gradients at 1e-10, all from the tolerance table.
JAX's x64 switch is process-global: float32 is checked the way JAX users run it (x64
off), in the same child that shows a float64 request there is reported, not passed.
"""

from __future__ import annotations

import pytest

from bertcnn_torch.runtime import grads as torch_grads
from bertcnn_torch.runtime import taps as torch_taps
from parity.commands.keras_child import keras_side
from parity.compare import compare_arrays, compare_taps
from parity.config import BertCnnConfig
from parity.inputs import seeded_labels
from parity.layout import expected_shapes
from parity.suite import Subject, judge
from parity.tolerance import tolerance_for
from tests.helpers import TINY, random_inputs, random_tensors

TASKS = [
    {"task": "taps", "dtype": "float32"},
    {"task": "taps", "dtype": "float64"},
    {"task": "grad", "dtype": "float64"},
]


def _check(w, labels, backend, tasks, results):
    for task, (arrays, meta) in zip(tasks, results, strict=True):
        dtype = task["dtype"]
        assert meta["backend"] == backend and meta["computed_dtypes"] == [dtype]
        if task["task"] == "taps":
            ref = torch_taps(w.config, w.tensors, w.inputs, dtype)
            run = compare_taps(ref, arrays, w.inputs["attention_mask"], w.config,
                               tolerance_for(dtype, "cpu"), dtype=dtype, device="cpu", backend=backend)  # fmt: skip
        else:
            ref, _ = torch_grads(w.config, w.tensors, w.inputs, labels, dtype)
            run = compare_arrays(ref, arrays, list(expected_shapes(w.config)), tolerance_for(dtype, "cpu", "grad"),
                                 prefix="grad/", dtype=dtype, device="cpu", backend=backend, check="grad")  # fmt: skip
        run = judge(run, meta)
        assert run.passed, (task, run.limitation, run.first_divergence)


def _case():
    config = BertCnnConfig(**TINY, head_hidden_size=7, mask_padding=False)
    w = Subject(config, random_tensors(config, seed=7), random_inputs(config, [7, 4, 2], seed=7), "tiny")
    return w, seeded_labels(config, 3, 7)


@pytest.mark.slow
def test_keras_torch_backend_matches_pytorch():
    w, labels = _case()
    _check(w, labels, "torch", TASKS, keras_side("torch", TASKS, w.config, w.tensors, w.inputs, labels))


@pytest.mark.slow
def test_keras_jax_backend_float64_with_x64_matches_pytorch():
    pytest.importorskip("jax", reason="the jax backend needs the `jax` extra: pip install 'bertcnn[jax]'")
    w, labels = _case()
    tasks = TASKS[1:]
    _check(w, labels, "jax", tasks, keras_side("jax", tasks, w.config, w.tensors, w.inputs, labels))


@pytest.mark.slow
def test_keras_jax_backend_float32_passes_and_float64_without_x64_is_not_passed_off():
    pytest.importorskip("jax", reason="the jax backend needs the `jax` extra: pip install 'bertcnn[jax]'")
    w, labels = _case()
    tasks = [{"task": "taps", "dtype": "float32"}, {"task": "taps", "dtype": "float64"}]
    f32, (arrays, meta) = keras_side("jax", tasks, w.config, w.tensors, w.inputs, labels, jax_x64=False)
    _check(w, labels, "jax", tasks[:1], [f32])
    ref = torch_taps(w.config, w.tensors, w.inputs, "float64")
    run = compare_taps(ref, arrays, w.inputs["attention_mask"], w.config,
                       tolerance_for("float64", "cpu"), dtype="float64", device="cpu", backend="jax")  # fmt: skip
    run = judge(run, meta)
    assert meta["computed_dtypes"] == ["float32"]
    assert not run.passed and "jax_enable_x64 is off" in run.limitation


def test_unknown_backend_is_refused():
    w, _ = _case()
    with pytest.raises(ValueError, match=r"Received: 'mxnet'"):
        keras_side("mxnet", TASKS, w.config, w.tensors, w.inputs)
