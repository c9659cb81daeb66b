"""Keras `DataParallel` on JAX over 2 simulated CPU devices is the same training as 1 device.

The child process (this file, run as a script) sees two devices through
`XLA_FLAGS=--xla_force_host_platform_device_count=2`; it trains once on one device with
no distribution, then, from the same weights, with `DataParallel` over both. Batches of
5, 5, 1 rows: neither 5 nor 1 splits over 2 devices, so the padding path is exercised
on every step. float64 (JAX_ENABLE_X64=1), dropout off, file order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bertcnn_tf.distributed import pad_for_devices, simulated_devices_flag

ROOT = Path(__file__).resolve().parents[2]
ROWS, BATCH, EPOCHS = 11, 5, 2


@pytest.mark.parametrize(("size", "n"), [(6, 2), (5, 2), (1, 2), (7, 3), (4, 1)])
def test_padding_keeps_the_mean_and_zero_weights_the_copies(size, n):
    rng = np.random.default_rng(size)
    x = {"input_ids": rng.integers(0, 9, (size, 4))}
    y = rng.integers(0, 3, size)
    px, py, w = pad_for_devices(x, y, n, dtype="float64")
    assert len(py) % n == 0 and len(py) - size < n
    np.testing.assert_array_equal(px["input_ids"][:size], x["input_ids"])
    np.testing.assert_array_equal(px["input_ids"][size:], np.repeat(x["input_ids"][:1], len(py) - size, axis=0))
    assert (w[size:] == 0).all()
    losses = rng.random(size) + 0.5  # Keras "sum_over_batch_size": sum(w * l) / padded size
    padded_losses = np.concatenate([losses, np.full(len(py) - size, 7.0)])
    assert abs((w * padded_losses).sum() / len(py) - losses.mean()) <= 1e-15
    if size % n == 0:
        assert (w == 1.0).all()  # nothing padded, nothing rescaled
    else:  # the pitfall: zero-weighting the copies without rescaling divides by the padded size
        plain = (w > 0) * padded_losses
        assert abs(plain.sum() / len(py) - losses.mean()) > 1e-3


# -- the child: 1 device, then DataParallel over 2 -------------------------------------------
def _batches():
    from parity.config import BertCnnConfig
    from tests.helpers import TINY, random_inputs, random_tensors

    config = BertCnnConfig(**TINY, head_hidden_size=7).without_dropout()
    tensors = random_tensors(config, seed=3, dtype=np.float64)
    lengths = [7, 4, 2, 5, 1, 6, 3, 7, 2, 4, 6]
    inputs = random_inputs(config, lengths, seed=3)
    labels = np.random.default_rng(3).integers(0, config.num_labels, size=len(lengths))
    batches = []
    for _ in range(EPOCHS):
        for i in range(0, ROWS, BATCH):
            idx = np.arange(i, min(i + BATCH, ROWS))
            width = int(inputs["attention_mask"][idx].sum(axis=1).max())
            batches.append(({k: v[idx, :width] for k, v in inputs.items()}, labels[idx]))
    return config, tensors, batches


def _child(out: Path) -> None:
    import keras

    from bertcnn_tf import distributed as KD
    from bertcnn_tf.optimizers import TorchAdamW
    from bertcnn_tf.runtime import build as build_keras
    from parity.training import TrainingRecipe

    config, tensors, batches = _batches()

    class Batches(keras.utils.PyDataset):
        def __init__(self, n_devices):
            super().__init__()
            self.n = n_devices

        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            x, y = batches[i]
            px, py, w = pad_for_devices(x, y, self.n, dtype="float64")
            return px, py, w

    def train(n_devices):
        model = build_keras(config, tensors, "float64")
        recipe = TrainingRecipe(epochs=EPOCHS, batch_size=BATCH, lr=1e-2, warmup_steps=2, max_grad_norm=0.5,
                                dtype="float64", dropout=False, shuffle=False)  # fmt: skip
        model.compile(
            optimizer=TorchAdamW.from_recipe(recipe, model, ROWS),  # torch's AdamW, schedule and clipping
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"),
        )
        model.fit(Batches(n_devices), epochs=1, shuffle=False, verbose=0)
        return model

    one = train(1).get_canonical_weights()
    dist = KD.use_data_parallel()
    n = KD.device_count()
    model = train(n)
    sharded = model.trainable_variables[0].value.sharding
    two = model.get_canonical_weights()
    refused = ""
    try:  # without padding, JAX refuses to shard 5 rows over 2 devices
        x, y = batches[0]
        model.fit(x, y, batch_size=len(y), epochs=1, verbose=0)
    except Exception as e:  # the message is what is checked
        refused = f"{type(e).__name__}: {e}"
    np.savez(out / "keras.npz", **{f"one/{k}": v for k, v in one.items()}, **{f"two/{k}": v for k, v in two.items()},
             )  # fmt: skip
    meta = {"devices": n, "mesh": str(dist.device_mesh.devices.tolist()), "replicated_on": len(sharded.device_set),
            "refused": refused[:2000], "steps": len(batches)}  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kdp")
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="jax", JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu",
               **simulated_devices_flag(2))  # fmt: skip
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(out / "keras.npz")
    return {p: {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(p + "/")} for p in
            ("one", "two")}, json.loads((out / "meta.json").read_text())  # fmt: skip


@pytest.mark.slow  # a JAX child compiling 4 train steps: ~70 s of CPU
def test_two_simulated_devices_equal_one_device(keras_run):
    from parity.tolerance import tolerance_for

    w, meta = keras_run
    assert meta["devices"] == 2 and meta["replicated_on"] == 2, meta
    tol = tolerance_for("float64", "cpu", "train")
    worst = {k: float(np.abs(w["two"][k] - w["one"][k]).max()) for k in w["one"]}
    bad = {k: d for k, d in worst.items() if d > tol.bound(k, float(np.abs(w["one"][k]).max()))}
    assert not bad, bad
    print(f"Keras DataParallel 2 devices vs 1, {meta['steps']} AdamW steps: max weight diff {max(worst.values()):.1e}")


@pytest.mark.slow
def test_an_unpadded_uneven_batch_is_refused_by_jax(keras_run):
    _, meta = keras_run
    assert meta["refused"], "JAX sharded 5 rows over 2 devices?"
    print(meta["refused"][:300])


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
