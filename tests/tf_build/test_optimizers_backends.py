"""TorchAdamW under `fit` on Keras' jax and torch backends, float64, against torch.optim.AdamW.

The Keras backend is process-global, so each backend trains in a child
(`python -m tests.tf_build.test_optimizers_backends DIR`, KERAS_BACKEND set; JAX with x64 on),
which writes canonical weights, moments and gradient norms to DIR/out.npz.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.tf_build.test_optimizers import HP, compare, torch_reference


def _keras_in_child(backend: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", JAX_ENABLE_X64="1")
    with tempfile.TemporaryDirectory(prefix="bertcnn-opt-") as tmp:
        proc = subprocess.run([sys.executable, "-m", "tests.tf_build.test_optimizers_backends", tmp], env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        with np.load(Path(tmp) / "out.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    assert str(arrays.pop("__backend__")) == backend
    return arrays, arrays.pop("__norms__")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fit_with_torch_adamw_matches_torch_on_backend(backend):
    if backend == "jax":
        pytest.importorskip("jax", reason="the jax backend needs the `jax` extra: pip install 'bertcnn[jax]'")
    ref, ref_norms = torch_reference("float64")
    cand, norms = _keras_in_child(backend)
    assert all(a.dtype == np.float64 for a in cand.values())
    run = compare(ref, cand, "float64", backend)
    assert run.passed, [(t.name, t.max_abs, t.atol) for t in run.taps if not t.passed]
    assert (ref_norms > HP["max_grad_norm"]).any() and (ref_norms < HP["max_grad_norm"]).any()
    np.testing.assert_allclose(norms, ref_norms, rtol=1e-12)


def _child(directory: str) -> None:
    from tests.tf_build.test_optimizers import case, keras_run

    arrays, norms, backend = keras_run(*case(), dtype="float64")
    np.savez(Path(directory) / "out.npz", __backend__=np.array(backend), __norms__=norms, **arrays)


if __name__ == "__main__":
    _child(sys.argv[1])
