"""A multi-label checkpoint and long documents from the Hugging Face side: `problem_type` read by transformers'
Auto classes and `pipeline` (sigmoid scores, BCE loss for float labels), the thresholds carried in config.json,
and (batch, windows, tokens) inputs through the modeling code every checkpoint carries."""

from __future__ import annotations

import numpy as np
import pytest

from parity.config import BertCnnConfig
from tests.helpers import MINILM_VOCAB, tiny_checkpoint

torch = pytest.importorskip("torch", reason="the torch extra is not installed")
transformers = pytest.importorskip("transformers")

NAMES = ("art", "law", "war")
TEXTS = ["Call me Ishmael.", "Hi", "It was the best of times, it was the worst of times, it was the age of wisdom."]


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    config = BertCnnConfig(**MINILM_VOCAB, label_names=NAMES, problem_type="multi_label_classification",
                           thresholds=(0.3, 0.5, 0.62))  # fmt: skip
    return tiny_checkpoint(tmp_path_factory.mktemp("hfml") / "ck", config, seed=6, tokenizer=embedded_dir)


def test_transformers_reads_a_multi_label_model_as_one(ck):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    import bertcnn_torch  # registers the Auto classes  # noqa: F401
    from bertcnn_torch import BertCNN

    config = AutoConfig.from_pretrained(ck)
    assert config.problem_type == "multi_label_classification" and list(config.thresholds) == [0.3, 0.5, 0.62]
    tok = AutoTokenizer.from_pretrained(ck)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    model = AutoModelForSequenceClassification.from_pretrained(ck).eval()
    with torch.inference_mode():
        reference = BertCNN.from_pretrained(ck)(**batch)
    labels = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=torch.float32)
    out = model(**batch, labels=labels)
    assert torch.allclose(out.logits, reference, atol=1e-6)
    want = torch.nn.functional.binary_cross_entropy_with_logits(reference, labels)
    assert abs(float(out.loss.detach()) - float(want)) <= 1e-6  # HF's rule: BCE for a multi-label problem_type
    rows = pipeline("text-classification", model=model, tokenizer=tok)(TEXTS, top_k=None)
    sig = torch.sigmoid(reference).numpy()
    for row, p in zip(rows, sig, strict=True):  # sigmoid per label, not a softmax over the labels
        assert {r["label"]: r["score"] for r in row} == pytest.approx(dict(zip(NAMES, p, strict=True)), abs=1e-6)


def test_the_carried_modeling_code_takes_documents_read_as_windows(ck, embedded_dir):
    from transformers import AutoModelForSequenceClassification

    from bertcnn_torch import BertCNN
    from parity.tokenize import Tokenizer

    tok = Tokenizer(embedded_dir, max_length=8).windows(2)
    x = {k: torch.from_numpy(v) for k, v in tok(TEXTS).items()}
    assert x["input_ids"].dim() == 3 and x["input_ids"].shape[1] > 1
    model = AutoModelForSequenceClassification.from_pretrained(ck, trust_remote_code=True).eval()
    with torch.inference_mode():
        got, reference = model(**x).logits, BertCNN.from_pretrained(ck)(**x)
    assert got.shape == (3, 3) and torch.allclose(got, reference, atol=1e-6)
    assert np.isfinite(got.numpy()).all()
