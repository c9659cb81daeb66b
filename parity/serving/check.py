"""The artifact check: an export, run in its own runtime, against the PyTorch build of its checkpoint.

One code path for `bertcnn report --checkpoint CK --artifact OUT` and `bertcnn export
--verify`. The inputs are the report's real sentences plus the shapes that break
exporters: batch 1, length 1, a batch narrower than the widest kernel, heavy
padding, length 128 (or the model's maximum), batch 17. Each is one "tap"
(`logits/<case>`), held to the logits bound of the ("float32", "cpu", "artifact")
tolerance entry. A SavedModel is also run by the session loader TF Serving uses, on
both signatures: rows `logits/<case> (session)` and `logits/<case> (session,
serving_int32)`; one that loader cannot restore or run fails the check (exit 2). An
export made from other weights than CK (its manifest's sha256) fails the check and
says so; it is never compared as if it matched.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.checkpoint import WEIGHTS_NAME, load_checkpoint
from parity.compare import RunResult, TapResult, format_table
from parity.config import BertCnnConfig
from parity.inputs import random_batch
from parity.serving.directory import load_config
from parity.serving.manifest import read_manifest, sha256_file
from parity.serving.runners import RUNTIMES, run_in_child
from parity.tolerance import tolerance_for


@dataclass
class ArtifactResult(RunResult):
    """A RunResult (same JSON, same table) whose label names the artifact, not a Keras backend."""

    @property
    def label(self) -> str:
        return f"{self.check} {self.dtype} on {self.device}, {self.backend}"


def check_cases(
    config: BertCnnConfig, tokenizer_dir: Path, *, seed: int = 0, notes: list[str] | None = None
) -> list[tuple[str, dict]]:
    """(name, inputs) for every case; random ids where a case needs a shape real text would not give."""
    from parity.report import sample_inputs

    longest = min(128, config.max_position_embeddings)
    widest = config.max_kernel_size
    rng = np.random.default_rng(seed)
    # The tokenizer's truncation note would go to stderr, where only errors belong: it is a run note here.
    with contextlib.redirect_stderr(io.StringIO()) as said:
        sentences = sample_inputs(config, tokenizer_dir, seed=seed)
    if notes is not None:
        notes += [line.removeprefix("note: ") for line in said.getvalue().splitlines() if line.strip()]
    cases = [
        ("sentences", sentences),
        ("batch-1", random_batch(config, [min(9, longest)], seed=seed + 1)),
        ("length-1", random_batch(config, [1, 1], seed=seed + 2)),
        # Narrower than the widest kernel (width 1 when the widest kernel is 1: nothing is narrower).
        ("shorter-than-kernel", random_batch(config, [max(widest - 1, 1), 1], seed=seed + 3)),
        ("heavy-padding", random_batch(config, [longest, 1, 2, 1], seed=seed + 4)),
        (f"length-{longest}", random_batch(config, [longest, longest], seed=seed + 5)),
        ("batch-17", random_batch(config, rng.integers(1, min(40, longest) + 1, size=17), seed=seed + 6)),
    ]
    return cases


def torch_logits(config: BertCnnConfig, tensors: dict[str, np.ndarray], batches: list[dict]) -> list[np.ndarray]:
    import torch

    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(config, tensors)
    with torch.inference_mode():
        return [model(**{k: torch.from_numpy(v) for k, v in b.items()}).numpy() for b in batches]


def check_artifact(checkpoint: str | os.PathLike, export: str | os.PathLike) -> ArtifactResult:
    """Compare the export's logits with the PyTorch build of `checkpoint` on every case."""
    manifest = read_manifest(export)  # broken or hostile manifests raise here (exit 2)
    ck_config, tensors = load_checkpoint(checkpoint)
    ex_config = load_config(export)
    tol = tolerance_for("float32", "cpu", "artifact")
    run = ArtifactResult(
        dtype="float32",
        device="cpu",
        backend=f"{manifest.format} export (from the {manifest.framework} build) in {RUNTIMES[manifest.format]}",
        check="artifact",
    )
    ck_hash = sha256_file(Path(checkpoint) / WEIGHTS_NAME)
    if manifest.source_sha256 != ck_hash:
        run.limitation = (
            f"the export was made from other weights: its manifest has sha256 {manifest.source_sha256[:12]}..., "
            f"{Path(checkpoint) / WEIGHTS_NAME} has {ck_hash[:12]}...; compare it with the checkpoint it came from"
        )
    if ex_config.to_dict() != ck_config.to_dict():
        differ = sorted(
            k
            for k in ck_config.to_dict().keys() | ex_config.to_dict().keys()
            if ck_config.to_dict().get(k) != ex_config.to_dict().get(k)
        )
        run.limitation = f"the export's config.json differs from the checkpoint's in {differ}"
        return run
    cases = check_cases(ck_config, Path(checkpoint), notes=run.notes)
    batches = [b for _, b in cases]
    candidates, meta = run_in_child(export, batches)
    reference = torch_logits(ck_config, tensors, batches)
    for loader, candidate in candidates.items():
        suffix = f" ({loader})" if loader else ""
        for (name, _), ref, cand in zip(cases, reference, candidate, strict=True):
            run.taps.append(_logits_tap(f"logits/{name}{suffix}", ref, cand, tol.atol))
    loaded = meta.get("frameworks_loaded", [])
    why = " (`import tensorflow` loads Keras itself)" if "keras" in loaded and manifest.format == "saved_model" else ""
    run.notes.append(f"the runtime's process loaded {', '.join(loaded) or 'no deep-learning framework'}{why}")
    return run


def _logits_tap(name: str, ref: np.ndarray, cand: np.ndarray, bound: float) -> TapResult:
    a, b = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
    if a.shape != b.shape:
        return TapResult(name, list(b.shape), float("inf"), float("inf"), bound, False)
    diff = float(np.abs(a - b).max())
    scale = float(np.abs(a).max())
    finite = bool(np.isfinite(b).all())
    return TapResult(name, list(a.shape), diff, diff / scale if scale else diff, bound, finite and diff <= bound)


def run_check(checkpoint: str | os.PathLike, export: str | os.PathLike, *, json_path: str | None = None) -> int:
    """Print the check as the report prints a run; exit code 0 pass, 1 parity failure."""
    if checkpoint is None:
        raise ValueError(
            "--artifact needs --checkpoint CK, the checkpoint the export was made from. Received: no --checkpoint"
        )
    print(f"artifact: {export}; reference: PyTorch build of {checkpoint}", flush=True)
    run = check_artifact(checkpoint, export)
    print(format_table(run) + "\n")
    if run.limitation:
        print(f"{run.label}: NOT CHECKED against {checkpoint}: {run.limitation}")
    elif not run.passed:
        print(f"{run.label}: the first output that disagrees is {run.first_divergence!r}")
    if json_path:
        from parity.cli import write_text_atomic

        doc = {
            "passed": run.passed,
            "source": str(checkpoint),
            "artifact": str(export),
            "results": [run.to_dict()],
            "skipped": [],
        }
        write_text_atomic(json_path, json.dumps(doc, indent=2) + "\n")
    print("PARITY OK" if run.passed else "PARITY FAILED")
    return 0 if run.passed else 1
