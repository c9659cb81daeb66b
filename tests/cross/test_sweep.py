"""Property-based sweep: every drawn config and batch passes parity in float64 at 1e-12
(TensorFlow backend) and in float32 at 1e-5, using the one tolerance table.

Configs: 1-3 layers, heads dividing hidden, kernel widths including 1 and even widths,
both heads, `mask_padding` on/off. Inputs: any batch size, any 0/1 mask with at least
one real token per row (right, left and holed padding), token types, and sequences
shorter than the widest kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertcnn_tf.runtime import taps as keras_taps
from bertcnn_torch.runtime import taps as torch_taps
from parity.compare import compare_taps
from parity.layout import expected_shapes
from parity.suite import Subject
from parity.tolerance import tolerance_for
from tests.helpers import configs, random_tensors


@st.composite
def config_and_masked_inputs(draw):
    config = draw(configs(max_layers=3))
    batch = draw(st.integers(1, 4))
    width = draw(st.integers(1, config.max_position_embeddings))
    pattern = st.lists(st.booleans(), min_size=width, max_size=width).filter(any)
    mask = np.array([draw(pattern) for _ in range(batch)], dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ids = rng.integers(0, config.vocab_size, size=mask.shape) * mask + config.pad_token_id * (1 - mask)
    types = rng.integers(0, config.type_vocab_size, size=mask.shape) * mask
    inputs = {"input_ids": ids.astype(np.int64), "attention_mask": mask, "token_type_ids": types.astype(np.int64)}
    return config, inputs, draw(st.integers(0, 2**16))


@pytest.mark.slow
@settings(max_examples=12)
@given(config_and_masked_inputs())
def test_every_draw_passes_float64_and_float32(case):
    config, inputs, seed = case
    w = Subject(config, random_tensors(config, seed=seed), inputs, "hypothesis")
    for dtype in ("float64", "float32"):
        ref, (cand, _) = torch_taps(w.config, w.tensors, inputs, dtype), keras_taps(w.config, w.tensors, inputs, dtype)
        run = compare_taps(ref, cand, inputs["attention_mask"], config,
                           tolerance_for(dtype, "cpu"), dtype=dtype, device="cpu", backend="tensorflow")  # fmt: skip
        assert run.passed, (dtype, run.first_divergence, [(t.name, t.max_abs, t.atol) for t in run.taps])


@pytest.mark.slow
@settings(max_examples=8)
@given(config_and_masked_inputs(), st.integers(0, 2**16))
def test_every_draw_has_float64_gradient_parity(case, label_seed):
    """Random ids hit the pad id as a real token and padding reaches the loss without
    mask_padding: the draws that found the pad-row gradient bug."""
    from bertcnn_tf.runtime import grads as keras_grads
    from bertcnn_torch.runtime import grads as torch_grads
    from parity.compare import compare_arrays

    config, inputs, seed = case
    tensors = random_tensors(config, seed=seed)
    labels = np.random.default_rng(label_seed).integers(0, config.num_labels, size=len(inputs["input_ids"]))
    ref, _ = torch_grads(config, tensors, inputs, labels, "float64")
    cand, _ = keras_grads(config, tensors, inputs, labels, "float64")
    tol = tolerance_for("float64", "cpu", "grad")
    run = compare_arrays(ref, cand, list(expected_shapes(config)), tol, prefix="grad/",
                         dtype="float64", device="cpu", backend="tensorflow", check="grad")  # fmt: skip
    assert run.passed, (run.first_divergence, [(t.name, t.max_abs) for t in run.taps if not t.passed])
