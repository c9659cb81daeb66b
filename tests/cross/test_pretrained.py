"""Same public API in both builds: pretrained dirs (either build saves, the other loads), backbone + seeded head."""

import numpy as np
import pytest
import torch

import bertcnn_tf
import bertcnn_torch
from parity.io.checkpoint import load_checkpoint
from tests.helpers import tiny_checkpoint


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


def test_float64_checkpoint_loads_in_float64(tiny_config, tmp_path):
    tiny_checkpoint(tmp_path / "ck", tiny_config, dtype=np.float64)
    assert bertcnn_torch.BertCNN.from_pretrained(tmp_path / "ck").fc.weight.dtype == torch.float64
    assert bertcnn_tf.BertCNN.from_pretrained(tmp_path / "ck").fc.kernel.dtype == "float64"


@pytest.mark.parametrize("build", [bertcnn_torch.BertCNN, bertcnn_tf.BertCNN], ids=["torch", "keras"])
def test_constructor_refuses_a_non_config(build, tiny_config):
    with pytest.raises(ValueError, match="BertCnnConfig"):
        build(tiny_config.to_json())
