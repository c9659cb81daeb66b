"""A bertcnn checkpoint from the Hugging Face side: the Auto classes and `pipeline` (in a process that cannot
import this project, through the modeling code the checkpoint carries; and registered, without
`trust_remote_code`), `BertForSequenceClassification`'s silent trap made loud, a model as a pipeline,
and the checkpoint round-tripping through transformers' own `save_pretrained`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.config import BertCnnConfig
from parity.io.checkpoint import MODELING_FILE
from tests.helpers import MINILM_VOCAB, tiny_checkpoint, without_project

torch = pytest.importorskip("torch", reason="the torch extra is not installed")
transformers = pytest.importorskip("transformers")

NAMES = ("neg", "mid", "pos")
TEXTS = ["Call me Ishmael.", "Hi", "It was the best of times, it was the worst of times, it was the age of wisdom."]
BOUND = 1e-5

# transformers alone: the checkpoint's config, the model through both Auto classes, its tokenizer, a pipeline.
CLEAN = """
import json, sys
import numpy as np, torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline
ck = CHECKPOINT
texts = json.loads(open("texts.json").read())
config = AutoConfig.from_pretrained(ck, trust_remote_code=True)
tok = AutoTokenizer.from_pretrained(ck, trust_remote_code=True)
batch = tok(texts, padding=True, return_tensors="pt")
out = {"config": type(config).__name__, "id2label": {str(k): v for k, v in config.id2label.items()}}
for name, auto in (("auto_model", AutoModel), ("sequence_classification", AutoModelForSequenceClassification)):
    model = auto.from_pretrained(ck, trust_remote_code=True).eval()
    with torch.inference_mode():
        out[name] = {"class": type(model).__name__, "module": type(model).__module__,
                     "logits": model(**batch).logits.tolist()}
classify = pipeline("text-classification", model=ck, trust_remote_code=True)
out["pipeline"] = classify(texts, top_k=None)
out["ids"] = {k: v.tolist() for k, v in batch.items()}
out["imported"] = sorted(m for m in sys.modules if m.partition(".")[0] in ("parity", "bertcnn_torch", "bertcnn_tf"))
open("out.json", "w").write(json.dumps(out))
"""


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    config = BertCnnConfig(**MINILM_VOCAB, label_names=NAMES, max_seq_length=32)
    return tiny_checkpoint(tmp_path_factory.mktemp("hf") / "ck", config, seed=6, tokenizer=embedded_dir)


def bertcnn_logits(ck, ids: dict) -> np.ndarray:
    from bertcnn_torch import BertCNN

    model = BertCNN.from_pretrained(ck)
    with torch.inference_mode():
        return model(**{k: torch.tensor(v) for k, v in ids.items()}).numpy()


def test_auto_classes_and_pipeline_from_the_checkpoint_alone(ck, tmp_path):
    """`trust_remote_code=True` in a process that cannot import bertcnn: the checkpoint's own modeling_bertcnn.py
    gives the BERT-CNN, its logits and its label names (before: `Unrecognized model ... model_type`)."""
    assert (ck / MODELING_FILE).is_file()
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    proc = without_project(CLEAN.replace("CHECKPOINT", repr(str(ck))), tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["imported"] == []
    assert out["config"] == "BertCnnHfConfig" and out["id2label"] == {"0": "neg", "1": "mid", "2": "pos"}
    reference = bertcnn_logits(ck, out["ids"])
    for name in ("auto_model", "sequence_classification"):
        got = out[name]
        assert got["class"] == "BertCnnForSequenceClassification" and "bertcnn" not in got["module"].split(".")[0]
        assert np.abs(np.array(got["logits"]) - reference).max() <= BOUND
    probabilities = np.exp(reference) / np.exp(reference).sum(axis=1, keepdims=True)
    for row, p in zip(out["pipeline"], probabilities, strict=True):
        assert {r["label"]: r["score"] for r in row} == pytest.approx(dict(zip(NAMES, p, strict=True)), abs=BOUND)


def test_registered_on_import_no_trust_remote_code_needed(ck):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    import bertcnn_torch

    tok = AutoTokenizer.from_pretrained(ck)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    reference = bertcnn_logits(ck, {k: v.tolist() for k, v in batch.items()})
    for auto in (AutoModel, AutoModelForSequenceClassification):
        model = auto.from_pretrained(ck)  # no trust_remote_code: the registered class, not the checkpoint's copy
        assert type(model) is bertcnn_torch.BertCnnForSequenceClassification
        with torch.inference_mode():
            assert np.abs(model(**batch).logits.numpy() - reference).max() <= BOUND
    assert [r["label"] for r in pipeline("text-classification", model=str(ck))(TEXTS)] == [
        NAMES[i] for i in reference.argmax(axis=1)
    ]


def test_a_bertcnn_model_in_a_pipeline_shares_its_parameters(ck):
    """`pipeline(model=<BertCNN>)` failed (`'BertCNN' object has no attribute 'device'`): `BertCNN` returns a logits
    tensor by design; `to_transformers()` is the same model as transformers wants it, not a copy."""
    from transformers import AutoTokenizer, pipeline

    from bertcnn_torch import BertCNN

    model = BertCNN.from_pretrained(ck)
    hf = model.to_transformers()
    assert hf.fc.weight.data_ptr() == model.fc.weight.data_ptr() and hf.device == torch.device("cpu")
    tok = AutoTokenizer.from_pretrained(ck)
    batch = tok(TEXTS, padding=True, return_tensors="np")
    with torch.inference_mode():
        reference = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).numpy()
    rows = pipeline("text-classification", model=hf, tokenizer=tok)(TEXTS, top_k=None)
    probabilities = np.exp(reference) / np.exp(reference).sum(axis=1, keepdims=True)
    for row, p in zip(rows, probabilities, strict=True):
        assert {r["label"]: r["score"] for r in row} == pytest.approx(dict(zip(NAMES, p, strict=True)), abs=BOUND)


def test_bert_for_sequence_classification_is_not_silent(ck):
    """It loads the BERT and a fresh classifier, dropping the CNN head; we cannot stop it, but transformers now
    says the model type differs (the config used to name none), and the card says what happens."""
    from transformers import BertForSequenceClassification
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging

    with CaptureLogger(logging.get_logger("transformers.configuration_utils")) as said:
        BertForSequenceClassification.from_pretrained(ck)
    assert "You are using a model of type `bert-cnn` to instantiate a model of type `bert`" in said.out
    card = (ck / "README.md").read_text()
    assert "BertForSequenceClassification" in card and "random" in card


def test_a_folder_transformers_saved_reads_back(ck, tmp_path, capsys):
    """transformers' `save_pretrained` adds its bookkeeping (transformers_version, dtype, ...) to config.json and
    writes `id2label` without `num_labels`; bertcnn reads that folder as the same model."""
    from transformers import AutoModelForSequenceClassification

    from bertcnn_torch import BertCNN
    from parity.commands import main

    AutoModelForSequenceClassification.from_pretrained(ck).save_pretrained(tmp_path / "hf")
    saved = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert saved["model_type"] == "bert-cnn" and "transformers_version" in saved and "num_labels" not in saved
    a, b = BertCNN.from_pretrained(ck), BertCNN.from_pretrained(tmp_path / "hf")
    assert a.config == b.config
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    argv = ["predict", "--checkpoint", str(tmp_path / "hf"), "--tokenizer", str(ck), "--framework", "torch", "Hi"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(tuple(NAMES))
