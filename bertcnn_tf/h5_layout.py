"""Where Keras puts each variable of this model in its h5 files, learned from Keras itself.

A tiny model of the same structure is saved with every variable filled with its own
index; reading that file back maps each h5 dataset to its variable by value, never by
position. Sizes do not change the layout, so the probe stays small (and is cached per
structure). `parity.io.keras_h5` reads and writes `.keras` / `.weights.h5` files with
the template this returns, without importing Keras.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from bertcnn_tf.model import BertCNN
from parity.config import BertCnnConfig
from parity.io.keras_h5 import KerasTemplate, structure


def keras_template(config: BertCnnConfig) -> KerasTemplate:
    """The h5 layout of `config`'s model (the `template_of` that `parity.io` readers and writers take)."""
    return _probe(structure(config))


@functools.lru_cache(maxsize=16)
def _probe(structure: BertCnnConfig) -> KerasTemplate:
    import h5py

    model = BertCNN(structure)
    prefix = model.name + "/"
    by_index = {}
    for i, v in enumerate(model.weights):
        v.assign(np.full(tuple(v.shape), i + 1, dtype="float32"))
        by_index[i + 1] = v.path.removeprefix(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "probe.keras"
        model.save(archive)
        with zipfile.ZipFile(archive) as zf:
            cfg = json.loads(zf.read("config.json"))
            meta = zf.read("metadata.json")
            h5bytes = zf.read("model.weights.h5")
    groups, datasets = [], {}
    with h5py.File(io.BytesIO(h5bytes), "r") as f:
        groups.append(("", tuple((k, str(v)) for k, v in f.attrs.items())))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = by_index[int(np.asarray(obj[()]).flat[0])]
            else:
                groups.append((name, tuple((k, str(v)) for k, v in obj.attrs.items())))

        f.visititems(visit)
    if sorted(datasets.values()) != sorted(by_index.values()):
        raise RuntimeError("Keras weight layout probe did not find every variable exactly once")
    return KerasTemplate(tuple(groups), datasets, cfg, meta)
