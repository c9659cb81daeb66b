"""The weight table: covers the real models exactly; ports are strict and bit-exact (never by position)."""

import numpy as np
import pytest
from hypothesis import given, settings

from parity.config import BertCnnConfig
from parity.layout import PortError, expected_shapes, keras_to_torch, rows, torch_to_keras
from tests.helpers import TINY, configs, random_tensors


@given(configs(max_layers=3))
def test_table_round_trip_is_bit_exact(config):
    tensors = random_tensors(config)
    back = keras_to_torch(torch_to_keras(tensors, config), config)
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].tobytes() == v.tobytes(), k


def test_table_matches_the_torch_state_dict(head_config):
    from bertcnn_torch import BertCNN

    sd = BertCNN(head_config).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(head_config)


def test_table_matches_the_keras_variables(head_config):
    from bertcnn_tf import BertCNN

    model = BertCNN(head_config)
    got = {v.path.removeprefix("bert_cnn/"): tuple(v.shape) for v in model.weights}
    assert got == {r.keras_path: r.keras_shape for r in rows(head_config)}


def test_ops_really_transpose(tiny_config):
    """Dense (out, in) -> (in, out); Conv1d (out, in, k) -> (k, in, out): checked by element."""
    tensors = random_tensors(tiny_config)
    keras = torch_to_keras(tensors, tiny_config)
    w = tensors["convs.2.weight"]  # (F, H, 5)
    assert keras["convs/2/kernel"][4, 7, 1] == w[1, 7, 4]
    q = tensors["bert.encoder.layer.1.attention.self.query.weight"]
    assert keras["bert/encoder/layer/1/attention/self/query/kernel"][2, 9] == q[9, 2]


def test_missing_extra_and_misshaped_are_all_named(tiny_config):
    tensors = random_tensors(tiny_config)
    del tensors["fc.bias"]
    tensors["classifier.weight"] = np.zeros((3, 3), np.float32)
    tensors["convs.0.weight"] = np.zeros((5, 12, 3), np.float32)  # width 2 expected
    with pytest.raises(PortError) as e:
        torch_to_keras(tensors, tiny_config)
    msg = str(e.value)
    assert "missing: fc.bias (expected shape (3,))" in msg
    assert "unexpected: classifier.weight (shape (3, 3))" in msg
    assert "wrong shape: convs.0.weight: expected (5, 12, 2), got (5, 12, 3)" in msg


def test_never_by_position(tiny_config):
    """Same shapes, swapped names: a positional port would pass; ours keeps the names."""
    tensors = random_tensors(tiny_config)
    swapped = dict(tensors)
    a, b = "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.key.weight"
    swapped[a], swapped[b] = tensors[b], tensors[a]
    keras = torch_to_keras(swapped, tiny_config)
    np.testing.assert_array_equal(keras["bert/encoder/layer/0/attention/self/query/kernel"], tensors[b].T)


@settings(max_examples=30, deadline=None)
@given(config=configs(max_layers=4))
def test_size_by_arithmetic_is_the_weight_tables(config):
    """`size_of` counts without building the table (a hostile config could ask for billions of rows)."""
    from parity.layout import size_of

    table = rows(config)
    assert size_of(config) == (len(table), sum(int(np.prod(r.torch_shape)) for r in table))


@pytest.mark.parametrize("changes", [{"num_hidden_layers": 20_000}, {"vocab_size": 10**12},
                                     {"num_filters": 10**9}, {"kernel_sizes": tuple(range(1, 6000))}])  # fmt: skip
def test_a_config_past_the_size_bound_is_refused_naming_where(changes):
    from parity.layout import check_size

    config = BertCnnConfig(**{**TINY, "max_position_embeddings": 6000, **changes})
    with pytest.raises(ValueError, match=r"^cfg.json describes a model of .* past the 2,000,000,000 parameters"):
        check_size(config, "cfg.json")
    check_size(BertCnnConfig(**TINY), "cfg.json")  # the tiny model passes
