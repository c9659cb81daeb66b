"""Training parity: Keras `compile`/`fit` vs a plain PyTorch loop, plain SGD, dropout off."""

from __future__ import annotations

import numpy as np
import pytest

from parity.backends import keras_train
from parity.compare import compare_arrays
from parity.config import BertCnnConfig
from parity.grad import grad_names
from parity.tolerance import tolerance_for
from parity.train import DEFAULT_LR, check_lr, torch_train
from tests.conftest import TINY, random_inputs, random_tensors

STEPS, BATCH = 4, 3


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_n_sgd_steps_land_on_the_same_checkpoint(dtype):
    config = BertCnnConfig(**TINY, head_hidden_size=7)
    tensors = random_tensors(config, seed=2)
    inputs = random_inputs(config, [7, 4, 2, 5, 1, 6, 3, 7, 2, 4, 6, 5], seed=2)  # 4 batches of 3
    labels = np.random.default_rng(2).integers(0, config.num_labels, size=STEPS * BATCH)
    ref, losses = torch_train(config, tensors, inputs, labels, batch_size=BATCH, lr=DEFAULT_LR, dtype=dtype)
    cand, meta = keras_train(config, tensors, inputs, labels, batch_size=BATCH, lr=DEFAULT_LR, dtype=dtype)
    run = compare_arrays(ref, cand, grad_names(config), tolerance_for(dtype, "cpu", "train"), prefix="train/",
                         dtype=dtype, device="cpu", backend=meta["backend"], check="train")  # fmt: skip
    assert run.passed, [(t.name, t.max_abs, t.atol) for t in run.taps if not t.passed]
    assert meta["computed_dtypes"] == [dtype]
    # Not vacuous: training moved the head and the encoder well beyond the tolerance.
    for name in ("fc.weight", "convs.0.weight", "bert.encoder.layer.1.output.dense.weight"):
        assert np.abs(ref[name] - tensors[name]).max() > 1e-3, name
    # Keras reports the epoch's mean loss through a float32 `Mean` metric (whatever the
    # model's dtype: measured 1.8e-8 off in float64), so it is checked at float32 precision.
    assert abs(np.mean(losses) - meta["loss"][0]) <= 1e-6 * max(1.0, abs(np.mean(losses)))


def test_learning_rate_must_be_exact_in_float32():
    with pytest.raises(ValueError, match=r"float32.*Received: 0\.1"):
        check_lr(0.1)
    check_lr(0.0625)


def test_pad_embedding_row_is_frozen_in_both_builds_like_padding_idx():
    """HF's nn.Embedding(padding_idx) never updates the pad row; with mask_padding=False
    padding reaches the loss, so a Keras build without that rule drifts (3e-2 in 1 step)."""
    config = BertCnnConfig(**TINY, mask_padding=False)
    tensors = random_tensors(config, seed=4)
    inputs = random_inputs(config, [7, 4, 2, 3, 5, 1], seed=4)
    labels = np.random.default_rng(4).integers(0, config.num_labels, size=6)
    ref, _ = torch_train(config, tensors, inputs, labels, batch_size=3, dtype="float64")
    cand, _ = keras_train(config, tensors, inputs, labels, batch_size=3, lr=DEFAULT_LR, dtype="float64")
    name, pad = "bert.embeddings.word_embeddings.weight", config.pad_token_id
    np.testing.assert_array_equal(ref[name][pad], tensors[name][pad].astype(np.float64))
    np.testing.assert_array_equal(cand[name][pad], ref[name][pad])
    tol = tolerance_for("float64", "cpu", "train")
    assert np.abs(cand[name] - ref[name]).max() <= tol.bound(name, float(np.abs(ref[name]).max()))
