"""Keras files are read with Keras 3's h5 layout written down; that layout is Keras' own, checked by its probe.

The probe (`bertcnn_tf.h5_layout.keras_template`) saves a tiny model whose every variable
holds its own index and maps each h5 dataset back by value; `parity.io.keras_h5.h5_datasets`
must give exactly that mapping, so reading a `.keras` file needs no Keras (and no TensorFlow).
"""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from parity.config import BertCnnConfig
from parity.io.keras_h5 import h5_datasets


@settings(max_examples=12, deadline=None)
@given(
    layers=st.integers(1, 12),
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=11, unique=True),
    hidden=st.one_of(st.none(), st.integers(1, 4)),
)
def test_the_written_down_layout_is_keras_own(layers, widths, hidden):
    from bertcnn_tf.h5_layout import keras_template

    config = BertCnnConfig(
        vocab_size=9, hidden_size=3, num_hidden_layers=layers, num_attention_heads=1, intermediate_size=5,
        max_position_embeddings=8, kernel_sizes=tuple(widths), num_filters=2, num_labels=2, head_hidden_size=hidden,
    )  # fmt: skip
    assert h5_datasets(config) == keras_template(config).datasets


def test_reading_a_keras_file_starts_no_framework(tmp_path):
    """`predict --framework torch` on a .keras file: the reader itself imports neither Keras nor TensorFlow."""
    from parity.commands import builds
    from parity.commands.port import port
    from tests.helpers import tiny_checkpoint

    tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    port(tmp_path / "ck", tmp_path / "m.keras")
    port(tmp_path / "ck", tmp_path / "m.weights.h5")
    assert builds  # the writer above ran the Keras probe in this process; the reader below runs in a fresh one
    code = (
        "import sys\n"
        "from parity.io.reader import read_weights\n"
        f"a = read_weights({str(tmp_path / 'm.keras')!r})\n"
        f"b = read_weights({str(tmp_path / 'm.weights.h5')!r}, config={str(tmp_path / 'ck' / 'config.json')!r})\n"
        "assert all((a.tensors[k] == b.tensors[k]).all() for k in a.tensors)\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
