"""Keras' own conventions on the Keras build: `model.export(DIR)` with no arguments right after construction (it
refused: `The model provided has never called`), and `summary()` with every layer's output shape (it showed `?`)."""

from __future__ import annotations

import numpy as np
import pytest

from parity.config import BertCnnConfig
from parity.serving.manifest import INPUT_NAMES
from tests.helpers import TINY, random_inputs, random_tensors

tf = pytest.importorskip("tensorflow", reason="the tf extra is not installed: pip install 'bertcnn[tf]'")


@pytest.fixture(scope="module")
def model():
    from bertcnn_tf import BertCNN

    config = BertCnnConfig(**TINY, head_hidden_size=7)
    return BertCNN._from_tensors(config, random_tensors(config, seed=9))


def test_export_without_arguments_takes_every_batch_and_length(model, tmp_path):
    model.export(str(tmp_path / "sm"), verbose=False)  # never called before: the model states its own inputs
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    spec = loaded.signatures["serving_default"].structured_input_signature[1]
    assert {k: (s.dtype, tuple(s.shape)) for k, s in spec.items()} == {k: (tf.int64, (None, None)) for k in INPUT_NAMES}
    for lengths in ([1], [2, 9, 5], [model.config.max_position_embeddings] * 3):
        batch = random_inputs(model.config, lengths, seed=len(lengths))
        want = np.asarray(model(**batch, training=False))
        got = loaded.serve(*(tf.constant(batch[k]) for k in INPUT_NAMES)).numpy()
        assert np.abs(got - want).max() <= 1e-6


def test_summary_shows_every_output_shape(model):
    lines = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    rows = {
        name: line for line in lines for name in ("bert", "convs", "dropout", "hidden", "fc") if f"│ {name} (" in line
    }
    assert set(rows) == {"bert", "convs", "dropout", "hidden", "fc"}
    assert not any("│ ?" in row for row in rows.values()), "\n".join(lines)
    assert "(None, 15)" in rows["dropout"] and "(None, 7)" in rows["hidden"] and "(None, 3)" in rows["fc"]
    assert "(None, None, 12)" in rows["bert"] and "(None, None, 5)" in rows["convs"]
