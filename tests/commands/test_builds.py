"""GPU tiers: run where a CUDA GPU is present, skip with the reason where not.

The precision switches are checked everywhere (they are plain flags, settable on
CPU builds), so the strict tier's "TF32 off in every framework" is tested even on CI.
"""

from __future__ import annotations

import json

import pytest

from parity.commands import main
from parity.commands.builds import gpu_unavailable, set_matmul_precision


def test_strict_tier_switches_tf32_off_in_torch_and_tensorflow():
    import tensorflow as tf
    import torch

    try:
        set_matmul_precision(strict=True, frameworks=("torch", "keras"))
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert tf.config.experimental.tensor_float_32_execution_enabled() is False
        set_matmul_precision(strict=False, frameworks=("torch", "keras"))
        assert torch.backends.cudnn.allow_tf32 is True
        assert tf.config.experimental.tensor_float_32_execution_enabled() is True
    finally:
        set_matmul_precision(strict=False, frameworks=("torch", "keras"))


def test_without_a_gpu_the_cli_says_so_and_skips(tiny_ck, tmp_path, capsys):
    if gpu_unavailable("torch") is None:
        pytest.skip("a GPU is present: the no-GPU path does not apply")
    out = tmp_path / "r.json"
    # Asked for the GPU and checked nothing: a CI gate must not pass (exit 3, "passed": false).
    assert main(["report", "--checkpoint", str(tiny_ck), "--device", "cuda", "--json-out", str(out)]) == 3
    text = capsys.readouterr().out
    assert "no GPU found" in text and "PARITY NOT CHECKED" in text
    doc = json.loads(out.read_text())
    assert doc["results"] == [] and doc["skipped"][0]["device"] == "cuda"
    assert doc["passed"] is False and doc["complete"] is False


@pytest.mark.gpu
def test_gpu_tiers_and_cross_check(tiny_ck, tmp_path):
    reason = gpu_unavailable("torch")
    if reason:
        pytest.skip(reason)
    out = tmp_path / "r.json"
    code = main(["report", "--checkpoint", str(tiny_ck), "--device", "all", "--backend", "torch",
                 "--dtype", "float32", "--json-out", str(out)])  # fmt: skip
    doc = json.loads(out.read_text())
    tiers = {(r["check"], r["device"], r["tier"]) for r in doc["results"]}
    assert ("forward", "cuda", "strict") in tiers and ("forward", "cuda", "bf16") in tiers
    assert any(r["check"] == "cpu-vs-cuda" for r in doc["results"])
    assert code == 0, [(r["check"], r["tier"], r["first_divergence"]) for r in doc["results"] if not r["passed"]]


def test_bf16_tier_plumbing_runs_on_cpu():
    """The bf16 tier's Keras side (bfloat16 build, bf16 -> float32 transport) works without a GPU."""
    import numpy as np

    from bertcnn_tf.runtime import taps as keras_taps
    from parity.config import BertCnnConfig
    from tests.helpers import TINY, random_inputs, random_tensors

    config = BertCnnConfig(**TINY)
    taps, meta = keras_taps(config, random_tensors(config), random_inputs(config, [7, 4, 2]), "bfloat16")
    assert meta["computed_dtypes"] == ["bfloat16"]
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in taps.values())


def test_in_process_keras_task_on_cuda_gets_the_tier_precision(monkeypatch, tiny_config):
    """A Keras task run in this process (its backend is ours) must set the tier's matmul precision,
    as the child process does: otherwise the strict tier on Keras-on-JAX would run with TF32."""
    import bertcnn_tf.runtime as R
    from parity.commands.builds import current_backend
    from parity.commands.keras_child import keras_side

    calls = []
    monkeypatch.setattr(R, "set_matmul_precision", lambda strict: calls.append(strict))
    monkeypatch.setattr(R, "taps", lambda *a, **k: ({}, {}))
    tasks = [{"task": "taps", "dtype": "float32", "device": "cuda", "strict": True},
             {"task": "taps", "dtype": "float32", "device": "cuda", "strict": False}]  # fmt: skip
    keras_side(current_backend(), tasks, tiny_config, {}, {})
    assert calls == [True, False]


INTEL = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) 8480+\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_bf16_units_are_read_from_the_cpu_flags():
    from parity.commands.builds import cpu_without_bf16

    assert cpu_without_bf16(INTEL) is None
    assert cpu_without_bf16(ARM) is None
    assert cpu_without_bf16(EPYC) == "AMD EPYC"
    assert cpu_without_bf16(EPYC.replace("model name\t: AMD EPYC\n", "")) == "this CPU"
    assert cpu_without_bf16("") is None  # nothing to go by: no note


@pytest.mark.parametrize("cpu", ["without", "with"])
def test_bf16_on_a_cpu_without_bf16_units_says_it_will_be_slow(cpu, tmp_path, monkeypatch, capsys):
    import parity.commands.builds as builds
    from tests.helpers import files

    tiny_ck, _ = files(tmp_path)
    monkeypatch.setattr(builds, "cpu_without_bf16", lambda: "AMD EPYC" if cpu == "without" else None)
    argv = ["predict", "--checkpoint", str(tiny_ck), "--framework", "torch", "--mixed-precision", "bf16", "w5 w6"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert ("note: --mixed-precision bf16 on a CPU without bf16 units (AMD EPYC" in err) == (cpu == "without"), err


def test_bf16_training_on_a_cpu_without_bf16_units_says_so_once(tmp_path, monkeypatch, capsys):
    import parity.commands.builds as builds
    from tests.helpers import RECIPE, files

    ck, train = files(tmp_path)
    monkeypatch.setattr(builds, "cpu_without_bf16", lambda: "AMD EPYC")
    argv = ["train", "--checkpoint", str(ck), "--train", str(train), "--out", str(tmp_path / "run"),
            "--framework", "torch", *RECIPE, "--mixed-precision", "bf16"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().err.count("note: --mixed-precision bf16 on a CPU without bf16 units") == 1
