"""The Keras side of a parity run, on any Keras backend: in this process, or in a child.

The Keras backend is process-global (fixed at `import keras`), so a backend other
than this process's runs in a child (`python -m parity.commands.keras_child JOB_DIR`)
with `KERAS_BACKEND` set, which runs the Keras build's `runtime.run_task`. Parent and child
exchange JSON and `.npz` only (loaded with `allow_pickle=False`): nothing executable
crosses the boundary.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from parity.commands.builds import BACKENDS, current_backend, runtime
from parity.config import BertCnnConfig


# -- parent side ---------------------------------------------------------------------------
def keras_side(
    backend: str,
    tasks: list[dict],
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
    *,
    timeout: float = 900,
    jax_x64: bool = True,
) -> list[tuple[dict[str, np.ndarray], dict]]:
    """Run `tasks` on the Keras `backend`: in this process when it is ours, else in one child."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown Keras backend; expected one of {BACKENDS}. Received: {backend!r}")
    if backend == current_backend():
        return [runtime("keras").run_task(t, config, tensors, inputs, labels) for t in tasks]
    with tempfile.TemporaryDirectory(prefix="bertcnn-parity-") as tmp:
        d = Path(tmp)
        np.savez(d / "tensors.npz", **tensors)
        np.savez(d / "inputs.npz", **inputs)
        if labels is not None:
            np.save(d / "labels.npy", np.asarray(labels))
        (d / "job.json").write_text(json.dumps({"config": config.to_dict(), "tasks": tasks}), encoding="utf-8")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        if backend == "jax" and jax_x64 and any(t["dtype"] == "float64" for t in tasks):
            # Workaround: without x64 JAX truncates float64 to float32 (with only a warning).
            env["JAX_ENABLE_X64"] = "1"
        elif backend == "jax" and not jax_x64:
            env.pop("JAX_ENABLE_X64", None)
        proc = subprocess.run(
            [sys.executable, "-m", "parity.commands.keras_child", str(d)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"Keras {backend} child failed (exit {proc.returncode}):\n{tail}")
        results = []
        for i in range(len(tasks)):
            with np.load(d / f"out{i}.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            results.append((arrays, json.loads((d / f"meta{i}.json").read_text(encoding="utf-8"))))
        return results


def _child(directory: str) -> int:
    run_task = runtime("keras").run_task  # imported with TensorFlow's start-up chatter muted
    d = Path(directory)
    job = json.loads((d / "job.json").read_text(encoding="utf-8"))
    config = BertCnnConfig.from_dict(job["config"])
    with np.load(d / "tensors.npz", allow_pickle=False) as z:
        tensors = {k: z[k] for k in z.files}
    with np.load(d / "inputs.npz", allow_pickle=False) as z:
        inputs = {k: z[k] for k in z.files}
    labels = np.load(d / "labels.npy", allow_pickle=False) if (d / "labels.npy").is_file() else None
    for i, task in enumerate(job["tasks"]):
        arrays, meta = run_task(task, config, tensors, inputs, labels)
        np.savez(d / f"out{i}.npz", **arrays)
        (d / f"meta{i}.json").write_text(json.dumps(meta), encoding="utf-8")
    return 0


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):
        sys.exit(_child(sys.argv[1]))
