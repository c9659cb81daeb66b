"""`bertcnn export --format onnx --quantize int8`: int8 matmul weights, checked by the int8 tier of the table."""

from __future__ import annotations

import json

import pytest

from parity.commands import main
from parity.tolerance import tolerance_for
from tests.helpers import tiny_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import logging

    root = tmp_path_factory.mktemp("q8")
    tiny_checkpoint(root / "ck", tokenizer="words")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        argv = ["export", "--checkpoint", str(root / "ck"), "--format", "onnx", "--quantize", "int8", str(root / "q8")]
        assert main(argv) == 0
    finally:
        logging.getLogger().removeHandler(handler)
    return root, [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def test_quantizing_logs_no_advice_meant_for_static_quantization(exported):
    # ONNX Runtime's quantize_dynamic logs "Please consider to run pre-processing before quantization"
    # on the root logger, which lands on the user's stderr as "WARNING:root:...".
    assert exported[1] == []


def test_the_export_says_int8_and_holds_integer_weights(exported):
    exported = exported[0]
    import onnx

    manifest = json.loads((exported / "q8" / "manifest.json").read_text())
    assert manifest["quantize"] == "int8" and manifest["format"] == "onnx"
    graph = onnx.load(str(exported / "q8" / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops, sorted(ops)
    assert sorted(p.name for p in (exported / "q8").iterdir() if p.suffix == ".onnx") == ["model.onnx"]


def test_the_feed_forward_outputs_stay_float32_and_every_other_dense_weight_is_int8(exported):
    import onnx

    from tests.helpers import TINY

    h, i, layers = TINY["hidden_size"], TINY["intermediate_size"], TINY["num_hidden_layers"]
    graph = onnx.load(str(exported[0] / "q8" / "model.onnx")).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    float_weights = [shapes.get(n.input[1]) for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
    assert float_weights == [(i, h)] * layers  # the GELU-fed matmuls only; QKV, attention output, FFN input: int8
    int8 = [n for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert len(int8) >= 5 * layers


def test_the_artifact_check_holds_it_to_the_int8_tier(exported, tmp_path, capsys):
    exported = exported[0]
    out = tmp_path / "r.json"
    argv = ["report", "--checkpoint", str(exported / "ck"), "--artifact", str(exported / "q8"), "--json-out", str(out)]
    assert main(argv) == 0
    run = json.loads(out.read_text())["results"][0]
    assert run["dtype"] == "int8" and run["passed"]
    bound = tolerance_for("int8", "cpu", "artifact").atol
    logits = [t for t in run["taps"] if t["name"].startswith("logits/")]
    assert logits and all(t["atol"] == bound and t["max_abs"] <= bound for t in logits)
    assert any(t["name"].startswith("argmax/") for t in run["taps"])
    assert max(t["max_abs"] for t in logits) > tolerance_for("float32", "cpu", "artifact").atol  # really int8


def test_quantize_is_for_onnx_only(exported, tmp_path, capsys):
    exported = exported[0]
    argv = [
        "export",
        "--checkpoint",
        str(exported / "ck"),
        "--format",
        "litert",
        "--quantize",
        "int8",
        str(tmp_path / "x"),
    ]
    assert main(argv) == 2
    assert "--quantize applies to --format onnx only" in capsys.readouterr().err and not (tmp_path / "x").exists()
