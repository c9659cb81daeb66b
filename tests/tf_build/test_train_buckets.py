"""Width buckets (the Keras trainer on JAX pads batches to multiples of 16): logits do not move.

The Keras model in float64 on this process's backend: a batch right-padded with masked
positions gives the logits of the unpadded batch to float64 rounding; the same padding
left unmasked (attention_mask 1) changes them, so the check can fail.
"""

from __future__ import annotations

import numpy as np

from bertcnn_tf.runtime import build
from bertcnn_tf.train import WIDTH_BUCKET, bucketed
from parity.config import BertCnnConfig
from tests.helpers import TINY, random_tensors


def _inputs():
    rng = np.random.default_rng(3)
    lengths = [7, 3, 5]
    ids = np.zeros((3, 7), np.int64)
    mask = np.zeros((3, 7), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, TINY["vocab_size"], size=n)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def test_bucketed_pads_only_masked_positions_up_to_the_cap():
    x = _inputs()
    b = bucketed(x, WIDTH_BUCKET, cap=512, pad_token_id=0)
    assert b["input_ids"].shape == (3, 16) and not b["attention_mask"][:, 7:].any()
    np.testing.assert_array_equal(b["input_ids"][:, :7], x["input_ids"])
    assert bucketed(x, 16, cap=10, pad_token_id=0)["input_ids"].shape == (3, 10)  # never past the position table
    assert bucketed(x, 7, cap=512, pad_token_id=0) is x


def test_padding_to_a_bucket_leaves_the_logits_alone():
    config = BertCnnConfig(**TINY)
    model = build(config, random_tensors(config, seed=4, dtype=np.float64), "float64")
    x = _inputs()
    b = bucketed(x, WIDTH_BUCKET, cap=config.max_position_embeddings, pad_token_id=config.pad_token_id)
    ref, got = (np.asarray(model(v, training=False)) for v in (x, b))
    assert np.abs(ref - got).max() <= 1e-12
    unmasked = dict(b, attention_mask=np.where(np.arange(16) < 7, b["attention_mask"], 1))
    assert np.abs(ref - np.asarray(model(unmasked, training=False))).max() > 1e-6
