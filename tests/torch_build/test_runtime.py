"""bertcnn_torch.runtime.predictor on a bfloat16 model: float32 numpy back, as numpy has no bfloat16."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")


def test_predictor_of_a_bfloat16_model_returns_float32_logits_and_taps(tiny_config, tiny_inputs):
    from bertcnn_torch.runtime import build, predictor
    from tests.helpers import random_tensors

    tensors = random_tensors(tiny_config)
    fp32 = predictor(build(tiny_config, tensors))(tiny_inputs)
    forward = predictor(build(tiny_config, tensors, "bfloat16"))
    bf16 = forward(tiny_inputs)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    np.testing.assert_allclose(bf16, fp32, atol=0.1)  # bf16's 8-bit mantissa, not garbage
    assert not np.array_equal(bf16, fp32)  # and really computed in bf16
    taps = forward(tiny_inputs, return_taps=True)
    assert all(v.dtype == np.float32 for v in taps.values())
