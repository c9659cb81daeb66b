"""SavedModel and LiteRT exports of the Keras build, each in its runtime, vs the PyTorch build."""

from __future__ import annotations

import pytest
from conftest import TINY, configs, random_tensors, worst_gap
from hypothesis import given, settings

from parity.config import BertCnnConfig
from parity.tolerance import tolerance_for

pytest.importorskip("tensorflow", reason="the tf extra is not installed: pip install 'bertcnn[tf]'")
pytest.importorskip("torch", reason="the torch extra is not installed (the reference build)")

BOUND = tolerance_for("float32", "cpu", "artifact").atol


@settings(max_examples=2)
@given(config=configs(max_layers=1))
def test_saved_model_matches_torch(config, tmp_path_factory):
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_saved_model
    from parity.serving.runners import SavedModelRunner

    tmp = tmp_path_factory.mktemp("sm")
    tensors = random_tensors(config, seed=5)
    export_saved_model(BertCNN._from_tensors(config, tensors), tmp / "saved_model")
    assert worst_gap(config, tensors, SavedModelRunner(tmp / "saved_model"), tmp) <= BOUND


@settings(max_examples=2)
@given(config=configs(max_layers=1))
def test_litert_matches_torch(config, tmp_path_factory):
    pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed: pip install 'bertcnn[litert]'")
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_litert
    from parity.serving.runners import LiteRTRunner

    tmp = tmp_path_factory.mktemp("litert")
    tensors = random_tensors(config, seed=7)
    info = export_litert(BertCNN._from_tensors(config, tensors), tmp / "model.tflite")
    assert not [op for op in info["ops"] if op.startswith("Flex")]
    assert worst_gap(config, tensors, LiteRTRunner(tmp / "model.tflite"), tmp) <= BOUND


def test_litert_refuses_flex_ops(tmp_path, monkeypatch):
    """The pitfall put back: `x[:, :, None]` instead of expand_dims needs a Flex StridedSlice; export refuses."""
    pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed: pip install 'bertcnn[litert]'")
    import bertcnn_tf.model as keras_model
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_litert

    expand_dims = keras_model.ops.expand_dims
    monkeypatch.setattr(
        keras_model.ops, "expand_dims", lambda x, axis: x[:, :, None] if axis == -1 else expand_dims(x, axis)
    )
    config = BertCnnConfig(**TINY)
    with pytest.raises(ValueError, match=r"builtin ops only.*StridedSlice"):
        export_litert(BertCNN._from_tensors(config, random_tensors(config)), tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()
