"""evaluate on every source predict takes: an ONNX export end to end, its runtime checked first; label names' fix."""

from __future__ import annotations

import json
import shutil

import pytest

from parity.commands import main
from tests.helpers import minilm_vocab_checkpoint as tiny_checkpoint
from tests.helpers import sentences


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", embedded_dir, label_names=("neg", "mid", "pos"))


@pytest.fixture(scope="module")
def onnx_export(ck, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", "--checkpoint", str(ck), "--format", "onnx", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "eval.jsonl"
    rows = [{"text": t, "label": ("neg", "mid", "pos")[i % 3]} for i, t in enumerate(sentences(40))]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f


def cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_runs_an_onnx_export_as_its_checkpoint_scores(ck, onnx_export, data, capsys):
    code, out, err = cli(capsys, "evaluate", "--checkpoint", str(onnx_export), "--eval", str(data), "--json")
    assert code == 0, err
    served = json.loads(out)
    code, out, err = cli(capsys, "evaluate", "--checkpoint", str(ck), "--framework", "torch", "--eval", str(data),
                         "--json")  # fmt: skip
    assert code == 0, err
    built = json.loads(out)
    assert served["labels"] == built["labels"] == ["neg", "mid", "pos"]
    assert served["confusion_matrix"] == built["confusion_matrix"] and served["accuracy"] == built["accuracy"]
    assert served["loss"] == pytest.approx(built["loss"], abs=1e-5)
    assert (served["num_examples"], served["max_length"], served["truncated"]) == (
        40, built["max_length"], built["truncated"],
    )  # fmt: skip
    code, out, err = cli(capsys, "evaluate", "--checkpoint", str(onnx_export), "--eval", str(data))
    assert code == 0 and out.startswith("label ") and err == ""


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_an_export_without_its_runtime_is_refused_before_any_work(onnx_export, data, capsys, monkeypatch, command):
    import parity.commands.common as common

    real = common.installed
    monkeypatch.setattr(common, "installed", lambda m: m != "onnxruntime" and real(m))
    argv = ["--eval", str(data)] if command == "evaluate" else ["Hi"]
    code, out, err = cli(capsys, command, "--checkpoint", str(onnx_export), *argv)
    assert (code, out) == (2, "")
    assert err == (
        f"bertcnn {command}: error: bertcnn {command} needs packages that are not installed: onnxruntime (for running "
        "the onnx export). Install them with `pip install 'bertcnn[onnx]'` (in a clone: `pip install -e '.[onnx]'`). "
        "Received: 1 missing\n"
    )


def test_names_for_an_unnamed_checkpoint_point_to_port_not_init(ck, tmp_path, capsys):
    """`init --labels` would start a new head; `port CK NEW_CK --labels` keeps the trained weights."""
    unnamed = tmp_path / "unnamed"
    shutil.copytree(ck, unnamed)
    config = json.loads((unnamed / "config.json").read_text())
    del config["id2label"], config["label2id"]
    (unnamed / "config.json").write_text(json.dumps(config))
    f = tmp_path / "d.csv"
    f.write_text("text,label\nfine,good\nbad,poor\nso-so,meh\n")
    code, out, err = cli(capsys, "evaluate", "--checkpoint", str(unnamed), "--framework", "torch", "--eval", str(f))
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert f"`bertcnn port {unnamed} NEW_CK --labels good,meh,poor`" in err
    assert "bertcnn init DIR" not in err and err.rstrip().endswith("Received: ['good', 'meh', 'poor']")
