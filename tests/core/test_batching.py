"""Batching wastes nothing and changes nothing: length-sorted batches, any grouping, same logits.

The models pool only over windows of real tokens, so a text's logits must not depend
on which texts share its batch or how wide the batch is padded. Checked here by
running the same texts under several groupings (one at a time, fixed counts, token
budgets, bucketed widths, shuffled input order) through both builds.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.batching import bucket_width, plan_batches, predict_logits
from parity.config import BertCnnConfig
from parity.io.backbone import embedded_backbone_dir
from parity.tokenize import Tokenizer
from tests.helpers import TINY, random_tensors


@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=80),
    batch_size=st.integers(1, 40),
    max_tokens=st.one_of(st.none(), st.integers(1, 2000)),
)
def test_plan_batches_covers_each_index_once_within_limits_as_length_neighbours(lengths, batch_size, max_tokens):
    batches = plan_batches(lengths, batch_size=batch_size, max_tokens=max_tokens)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    lengths = np.asarray(lengths)
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * lengths[b].max() <= max_tokens
    # Neighbours: each batch's lengths sit between the previous batch's and the next one's.
    for a, b in itertools.pairwise(batches):
        assert lengths[a].max() <= lengths[b].min()
    # Nothing wasted: a batch is cut only when the next row would break a limit.
    for a, b in itertools.pairwise(batches):
        grown = len(a) + 1
        assert grown > batch_size or (max_tokens is not None and grown * lengths[b[0]] > max_tokens)


def test_plan_batches_rejects_bad_limits():
    with pytest.raises(ValueError, match=r"batch_size must be >= 1\. Received: 0"):
        plan_batches([3, 4], batch_size=0)
    with pytest.raises(ValueError, match=r"max_tokens must be >= 1.*Received: -5"):
        plan_batches([3, 4], max_tokens=-5)


def test_bucket_width_rounds_up_but_never_past_the_cap():
    assert [bucket_width(w, 16, 128) for w in (1, 16, 17, 120, 128)] == [16, 16, 32, 128, 128]
    assert bucket_width(120, 16, 121) == 121


TEXTS = [
    "Yes.",
    "The value for the built-in variable is determined when the interpreter starts.",
    "Assignment is defined recursively depending on the form of the target (list).",
    "Note that it is unnecessary to include the source code for the expression that failed in the error "
    "message; it will be displayed as part of the stack trace, which is long enough to matter here.",
    "Short one.",
    "An assignment statement evaluates the expression list (remember that this can be a single expression "
    "or a comma-separated list, the latter yielding a tuple) and assigns the single resulting object to "
    "each of the target lists, from left to right.",
    "Hi",
    "These equivalences assume that the names refer to the built-in variables with those names.",
    "If the target list is a single target with no trailing comma, the object is assigned to that target.",
]


@pytest.fixture(scope="module")
def tiny_real_vocab():
    """Tiny random weights with the real tokenizer's vocabulary: fast, yet real token ids."""
    config = BertCnnConfig(**{**TINY, "vocab_size": 30522, "max_position_embeddings": 64})
    tokenizer = Tokenizer(embedded_backbone_dir(), max_length=64)
    return config, random_tensors(config, seed=3), tokenizer


def forward_for(framework: str, config, tensors):
    if framework == "torch":
        from bertcnn_torch import BertCNN
        from bertcnn_torch.runtime import predictor as torch_predictor

        return torch_predictor(BertCNN._from_tensors(config, tensors))
    from bertcnn_tf import BertCNN
    from bertcnn_tf.runtime import predictor as keras_predictor

    return keras_predictor(BertCNN._from_tensors(config, tensors))


GROUPINGS = {
    "batch 32": dict(batch_size=32),
    "batch 4": dict(batch_size=4),
    "budget 60 tokens": dict(batch_size=32, max_tokens=60),
    "widths padded to 16s": dict(batch_size=3, pad_multiple=16),
}


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_logits_do_not_depend_on_how_texts_are_batched(framework, tiny_real_vocab):
    config, tensors, tokenizer = tiny_real_vocab
    forward = forward_for(framework, config, tensors)
    alone = predict_logits(forward, tokenizer, TEXTS, batch_size=1)  # no padding at all: the reference
    assert alone.shape == (len(TEXTS), config.num_labels)
    for name, kwargs in GROUPINGS.items():
        got = predict_logits(forward, tokenizer, TEXTS, **kwargs)
        # Float32 matmuls block differently per shape; measured differences are ~1e-7 here.
        np.testing.assert_allclose(got, alone, rtol=0, atol=2e-6, err_msg=name)
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = predict_logits(forward, tokenizer, [TEXTS[i] for i in perm], batch_size=4)
    np.testing.assert_allclose(shuffled, alone[perm], rtol=0, atol=2e-6)


def test_logits_match_a_plain_padded_batch_in_input_order(tiny_real_vocab):
    """Sorting and scattering back must put each row where its text was."""
    config, tensors, tokenizer = tiny_real_vocab
    forward = forward_for("torch", config, tensors)
    plain = forward(tokenizer(TEXTS))
    np.testing.assert_allclose(predict_logits(forward, tokenizer, TEXTS, batch_size=2), plain, rtol=0, atol=2e-6)


def test_progress_reports_every_batch_up_to_the_total(tiny_real_vocab):
    config, tensors, tokenizer = tiny_real_vocab
    seen = []
    predict_logits(forward_for("torch", config, tensors), tokenizer, TEXTS, batch_size=4,
                   progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen == [(4, 9), (8, 9), (9, 9)]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_real_minilm_logits_do_not_depend_on_batching(framework, embedded_dir):
    from parity.io.backbone import backbone_checkpoint

    config, tensors, _ = backbone_checkpoint(embedded_dir, seed=0)
    tokenizer = Tokenizer(embedded_dir, max_length=128)
    forward = forward_for(framework, config, tensors)
    alone = predict_logits(forward, tokenizer, TEXTS, batch_size=1)
    for name, kwargs in GROUPINGS.items():
        np.testing.assert_allclose(predict_logits(forward, tokenizer, TEXTS, **kwargs), alone, rtol=0, atol=2e-6,
                                   err_msg=name)  # fmt: skip
