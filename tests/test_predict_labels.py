"""predict prints label names and probabilities, says how many texts it truncated; init --labels names them."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from conftest import TINY, random_tensors

from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.checkpoint import save_checkpoint

LONG = "A somewhat longer line of real words, to make the batch uneven and cross the limit."


def tiny(tmp_path_factory, embedded_dir, names):
    config = BertCnnConfig(**{**TINY, "vocab_size": 30522, "max_position_embeddings": 40, "label_names": names})
    d = tmp_path_factory.mktemp("tiny") / "ck"
    save_checkpoint(d, config, random_tensors(config, seed=1), tokenizer_from=embedded_dir)
    return d


@pytest.fixture(scope="module")
def named(tmp_path_factory, embedded_dir):
    return tiny(tmp_path_factory, embedded_dir, ("neg", "mid", "pos"))


@pytest.fixture(scope="module")
def unnamed(tmp_path_factory, embedded_dir):
    return tiny(tmp_path_factory, embedded_dir, None)


def predict(capsys, monkeypatch, *argv):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    code = main(["predict", *argv])
    return code, capsys.readouterr().out, err.getvalue()


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_json_has_name_id_and_float64_softmax(named, framework, capsys, monkeypatch):
    code, out, _ = predict(capsys, monkeypatch, "--checkpoint", str(named), "--framework", framework, "--json", "Hi")
    assert code == 0
    row = json.loads(out)
    assert set(row) == {"text", "label", "label_id", "logits", "probabilities"}
    z = row["logits"]
    assert (
        row["label_id"] == max(range(3), key=z.__getitem__) and row["label"] == ("neg", "mid", "pos")[row["label_id"]]
    )
    total = sum(math.exp(x) for x in z)
    assert row["probabilities"] == pytest.approx([math.exp(x) / total for x in z], abs=1e-15)


def test_plain_text_columns_are_name_logits_text_and_ids_without_names(named, unnamed, capsys, monkeypatch):
    got = {}
    for ck in (named, unnamed):
        code, out, _ = predict(capsys, monkeypatch, "--checkpoint", str(ck), "--framework", "torch", "Hi", "Bye")
        assert code == 0
        got[ck] = [line.split("\t") for line in out.splitlines()]
    for (name, logits, _text), (label_id, same_logits, _) in zip(got[named], got[unnamed], strict=True):
        assert logits == same_logits  # same weights: only the label column differs
        z = [float(x) for x in logits.split()]
        assert label_id == str(int(np.argmax(z))) and name == ("neg", "mid", "pos")[int(label_id)]
    assert [row[2] for row in got[named]] == ["Hi", "Bye"]


def test_truncation_is_counted_on_stderr(named, capsys, monkeypatch):
    argv = ["--checkpoint", str(named), "--framework", "torch", "--max-length", "6", LONG, "Hi", LONG]
    code, out, err = predict(capsys, monkeypatch, *argv)
    assert code == 0 and len(out.splitlines()) == 3
    assert err == (
        "note: 2 of 3 texts were longer than 6 tokens (--max-length) and were cut to 6, keeping [CLS] and [SEP] "
        "(the tokenizer's own truncation, as Hugging Face)\n"
    )
    code, _, err = predict(capsys, monkeypatch, "--checkpoint", str(named), "--framework", "torch", LONG * 3)
    assert "1 of 1 texts were longer than 40 tokens (the model's position table)" in err


def test_help_describes_text_checkpoint_framework_and_columns(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for fragment in ("TEXT texts to classify", "--checkpoint CK a checkpoint directory", "which build runs",
                     "LABEL<TAB>LOGITS<TAB>TEXT", '"probabilities"', "'-' reads standard input"):  # fmt: skip
        assert fragment in out


def test_init_labels_names_the_classes_and_refuses_a_conflicting_count(tmp_path, embedded_dir, capsys):
    d = tmp_path / "ck"
    argv = ["init", str(d), "--backbone", str(embedded_dir), "--kernel-sizes", "2", "--num-filters", "3"]
    assert main([*argv, "--labels", "neg, pos"]) == 0
    config = json.loads((d / "config.json").read_text())
    assert (config["num_labels"], config["id2label"], config["label2id"]) == (2, {"0": "neg", "1": "pos"}, {
        "neg": 0, "pos": 1})  # fmt: skip
    assert main([*argv, "--force", "--labels", "a,b", "--num-labels", "3"]) == 2
    err = capsys.readouterr().err
    assert "--num-labels 3 disagrees with --labels, which names 2 classes" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main([*argv, "--force", "--labels", "a,a"])
    assert "expected distinct, non-empty comma-separated label names" in capsys.readouterr().err


def test_init_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 3,4,5)", "(default: 100)", "(default: 2, or --labels' count)", "(default: 0)",
                    "(default: the embedded MiniLM)"):  # fmt: skip
        assert default in out
