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
        for mode, out in (("int8", "q8"), ("int8-ffn-out-fp32", "q8ffn")):
            argv = ["export", "--checkpoint", str(root / "ck"), "--format", "onnx", "--quantize", mode, str(root / out)]
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


def _float_matmul_weights(directory):
    """Shapes of the float32 weights that MatMul nodes still multiply by, and the number of int8 matmuls."""
    import onnx

    graph = onnx.load(str(directory / "model.onnx")).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    floats = [shapes[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
    return floats, sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)


def test_int8_quantizes_every_dense_matmul(exported):
    from tests.helpers import TINY

    floats, int8 = _float_matmul_weights(exported[0] / "q8")
    assert floats == [] and int8 >= 6 * TINY["num_hidden_layers"]  # Q, K, V, attention output, FFN in and out


def test_int8_ffn_out_fp32_keeps_the_gelu_fed_matmuls_float32_and_only_those(exported):
    from tests.helpers import TINY

    h, i, layers = TINY["hidden_size"], TINY["intermediate_size"], TINY["num_hidden_layers"]
    floats, int8 = _float_matmul_weights(exported[0] / "q8ffn")
    assert floats == [(i, h)] * layers and int8 >= 5 * layers
    manifest = json.loads((exported[0] / "q8ffn" / "manifest.json").read_text())
    assert manifest["quantize"] == "int8-ffn-out-fp32"


@pytest.mark.parametrize("export", ["q8", "q8ffn"])
def test_the_artifact_check_holds_it_to_the_int8_tier(exported, export, tmp_path, capsys):
    root, out = exported[0], tmp_path / "r.json"
    argv = ["report", "--checkpoint", str(root / "ck"), "--artifact", str(root / export), "--json-out", str(out)]
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


# ONNX Runtime's advice before quantizing (its own tool, in a process with nothing of this project): symbolic
# shape inference, then ONNX shape inference and graph optimisation, into model.pre.onnx.
PRE_PROCESS = """
import os
from onnxruntime.quantization.shape_inference import quant_pre_process
before = set(os.listdir("."))
quant_pre_process("model.onnx", "model.pre.onnx")
print(sorted(set(os.listdir(".")) - before))
"""


def test_ort_quant_pre_process_runs_on_the_export_and_leaves_nothing_behind(tmp_path):
    """It failed with `Incomplete symbolic shape inference` (the length-dependent pad `Max(0, 5 - sequence)`, then
    BERT's position slice and the head's ReduceMax) and left its temporary .data files in the working directory."""
    import numpy as np
    import onnxruntime as ort

    from bertcnn_torch import BertCNN
    from bertcnn_torch.export import export_onnx
    from parity.config import BertCnnConfig
    from parity.inputs import random_batch
    from tests.helpers import TINY, random_tensors, without_project

    config = BertCnnConfig(**TINY)
    export_onnx(BertCNN._from_tensors(config, random_tensors(config, seed=8)), tmp_path / "model.onnx")
    proc = without_project(PRE_PROCESS, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['model.pre.onnx']"  # no temporary files left in the working directory
    batch = random_batch(config, [9, 1, 4], seed=3)
    run = [
        ort.InferenceSession(str(tmp_path / f), providers=["CPUExecutionProvider"])
        for f in ("model.onnx", "model.pre.onnx")
    ]
    a, b = (s.run(None, batch)[0] for s in run)
    assert np.abs(a - b).max() <= tolerance_for("float32", "cpu", "artifact").atol
