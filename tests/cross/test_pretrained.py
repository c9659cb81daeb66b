"""Same public API in both builds: pretrained dirs, backbone + seeded head, Keras saving."""

import numpy as np
import pytest
import torch

import bertcnn_tf
import bertcnn_torch
from parity.io.checkpoint import load_checkpoint
from tests.helpers import random_tensors, tiny_checkpoint


def test_from_backbone_is_bit_identical_in_both_builds(embedded_dir):
    t = bertcnn_torch.BertCNN.from_backbone(embedded_dir, seed=7, num_labels=3, kernel_sizes=(2, 5))
    k = bertcnn_tf.BertCNN.from_backbone(embedded_dir, seed=7, num_labels=3, kernel_sizes=(2, 5))
    sd = {n: v.numpy() for n, v in t.state_dict().items()}
    kw = k.get_canonical_weights()
    assert sd.keys() == kw.keys()
    assert all(sd[n].tobytes() == kw[n].tobytes() for n in sd)
    other = bertcnn_torch.BertCNN.from_backbone(embedded_dir, seed=8, num_labels=3, kernel_sizes=(2, 5))
    assert not torch.equal(other.fc.weight, t.fc.weight)  # the seed really draws the head


def test_torch_save_keras_load_and_back(tiny_config, tmp_path):
    torch.manual_seed(0)
    t = bertcnn_torch.BertCNN(tiny_config).eval()
    t.save_pretrained(tmp_path / "a")
    k = bertcnn_tf.BertCNN.from_pretrained(tmp_path / "a")
    k.save_pretrained(tmp_path / "b")
    _, a = load_checkpoint(tmp_path / "a")
    config_b, b = load_checkpoint(tmp_path / "b")
    assert config_b == tiny_config
    assert all(a[n].tobytes() == b[n].tobytes() for n in a)


def test_tokenizer_travels_with_save_pretrained(embedded_dir, tmp_path):
    t = bertcnn_torch.BertCNN.from_backbone(embedded_dir)
    t.save_pretrained(tmp_path / "ck")
    k = bertcnn_tf.BertCNN.from_pretrained(tmp_path / "ck")
    k.save_pretrained(tmp_path / "ck2")
    assert (tmp_path / "ck2" / "tokenizer.json").read_bytes() == (embedded_dir / "tokenizer.json").read_bytes()


def test_keras_archive_and_config_round_trip(head_config, tiny_inputs, tmp_path):
    import keras

    model = bertcnn_tf.BertCNN(head_config)
    model.set_canonical_weights(random_tensors(head_config, seed=4))
    clone = bertcnn_tf.BertCNN.from_config(model.get_config())
    assert clone.config == head_config
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # safe mode (the default)
    assert isinstance(loaded, bertcnn_tf.BertCNN) and loaded.config == head_config
    np.testing.assert_array_equal(
        np.asarray(loaded(**tiny_inputs, training=False)), np.asarray(model(**tiny_inputs, training=False))
    )


def test_float64_checkpoint_loads_in_float64(tiny_config, tmp_path):
    tiny_checkpoint(tmp_path / "ck", tiny_config, dtype=np.float64)
    assert bertcnn_torch.BertCNN.from_pretrained(tmp_path / "ck").fc.weight.dtype == torch.float64
    assert bertcnn_tf.BertCNN.from_pretrained(tmp_path / "ck").fc.kernel.dtype == "float64"


@pytest.mark.parametrize("build", [bertcnn_torch.BertCNN, bertcnn_tf.BertCNN], ids=["torch", "keras"])
def test_constructor_refuses_a_non_config(build, tiny_config):
    with pytest.raises(ValueError, match="BertCnnConfig"):
        build(tiny_config.to_json())
