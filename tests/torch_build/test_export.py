"""The PyTorch build's ONNX export, in onnxruntime, vs the PyTorch build (one file, opset 18 or later)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from parity.tolerance import tolerance_for
from tests.helpers import configs, onnx_worst_gap

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'bertcnn[onnx]'")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript: pip install 'bertcnn[onnx]'")
torch = pytest.importorskip("torch", reason="the torch extra is not installed")

BOUND = tolerance_for("float32", "cpu", "artifact").atol


def torch_export(config, tensors, path):
    from bertcnn_torch import BertCNN
    from bertcnn_torch.export import export_onnx

    info = export_onnx(BertCNN._from_tensors(config, tensors), path)
    assert info["external_data"] is False and not list(path.parent.glob("*.data"))  # one file
    assert info["opset"] >= 18


@settings(max_examples=2)
@given(config=configs(max_layers=1))
def test_torch_onnx_matches_torch(config, tmp_path_factory):
    assert onnx_worst_gap(config, tmp_path_factory.mktemp("onnx"), torch_export) <= BOUND
