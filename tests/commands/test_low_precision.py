"""bfloat16 and float16 checkpoints (`bertcnn port CK X --dtype ...`) load in both builds, through the API and
every command, as `port --dtype` documents. numpy has no bfloat16: the torch build used to refuse it
(`can't convert np.ndarray of type ml_dtypes.bfloat16`) in `from_pretrained` and every torch command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.checkpoint import load_checkpoint
from parity.tolerance import tolerance_for
from tests.helpers import MINILM_VOCAB, tiny_checkpoint, write_jsonl

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

TEXTS = ["Call me Ishmael.", "Hi", "It was the best of times, it was the worst of times."]
# bf16 keeps 8 bits of mantissa: a forward in bf16 is judged by the bf16 tier's bound (a float16 one is closer).
BOUND = tolerance_for("bfloat16", "cpu").atol


@pytest.fixture(scope="module", params=["bfloat16", "float16"])
def low(request, tmp_path_factory, embedded_dir):
    """(dtype, the float32 checkpoint, its port to dtype)."""
    root = tmp_path_factory.mktemp(request.param)
    config = BertCnnConfig(**MINILM_VOCAB, label_names=("neg", "mid", "pos"))
    ck = tiny_checkpoint(root / "ck", config, seed=4, tokenizer=embedded_dir)
    assert main(["port", str(ck), str(root / "low"), "--dtype", request.param]) == 0
    return request.param, ck, root / "low"


def logits_of(argv, capsys) -> np.ndarray:
    assert main(["predict", *argv, "--json", *TEXTS]) == 0
    return np.array([json.loads(line)["logits"] for line in capsys.readouterr().out.splitlines()])


def test_torch_from_pretrained_keeps_the_dtype_and_saves_it_back(low, tmp_path):
    from bertcnn_torch import BertCNN

    dtype, _, ck = low
    model = BertCNN.from_pretrained(ck)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    model.save_pretrained(tmp_path / "again")  # numpy has no bfloat16: the save goes through ml_dtypes
    (_, before), (_, after) = load_checkpoint(ck), load_checkpoint(tmp_path / "again")
    assert all(after[k].dtype == before[k].dtype and np.array_equal(after[k], before[k]) for k in before)
    assert BertCNN.from_pretrained(ck, dtype="float32").fc.weight.dtype == torch.float32  # and upcast on request


def test_torch_commands_read_it(low, tmp_path, capsys):
    _, ck32, ck = low
    reference = logits_of(["--checkpoint", str(ck32), "--framework", "torch"], capsys)
    got = logits_of(["--checkpoint", str(ck), "--framework", "torch"], capsys)
    assert np.abs(got - reference).max() <= BOUND
    labelled = tmp_path / "eval.jsonl"
    write_jsonl(labelled, 7, names=("neg", "mid", "pos"))
    assert main(["evaluate", "--checkpoint", str(ck), "--framework", "torch", "--eval", str(labelled)]) == 0
    assert main(["report", "--checkpoint", str(ck), "--json-out", str(tmp_path / "r.json")]) == 0
    run = tmp_path / "run"
    argv = ["--train", str(labelled), "--epochs", "1", "--batch-size", "4", "--framework", "torch"]
    assert main(["train", "--checkpoint", str(ck), "--out", str(run), *argv]) == 0


@pytest.mark.slow
def test_onnx_export_of_it_verifies(low, tmp_path):
    _, _, ck = low
    assert main(["export", "--checkpoint", str(ck), "--format", "onnx", str(tmp_path / "onnx"), "--verify"]) == 0


def test_keras_reads_it_as_torch_does(low, capsys):
    _, _, ck = low
    keras = logits_of(["--checkpoint", str(ck), "--framework", "keras"], capsys)
    torch_ = logits_of(["--checkpoint", str(ck), "--framework", "torch"], capsys)
    assert np.abs(keras - torch_).max() <= BOUND
