"""ONNX exports (from the PyTorch build; from the Keras build via tf2onnx) in onnxruntime vs the PyTorch build."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from parity.tolerance import tolerance_for
from tests.helpers import configs, random_tensors, worst_gap

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'bertcnn[onnx]'")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'bertcnn[onnx]'")
torch = pytest.importorskip("torch", reason="the torch extra is not installed")

BOUND = tolerance_for("float32", "cpu", "artifact").atol


def export_and_compare(config, tmp_path, export) -> float:
    """Export `config` with random weights, run every check case in onnxruntime, return the worst logits gap."""
    from parity.serving.runners import OnnxRunner

    tensors = random_tensors(config, seed=3)
    path = tmp_path / "model.onnx"
    export(config, tensors, path)
    runner = OnnxRunner(path)
    return worst_gap(config, tensors, runner, tmp_path)


def torch_export(config, tensors, path):
    from bertcnn_torch import BertCNN
    from bertcnn_torch.export import export_onnx

    info = export_onnx(BertCNN._from_tensors(config, tensors), path)
    assert info["external_data"] is False and not list(path.parent.glob("*.data"))  # one file
    assert info["opset"] >= 18


@settings(max_examples=2)
@given(config=configs(max_layers=1))
def test_torch_onnx_matches_torch(config, tmp_path_factory):
    assert export_and_compare(config, tmp_path_factory.mktemp("onnx"), torch_export) <= BOUND


@pytest.mark.slow
@settings(max_examples=1)
@given(config=configs(max_layers=1))
def test_keras_onnx_matches_torch(config, tmp_path_factory):
    pytest.importorskip("tf2onnx", reason="the Keras ONNX path needs tf2onnx: pip install 'bertcnn[tf2onnx]'")
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_onnx

    def export(config, tensors, path):
        export_onnx(BertCNN._from_tensors(config, tensors), path)

    assert export_and_compare(config, tmp_path_factory.mktemp("onnx"), export) <= BOUND
