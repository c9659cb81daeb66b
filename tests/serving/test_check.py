"""`report --artifact` / `export --verify`: a tampered export fails (exit 1), broken or hostile ones exit 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from tests.helpers import TINY, tiny_checkpoint, word_tokenizer

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed: pip install 'bertcnn[onnx]'")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'bertcnn[onnx]'")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'bertcnn[onnx]'")
pytest.importorskip("torch", reason="the torch extra is not installed (the reference build)")

CONFIG = BertCnnConfig(**TINY, label_names=("neg", "neutral", "pos"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny checkpoint and its ONNX export (from the PyTorch build), made once for the module."""
    tmp = tmp_path_factory.mktemp("export")
    tiny_checkpoint(tmp / "ck", CONFIG, seed=11, tokenizer=word_tokenizer("abcdefghij"))  # ids fit the vocabulary
    assert main(["export", "--checkpoint", str(tmp / "ck"), "--format", "onnx", str(tmp / "onnx")]) == 0
    return tmp / "ck", tmp / "onnx"


@pytest.fixture
def copy(exported, tmp_path):
    """A private copy of the export to break."""
    return shutil.copytree(exported[1], tmp_path / "onnx")


def report(ck, out, capsys, *extra) -> tuple[int, str, str]:
    code = main(["report", "--checkpoint", str(ck), "--artifact", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_dir_and_report_pass(exported, capsys, tmp_path):
    ck, out = exported
    assert sorted(p.name for p in out.iterdir()) == [
        ".bertcnn.json",
        "config.json",
        "manifest.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": ["batch", 3], "activation": "softmax"}
    ]
    code, stdout, _ = report(ck, out, capsys, "--json-out", str(tmp_path / "r.json"))
    assert code == 0 and "PARITY OK" in stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["passed"] and [t["name"] for t in doc["results"][0]["taps"]][:3] == [
        "logits/sentences",
        "logits/batch-1",
        "logits/length-1",
    ]


def test_tampered_weight_fails_naming_first_output(exported, copy, capsys):
    model = onnx.load(str(copy / "model.onnx"))
    bias = next(t for t in model.graph.initializer if tuple(t.dims) == (CONFIG.num_labels,))
    values = onnx.numpy_helper.to_array(bias) + np.float32(1e-3)
    bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
    onnx.save(model, str(copy / "model.onnx"))
    code, stdout, _ = report(exported[0], copy, capsys)
    assert code == 1 and "PARITY FAILED" in stdout
    assert "first output that disagrees is 'logits/sentences'" in stdout


def test_export_from_other_weights_is_reported(exported, copy, capsys, tmp_path):
    other = tiny_checkpoint(tmp_path / "other", CONFIG, seed=12)
    code, stdout, _ = report(other, copy, capsys)
    # Not compared as if it matched: not checked, exit 3 ("checked less than asked"), said so.
    assert code == 3 and "made from other weights" in stdout and "NOT CHECKED" in stdout
    assert "NOT A float32 RESULT" not in stdout and "PARITY NOT CHECKED" in stdout


def one_line_error(code, err):
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_truncated_onnx_exits_2(exported, copy, capsys):
    data = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(data[: len(data) // 2])
    code, _, err = report(exported[0], copy, capsys)
    assert "not a loadable onnx model" in one_line_error(code, err)


def test_manifest_pointing_elsewhere_exits_2(exported, copy, capsys):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model_file"] = str(exported[1] / "model.onnx")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = report(exported[0], copy, capsys)
    assert "may not point anywhere else" in one_line_error(code, err)


@pytest.mark.slow
def test_saved_model_without_variables_exits_2(exported, capsys, tmp_path):
    pytest.importorskip("tensorflow", reason="the tf extra is not installed: pip install 'bertcnn[tf]'")
    out = tmp_path / "sm"
    assert main(["export", "--checkpoint", str(exported[0]), "--format", "saved_model", str(out)]) == 0
    capsys.readouterr()
    shutil.rmtree(out / "saved_model" / "variables")
    code, _, err = report(exported[0], out, capsys)
    assert "not a complete SavedModel" in one_line_error(code, err)


def test_existing_out_needs_force(exported, capsys):
    code = main(["export", "--checkpoint", str(exported[0]), "--format", "onnx", str(exported[1])])
    assert "pass --force" in one_line_error(code, capsys.readouterr().err)
    assert (exported[1] / "model.onnx").is_file()


def test_predict_on_export_matches_torch_build(exported, capsys):
    ck, out = exported
    texts = ["a b c d e f g h i j a b c", "j", "zzz b"]  # 15, 3 and 4 tokens: shorter than the widest kernel too
    assert main(["predict", "--checkpoint", str(out), "--json", *texts]) == 0
    served = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", "--checkpoint", str(ck), "--framework", "torch", "--json", *texts]) == 0
    built = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in served] == texts
    assert [r["label"] for r in served] == [r["label"] for r in built]
    assert np.abs(np.array([r["logits"] for r in served]) - [r["logits"] for r in built]).max() <= 1e-5


def test_export_forward_checks_inputs(exported):
    from parity.inputs import random_batch
    from parity.serving import export_forward

    forward, config = export_forward(exported[1])
    assert config == CONFIG
    batch = random_batch(CONFIG, [4, 1], seed=2)
    with pytest.raises(ValueError, match="vocab_size"):
        forward({**batch, "input_ids": batch["input_ids"] + CONFIG.vocab_size})


@pytest.mark.parametrize("names", [("neg",), ("neg", "pos"), ("neg", "neutral", "pos", "other")])
def test_a_config_naming_other_classes_than_the_model_has_is_refused(exported, copy, capsys, names):
    """1 class over 3 logits read past the names (IndexError); 4 printed a label of another model's (exit 0)."""
    wrong = BertCnnConfig(**{**TINY, "num_labels": len(names)}, label_names=names)
    (copy / "config.json").write_text(wrong.to_json())
    code = main(["predict", "--checkpoint", str(copy), "a b c"])
    captured = capsys.readouterr()
    err = one_line_error(code, captured.err)
    assert str(copy / "config.json") in err and f"names {len(names)} classes" in err and "computes 3 logits" in err
    assert captured.out == ""


def test_a_damaged_tokenizer_in_an_export_is_refused(copy, capsys):
    (copy / "tokenizer.json").write_text('{"model": {"type": "WordPiece"')
    code = main(["predict", "--checkpoint", str(copy), "a b c"])
    err = one_line_error(code, capsys.readouterr().err)
    assert str(copy / "tokenizer.json") in err and "not a readable tokenizer" in err
