"""Gradient parity: both builds' d(cross-entropy)/d(weight), mapped through the weight table.

The Keras gradients come back in Keras layout and go through the table's inverse
ops, so a transposed kernel or a conv axis order that happens to give the same
forward pass on symmetric data would still show up here.
"""

from __future__ import annotations

import numpy as np
import pytest

from bertcnn_tf.runtime import grads as keras_grads
from bertcnn_torch.runtime import grads as torch_grads
from parity.compare import compare_arrays
from parity.config import BertCnnConfig
from parity.inputs import seeded_labels
from parity.layout import expected_shapes
from parity.tolerance import tolerance_for
from tests.helpers import TINY, random_inputs, random_tensors


def _grad_run(config, dtype, tensors_k=None, seed=0):
    tensors = random_tensors(config, seed=seed)
    inputs = random_inputs(config, [7, 4, 2], seed=seed)
    labels = seeded_labels(config, 3, seed)
    ref, loss_t = torch_grads(config, tensors, inputs, labels, dtype)
    cand, meta = keras_grads(config, tensors_k or tensors, inputs, labels, dtype)
    run = compare_arrays(ref, cand, list(expected_shapes(config)), tolerance_for(dtype, "cpu", "grad"), prefix="grad/",
                         dtype=dtype, device="cpu", backend=meta["backend"], check="grad")  # fmt: skip
    return run, ref, loss_t, meta


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_agree_for_every_weight(head_config, dtype):
    run, ref, loss_t, meta = _grad_run(head_config, dtype)
    assert run.passed, run.first_divergence
    assert [t.name for t in run.taps] == [f"grad/{n}" for n in list(expected_shapes(head_config))]
    assert abs(loss_t - meta["loss"]) <= (1e-12 if dtype == "float64" else 1e-5)
    # Not vacuous: every weight the loss reaches has a real gradient (the pooler does not).
    for name, g in ref.items():
        assert (np.abs(g).max() == 0) == name.startswith("bert.pooler."), name


def test_gradients_without_padding_mask():
    run, *_ = _grad_run(BertCnnConfig(**TINY, mask_padding=False), "float64", seed=4)
    assert run.passed, run.first_divergence


def test_a_weight_difference_shows_in_its_own_gradient_first():
    config = BertCnnConfig(**TINY)
    other = random_tensors(config, seed=0)
    other["fc.weight"] = other["fc.weight"] * 1.01
    run, *_ = _grad_run(config, "float64", tensors_k=other)
    # Backprop runs from fc: the first failing gradient in table order is an encoder weight,
    # but fc.bias (which depends only on softmax - onehot) must fail too.
    failed = {t.name for t in run.taps if not t.passed}
    assert "grad/fc.bias" in failed and run.first_divergence is not None
