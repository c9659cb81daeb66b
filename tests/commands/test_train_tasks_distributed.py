"""Data parallel for issue 30's problems: torchrun/DDP and Keras-JAX DataParallel equal one process.

Real commands in their own processes, float64, dropout off, file order; 13 rows in updates of 4
end each epoch with a 1-row update (one rank's share empty, the Keras batch padded). A single-label
run with class weights, read as windows (each rank's share weighs its sum of row weights, not its row
count), and a multi-label run with pos_weight.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bertcnn_tf.distributed import simulated_devices_flag
from parity.config import BertCnnConfig
from tests.commands.test_train_distributed import EXACT, RECIPE, TORCHRUN, WORDS, _assert_same_training, _env, _train
from tests.helpers import MINILM_VOCAB, tiny_checkpoint

CASES = {
    # Norms 0.99..1.87 here: clipping at 1.5 clips some updates, not all (the vacuity check).
    "weighted-windows": ["--class-weights", "{d}/w.json", "--long-text", "windows", "--stride", "2",
                         "--max-length", "8", "--max-grad-norm", "1.5"],
    "multi-label": ["--class-weights", "{d}/w.json", "--label-column", "labels"],
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory, embedded_dir):
    d = tmp_path_factory.mktemp("dp-tasks")
    for name, problem in (("weighted-windows", None), ("multi-label", "multi_label_classification")):
        config = BertCnnConfig(**MINILM_VOCAB, **({"problem_type": problem} if problem else {}))
        sub = d / name
        tiny_checkpoint(sub / "ck", config, seed=5, tokenizer=embedded_dir)
        rng = np.random.default_rng(5)
        rows = []
        for n in rng.integers(1, 20, size=13):
            label = [int(i) for i in range(3) if rng.random() < 0.5] if problem else int(rng.integers(0, 3))
            rows.append({"text": " ".join(rng.choice(WORDS, size=n)), "label" if not problem else "labels": label})
        (sub / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (sub / "w.json").write_text("[0.5, 2.0, 3.0]")
    return d


def _args(data, case):
    return [*RECIPE, *EXACT, *(a.format(d=data / case) for a in CASES[case])]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_torchrun_two_ranks_equal_one_process(data, case):
    d = data / case
    one = _train(d, "one", *_args(data, case), "--framework", "torch")
    two = _train(d, "two", *_args(data, case), "--framework", "torch", launcher=TORCHRUN)
    assert one["steps"] == two["steps"] == 8 and two["finished"]
    worst = _assert_same_training(d / "one", d / "two")
    print(f"{case}: torchrun 2 gloo ranks vs 1 process: max weight/moment diff {worst:.1e}")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_keras_jax_data_parallel_two_devices_equal_one(data, case):
    d = data / case
    env = _env(KERAS_BACKEND="jax", JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu", **simulated_devices_flag(2))
    one = _train(d, "k1", *_args(data, case), "--framework", "keras", env=env)
    two = _train(d, "k2", *_args(data, case), "--framework", "keras", "--data-parallel", env=env)
    assert one["steps"] == two["steps"] == 8
    worst = _assert_same_training(d / "k1", d / "k2")
    print(f"{case}: Keras JAX DataParallel 2 devices vs 1: max weight/moment diff {worst:.1e}")
