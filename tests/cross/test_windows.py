"""Long documents as windows: Hugging Face's windows, the CNN's max over the whole document, the same in both builds.

A document is read as overlapping windows of max_length tokens, each [CLS] ... [SEP], as
`tokenizer(text, truncation=True, max_length=n, stride=s, return_overflowing_tokens=True)` makes
them; every window runs through BERT and the CNN, and the document's pooled features are the
elementwise max of its windows' pooled features. Padding (short last windows, all-padding windows
of a document with fewer windows than its batch-mates) is masked as today, so a document's logits
do not depend on its batch: put the unmasked max back (the seeds' pooling) and they do.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.config import BertCnnConfig
from parity.tokenize import Document, Tokenizer, pad_rows
from parity.tolerance import tolerance_for
from tests.helpers import TINY, random_tensors

TEXT = ("The quick brown fox jumps over the lazy dog while the rain falls on quiet hills and distant towns, "
        "and nobody in the village remembers when the old mill last turned its wheel.")  # fmt: skip


@pytest.mark.parametrize(("max_length", "stride"), [(12, 0), (12, 4), (9, 6), (40, 3)])
def test_windows_are_hugging_faces_overflowing_tokens(embedded_dir, max_length, stride):
    from transformers import AutoTokenizer

    texts = [TEXT, "Short one.", TEXT + " " + TEXT]
    tok = Tokenizer(embedded_dir, max_length=max_length).windows(stride)
    docs, cut = tok.encode_counted(texts)
    hf = AutoTokenizer.from_pretrained(str(embedded_dir))(
        texts, truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True
    )
    want = [[ids for ids, m in zip(hf["input_ids"], hf["overflow_to_sample_mapping"], strict=True) if m == i]
            for i in range(len(texts))]  # fmt: skip
    assert [[w[0].tolist() for w in doc] for doc in docs] == want and cut == 0
    assert all(isinstance(d, Document) for d in docs) and len(docs[2]) > len(docs[0]) >= 1
    capped, cut = Tokenizer(embedded_dir, max_length=max_length).windows(stride, max_windows=1).encode_counted(texts)
    assert [len(d) for d in capped] == [1, 1, 1] and cut == sum(len(w) > 1 for w in want)


def test_padding_makes_batch_windows_tokens_arrays():
    docs = [Document([(np.array([2, 5, 6, 3]), np.zeros(4, np.int64)), (np.array([2, 7, 3]), np.zeros(3, np.int64))]),
            Document([(np.array([2, 9, 3]), np.zeros(3, np.int64))])]  # fmt: skip
    x = pad_rows(docs, pad_token_id=0, pad_to=5)
    assert x["input_ids"].shape == (2, 2, 5)
    assert x["attention_mask"].tolist() == [[[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]]
    assert x["input_ids"][1, 1].tolist() == [0] * 5


def _docs(config, shape, seed):
    """(batch, windows, tokens) inputs: random ids; each document 1..windows windows, its last one shorter."""
    rng = np.random.default_rng(seed)
    b, m, t = shape
    mask = np.zeros(shape, np.int64)
    for i in range(b):
        n = int(rng.integers(1, m + 1))
        mask[i, :n] = 1
        mask[i, n - 1, int(rng.integers(1, t + 1)) :] = 0
    ids = rng.integers(1, config.vocab_size, size=shape) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": rng.integers(0, 2, size=shape) * mask}


@pytest.fixture(scope="module")
def builds():
    from bertcnn_tf.runtime import forward as keras_forward
    from bertcnn_torch.runtime import forward as torch_forward

    return torch_forward, keras_forward


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_both_builds_give_the_same_logits_and_taps(builds, dtype):
    from bertcnn_tf.runtime import taps as keras_taps
    from bertcnn_torch.runtime import taps as torch_taps
    from parity.compare import compare_taps

    config = BertCnnConfig(**TINY, head_hidden_size=7)
    tensors = random_tensors(config, seed=2, dtype=np.dtype(dtype))
    x = _docs(config, (3, 4, 9), seed=1)
    tol = tolerance_for(dtype, "cpu")
    a, b = builds[0](config, tensors)(x), builds[1](config, tensors)(x)
    assert a.shape == (3, 3) and np.abs(a - b).max() <= tol.atol
    run = compare_taps(torch_taps(config, tensors, x, dtype), keras_taps(config, tensors, x, dtype)[0],
                       x["attention_mask"], config, tol, dtype=dtype, device="cpu", backend="tensorflow")  # fmt: skip
    assert all(t.passed for t in run.taps), [t for t in run.taps if not t.passed]


def test_a_document_that_fits_one_window_is_one_forward_pass(builds):
    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config, seed=4, dtype=np.float64)
    x = _docs(config, (2, 1, 11), seed=3)
    flat = {k: v[:, 0] for k, v in x.items()}
    for forward in builds:
        f = forward(config, tensors)
        assert np.abs(f(x) - f(flat)).max() <= tolerance_for("float64", "cpu").atol


def test_the_max_over_time_runs_over_the_whole_document(builds):
    """Pooled features = the elementwise max of each window's own pooled features (each window run alone)."""
    from bertcnn_torch.runtime import taps

    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config, seed=5, dtype=np.float64)
    x = _docs(config, (2, 3, 8), seed=6)
    doc = taps(config, tensors, x, "float64")["pooled"]
    for i in range(2):
        windows = [j for j in range(3) if x["attention_mask"][i, j].any()]
        per = [
            taps(config, tensors, {k: v[i, j : j + 1] for k, v in x.items()}, "float64")["pooled"][0] for j in windows
        ]
        assert np.abs(doc[i] - np.max(per, axis=0)).max() <= 1e-12


def _alone_and_in_a_batch(config, seed):
    batch = _docs(config, (2, 4, 10), seed=seed)
    alone = {k: v[:1, :1, :4] for k, v in _docs(config, (1, 1, 4), seed=seed + 1).items()}
    alone["attention_mask"][:] = 1
    for k in batch:  # document 0 of the batch is `alone`, padded to 4 windows of 10 tokens
        batch[k][0] = 0
        batch[k][0, 0, :4] = alone[k][0, 0]
    return alone, batch


@given(st.integers(0, 2**16))
def test_a_documents_logits_do_not_depend_on_its_batch(builds, seed):
    """Alone, or beside a document of more and longer windows: the same logits, because padding is masked."""
    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config, seed=seed % 7, dtype=np.float64)
    alone, batch = _alone_and_in_a_batch(config, seed)
    for forward in builds:
        f = forward(config, tensors)
        assert np.abs(f(batch)[0] - f(alone)[0]).max() <= 1e-12


def test_windows_touching_padding_unmasked_make_a_document_depend_on_its_batch(builds):
    """The pitfall put back: the seeds' max over every window, padding included (`mask_padding=False`)."""
    config = BertCnnConfig(**TINY, mask_padding=False)
    tensors = random_tensors(config, seed=1, dtype=np.float64)
    alone, batch = _alone_and_in_a_batch(config, 8)
    f = builds[0](config, tensors)
    assert np.abs(f(batch)[0] - f(alone)[0]).max() > 1e-3
