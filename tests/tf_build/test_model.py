"""The Keras build's own model: a `.keras` archive and `get_config` round trip (safe mode); the erf GELU exact."""

import numpy as np

import bertcnn_tf
from tests.helpers import random_tensors


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


def test_keras_gelu_is_exact_in_float64():
    """The hand-written erf GELU agrees with torch's exact GELU to rounding in float64."""
    import torch
    from keras import ops

    from bertcnn_tf.bert import activation

    x = np.linspace(-8, 8, 20001)
    ours = ops.convert_to_numpy(activation("gelu", ops.convert_to_tensor(x, "float64")))
    ref = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.abs(ours - ref).max() <= 1e-15
