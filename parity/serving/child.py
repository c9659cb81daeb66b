"""The artifact check's child process: an export run in a fresh process, on batches sent as files.

`run_in_child` starts `python -m parity.serving.child EXPORT JOB`, exchanging JSON and `.npz`
(`allow_pickle=False`) only, so the check cannot be helped by anything the parent process has
loaded. A SavedModel is run there twice over: by `tf.saved_model.load`, and by the session loader
TF Serving and `saved_model_cli` use (through both of its signatures), because the two restore
variables differently and one can work where the other does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from parity.serving.manifest import INPUT_NAMES, SIGNATURE_INT32, read_manifest
from parity.serving.runners import RUNTIMES, SESSION_LOADER, SavedModelSessionRunner, _one_line, open_export

FRAMEWORK_MODULES = ("torch", "keras", "transformers", "tensorflow", "jax")


def run_in_child(
    directory: str | os.PathLike,
    batches: Sequence[Mapping[str, np.ndarray]],
    *,
    texts: Sequence[Sequence[str]] = (),
    timeout: float = 900,
) -> tuple[dict[str, list[np.ndarray]], dict]:
    """Logits for each batch from the export, computed in a fresh process; plus what that process loaded.

    Keyed by loader: "" for the format's runner, and for a SavedModel also "session" (the
    session loader on `serving_default`) and "session, serving_int32" (int32 inputs). A `--text`
    export also runs each batch of `texts` through its strings interface: `meta["text"]` is
    {loader: [{"logits", "input_ids", "attention_mask"(, "selected")} per batch]} ("" and, for a SavedModel, "session").
    """
    with tempfile.TemporaryDirectory(prefix="bertcnn-artifact-") as tmp:
        job = Path(tmp)
        np.savez(job / "inputs.npz", **{f"{i}.{k}": v for i, b in enumerate(batches) for k, v in b.items()})
        spec = {"batches": len(batches), "texts": [list(t) for t in texts]}
        (job / "job.json").write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(
            [sys.executable, "-m", "parity.serving.child", str(Path(directory).resolve()), str(job)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        error = job / "error.txt"
        if error.is_file():
            raise ValueError(error.read_text(encoding="utf-8").strip())
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ValueError(
                f"the {str(directory)!r} export crashed its runtime (exit {proc.returncode}); re-export it. "
                f"Received: {tail[:300]}"
            )
        meta = json.loads((job / "meta.json").read_text(encoding="utf-8"))
        with np.load(job / "out.npz", allow_pickle=False) as z:
            logits = {label: [z[f"{j}.{i}"] for i in range(len(batches))] for j, label in enumerate(meta["loaders"])}
            meta["text"] = {
                label: [
                    {k: z[f"t{j}.{i}.{k}"] for k in _TEXT_SAVED if f"t{j}.{i}.{k}" in z.files}
                    for i in range(len(texts))
                ]
                for j, label in enumerate(meta.get("text_loaders", []))
            }
        return logits, meta


_TEXT_SAVED = ("logits", "input_ids", "attention_mask", "selected")  # selected: a multi-label model's


def _second_loaders(fmt: str, path: Path, text: bool) -> list[tuple[str, Callable, Callable | None]]:
    """(label, forward, text forward) for the other ways the check runs this export: a SavedModel as TF Serving
    loads it."""
    if fmt != "saved_model":
        return []
    session = SavedModelSessionRunner(path, text=text)
    return [("session", session, session.text if text else None),
            (f"session, {SIGNATURE_INT32}", partial(session, signature=SIGNATURE_INT32), None)]  # fmt: skip


def _child(directory: str, job_dir: str) -> int:
    job = Path(job_dir)
    where = None  # which loader a run failed in, once it is not the format's own runner
    try:
        runner, manifest, config = open_export(directory)
        spec = json.loads((job / "job.json").read_text(encoding="utf-8"))
        n, texts = spec["batches"], spec.get("texts", [])
        with np.load(job / "inputs.npz", allow_pickle=False) as z:
            batches = [{k: z[f"{i}.{k}"] for k in INPUT_NAMES} for i in range(n)]
        ids_in = getattr(runner, "takes_ids", True)  # a --text ONNX model takes strings only
        out = {f"0.{i}": np.asarray(runner(b)) for i, b in enumerate(batches)} if ids_in else {}
        loaders = [("", runner, runner.text if manifest.text else None)] if ids_in else []
        text_loaders = [("", runner.text)] if manifest.text else []
        where = SESSION_LOADER
        loaders += _second_loaders(manifest.format, Path(directory) / manifest.model_file, manifest.text)
        for j, (_, forward, _) in enumerate(loaders[1:], start=1):
            out.update({f"{j}.{i}": np.asarray(forward(b)) for i, b in enumerate(batches)})
        text_loaders += [(label, fn) for label, _, fn in loaders[1:] if fn is not None]
        for j, (_, fn) in enumerate(text_loaders):
            for i, batch in enumerate(texts):
                got = fn(batch)
                out.update({f"t{j}.{i}.{k}": np.asarray(got[k]) for k in _TEXT_SAVED if k in got})
    except (ValueError, FileNotFoundError) as e:
        (job / "error.txt").write_text(str(e).splitlines()[0] if str(e) else type(e).__name__, encoding="utf-8")
        return 3
    except Exception as e:  # a runtime error while running (e.g. a graph that cannot take this shape)
        where = f"under {where}" if where else f"in {RUNTIMES.get(_format(directory), 'its runtime')}"
        (job / "error.txt").write_text(
            f"the export failed {where}: {_one_line(e)}; re-export it with `bertcnn export`. Received: {directory!r}",
            encoding="utf-8",
        )
        return 3
    np.savez(job / "out.npz", **out)
    meta = {
        "runtime": RUNTIMES[manifest.format],
        "loaders": [label for label, *_ in loaders],
        "text_loaders": [label for label, _ in text_loaders],
        "frameworks_loaded": sorted(m for m in FRAMEWORK_MODULES if m in sys.modules),
        "num_labels": config.num_labels,
    }
    (job / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return 0


def _format(directory: str) -> str | None:
    try:
        return read_manifest(directory).format
    except (ValueError, FileNotFoundError):
        return None


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):
        sys.exit(_child(sys.argv[1], sys.argv[2]))
