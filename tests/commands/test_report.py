"""`bertcnn report` as a localiser: different weights on each side -> the first tap they reach.

Each case perturbs one tensor of the Keras side's checkpoint; the report must pass
every tap before the one that tensor feeds and name that tap as the first divergence.
The float64 cases inject structural bugs too small for float32 to see.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.commands import main
from parity.compare import RunResult, TapResult, diagnose
from parity.config import BertCnnConfig
from parity.io.checkpoint import save_checkpoint
from parity.suite import Subject, judge, limitation_of
from tests.helpers import TINY, random_inputs, random_tensors, run_parity, tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny checkpoint A and a factory of copies with one tensor perturbed."""
    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config, seed=3)
    root = tmp_path_factory.mktemp("ckpt")
    tiny_checkpoint(root / "a", config, seed=3)

    def perturbed(name: str, how: str = "add"):
        t = dict(tensors)
        t[name] = t[name].T.copy() if how == "transpose" else t[name] + np.float32(0.05)
        d = root / f"b-{name}-{how}"
        save_checkpoint(d, config, t)
        return d

    return root / "a", perturbed, config


@pytest.mark.parametrize(
    ("tensor", "how", "first"),
    [
        ("bert.embeddings.LayerNorm.bias", "add", "embeddings"),
        ("bert.encoder.layer.1.output.dense.weight", "add", "encoder.layer.1"),
        ("bert.encoder.layer.0.attention.self.query.weight", "transpose", "encoder.layer.0"),
        ("convs.1.weight", "add", "convs.1"),
        ("fc.bias", "add", "logits"),
    ],
)
def test_keras_checkpoint_localises_the_first_divergence(checkpoints, tensor, how, first, tmp_path, capsys):
    a, perturbed, _ = checkpoints
    out = tmp_path / "r.json"
    code = main(
        ["report", "--checkpoint", str(a), "--keras-checkpoint", str(perturbed(tensor, how)), "--dtype", "float64",
         "--json", str(out)]
    )  # fmt: skip
    assert code == 1
    doc = json.loads(out.read_text())
    (run,) = doc["results"]
    assert not doc["passed"] and run["first_divergence"] == first
    names = [t["name"] for t in run["taps"]]
    assert all(t["passed"] for t in run["taps"][: names.index(first)])  # forward order: all before pass
    marked = [line for line in capsys.readouterr().out.splitlines() if "<- first divergence" in line]
    assert len(marked) == 1 and marked[0].startswith(first + " ")


def test_same_checkpoint_passes_with_the_documented_schema(checkpoints, tmp_path):
    a, _, _ = checkpoints
    out = tmp_path / "r.json"
    assert main(["report", "--checkpoint", str(a), "--keras-checkpoint", str(a), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["passed"] is True and isinstance(doc["source"], str)
    assert [r["dtype"] for r in doc["results"]] == ["float32", "float64"]
    for r in doc["results"]:
        assert {"dtype", "device", "backend", "passed", "first_divergence", "taps"} <= set(r)
        assert r["first_divergence"] is None and r["backend"] == "tensorflow" and r["device"] == "cpu"
        for t in r["taps"]:
            assert set(t) == {"name", "shape", "max_abs", "max_rel", "atol", "passed"}


def test_mismatched_configs_are_refused(checkpoints, tmp_path, capsys):
    a, _, config = checkpoints
    other = config.replace(num_labels=4)
    tiny_checkpoint(tmp_path / "c", other)
    assert main(["report", "--checkpoint", str(a), "--keras-checkpoint", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "num_labels" in err and "Received:" in err


# -- float64 as the structural tier -------------------------------------------------------
def _weights(config, dtype_seed=5):
    return Subject(config, random_tensors(config, seed=dtype_seed), random_inputs(config, [7, 4, 2]), "tiny")


def test_float64_catches_an_epsilon_that_float32_cannot_see():
    """LayerNorm eps 1e-12 vs 1e-9 moves outputs by ~1e-9 relative: below float32's
    rounding, so float32 passes; float64 names the first LayerNorm (the embeddings)."""
    config = BertCnnConfig(**TINY)
    w = _weights(config)
    kw = Subject(config.replace(layer_norm_eps=1e-9), w.tensors, w.inputs, "eps 1e-9")
    f32 = run_parity(w, dtype="float32", keras_w=kw)
    f64 = run_parity(w, dtype="float64", keras_w=kw)
    assert f32.passed
    assert not f64.passed and f64.first_divergence == "embeddings"
    assert any("STRUCTURAL" in line and "embeddings" in line for line in diagnose([f32, f64]))


def test_float64_names_a_wrong_gelu_form(monkeypatch):
    """The tanh GELU where HF uses erf: first visible in the first encoder layer."""
    import bertcnn_tf.bert as kb

    real = kb.activation
    monkeypatch.setattr(kb, "activation", lambda name, x: real("gelu_new" if name == "gelu" else name, x))
    config = BertCnnConfig(**TINY)
    run = run_parity(_weights(config), dtype="float64")
    assert run.first_divergence == "encoder.layer.0"
    assert all(t.passed for t in run.taps[:1])


def test_keras_gelu_is_exact_in_float64():
    """The hand-written erf GELU agrees with torch's exact GELU to rounding in float64."""
    import torch
    from keras import ops

    from bertcnn_tf.bert import activation

    x = np.linspace(-8, 8, 20001)
    ours = ops.convert_to_numpy(activation("gelu", ops.convert_to_tensor(x, "float64")))
    ref = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.abs(ours - ref).max() <= 1e-15


def test_diagnosis_tells_rounding_from_structure():
    def run(dtype, ok):
        return RunResult(dtype, "cpu", "tensorflow", [TapResult("logits", [2, 2], 1e-3, 1e-3, 1e-5, ok)])

    rounding = diagnose([run("float32", False), run("float64", True)])
    assert len(rounding) == 1 and "rounding" in rounding[0]
    structural = diagnose([run("float32", False), run("float64", False)])
    assert any("STRUCTURAL" in s and "float64" in s for s in structural)


def test_a_float64_request_computed_in_float32_is_not_a_float64_result():
    meta = {"backend": "jax", "computed_dtypes": ["float32"], "jax_enable_x64": False, "notes": []}
    assert "jax_enable_x64 is off" in limitation_of(meta, "float64")
    ok = RunResult("float64", "cpu", "jax", [TapResult("logits", [2, 2], 0.0, 0.0, 1e-12, True)])
    judged = judge(ok, meta)
    assert not judged.passed and judged.limitation
    assert limitation_of({"backend": "jax", "computed_dtypes": ["float64"]}, "float64") is None


def test_bad_arguments_say_what_was_received(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--backend", "theano"])
    assert "Received: 'theano'" in capsys.readouterr().err
    assert main(["report", "--checkpoint", "/nonexistent", "--train-steps", "-1"]) == 2
