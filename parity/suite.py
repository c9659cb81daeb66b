"""The parity suite as data: which checks a report runs, how each is compared and judged.

Framework-neutral: the command (`parity.commands.report`) runs the PyTorch build as the
reference and the Keras build on each backend as the candidate, and hands their numpy
results here. Each check is a task dict ({"task": taps|grad|train, "dtype", "device",
"tier", ...}); `compare_task` turns a task's two results into a `RunResult` held to the
tolerance table, and `judge` attaches what the Keras side reported about itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parity.compare import RunResult, argmax_tap, compare_arrays, compare_taps
from parity.config import BertCnnConfig
from parity.layout import rows
from parity.tolerance import tolerance_for


@dataclass
class Subject:
    """What a report runs: a config, canonical tensors, the inputs, and where they came from."""

    config: BertCnnConfig
    tensors: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    source: str
    tokenized: bool = True  # False: seeded random ids (the source has no tokenizer)


def limitation_of(meta: dict, dtype: str) -> str | None:
    """Why the Keras side is not a `dtype` result, or None: what it computed in, not what was asked."""
    computed = [d for d in meta.get("computed_dtypes", []) if d != dtype]
    if not computed:
        return None
    why = f"Keras on {meta.get('backend')} computed {','.join(meta['computed_dtypes'])} although {dtype} was requested"
    if meta.get("jax_enable_x64") is False:
        why += " (jax_enable_x64 is off: JAX truncates float64 to float32)"
    return why


def judge(run: RunResult, meta: dict) -> RunResult:
    """Attach what the backend reported: limitation (not a `dtype` result) and notes."""
    run.limitation = limitation_of(meta, run.dtype)
    run.notes += [n for n in meta.get("notes", []) if n not in run.notes]
    if meta.get("jax_enable_x64") and run.dtype == "float64":
        run.notes.append("jax_enable_x64 on (JAX_ENABLE_X64=1; without it JAX truncates float64 to float32)")
    if run.dtype == "float64" and run.limitation is None and not run.passed:
        worst = max((t.max_rel for t in run.taps), default=0.0)
        if 1e-9 < worst < 1e-5:
            run.notes.append(
                f"float64 outputs but a float32-sized error (max rel {worst:.1e}): an op silently computed in "
                "float32 on this backend, or a small structural difference; the tensorflow float64 run tells which"
            )
    return run


def plan_tasks(dtypes: Sequence[str], devices: Sequence[str], *, grad: bool, train_steps: int,
               mixed: bool = False) -> list[dict]:  # fmt: skip
    """Keras tasks for one backend: (check, dtype, device, tier); strict tiers first on a GPU.

    `mixed` adds the bf16 mixed-precision tier (float32 weights, bf16 compute: torch autocast vs
    Keras `mixed_bfloat16`) on every device.
    """
    tasks = []
    for device in devices:
        for dtype in dtypes:
            tasks.append({"task": "taps", "dtype": dtype, "device": device, "strict": True, "tier": "strict"})
        if mixed:
            tasks.append({"task": "taps", "dtype": "bfloat16", "device": device, "strict": False, "tier": "mixed"})
        if device == "cuda":
            tasks.append({"task": "taps", "dtype": "float32", "device": device, "strict": False, "tier": "default"})
            tasks.append({"task": "taps", "dtype": "bfloat16", "device": device, "strict": False, "tier": "bf16"})
        if grad:
            for dtype in dtypes:
                tasks.append({"task": "grad", "dtype": dtype, "device": device, "strict": True, "tier": "strict"})
    if train_steps:
        for dtype in dtypes:
            tasks.append({"task": "train", "dtype": dtype, "device": "cpu", "tier": "strict"})
    return tasks


def backend_error(backend: str, group: list[dict], e: Exception) -> dict:
    """One line of why (the child's last stderr line: the exception), plus its tail for the JSON."""
    text = str(e).strip()
    lines = [x for x in text.splitlines() if x.strip()]
    reason = lines[-1].strip() if lines else type(e).__name__
    checks = [f"{t['task'] if t['task'] != 'taps' else 'forward'} {t['dtype']} {t['device']}" for t in group]
    return {"backend": backend, "checks": checks, "reason": reason[:300], "detail": "\n".join(lines[-15:])}


def weight_differences(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """(tensor, max abs difference) for every tensor that differs, largest first; same names and shapes assumed."""
    out = []
    for name, x in a.items():
        y = b[name]
        if x.dtype != y.dtype or x.tobytes() != y.tobytes():
            d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
            out.append((name, float(d.max()) if d.size else 0.0))
    return sorted(out, key=lambda kv: -kv[1])


def describe_weight_differences(diffs: list[tuple[str, float]], total: int) -> list[str]:
    shown = ", ".join(f"{k} (max abs {d:.2e})" for k, d in diffs[:5])
    more = f", and {len(diffs) - 5} more" if len(diffs) > 5 else ""
    return [
        f"the two checkpoints' weights differ in {len(diffs)} of {total} tensors: {shown}{more}",
        "the first divergence above is the first tap those tensors feed; this is a weight difference, "
        "not a difference between the builds (--json lists every tensor under weight_differences)",
    ]


def compare_task(task: dict, ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], w: Subject, backend: str):
    dtype, device, check = task["dtype"], task["device"], task["task"]
    tol_dtype = {"default": "float32-default", "bf16": "bfloat16"}.get(task.get("tier"), dtype)
    if check == "taps":
        tol = tolerance_for(tol_dtype, device)
        run = compare_taps(
            ref, cand, w.inputs["attention_mask"], w.config, tol, dtype=dtype, device=device, backend=backend
        )
        if tol.max_argmax_disagreement is not None:
            run.taps.append(argmax_tap(ref["logits"], cand["logits"], tol.max_argmax_disagreement))
    else:
        prefix = "grad/" if check == "grad" else "train/"
        tol = tolerance_for(dtype, device, check)
        common = dict(dtype=dtype, device=device, backend=backend, check=check)
        run = compare_arrays(ref, cand, [r.torch_name for r in rows(w.config)], tol, prefix=prefix, **common)
        if check == "train":  # and every AdamW moment, under canonical names
            moments = [k for k in ref if k.startswith("exp_avg")]
            run.taps += compare_arrays(ref, cand, moments, tol, prefix="moments/", **common).taps
    run.check = "forward" if check == "taps" else check
    run.tier = task.get("tier", "strict")
    return run


def cross_device_checks(ref_cache: dict, keras_arrays: dict, w: Subject) -> list[RunResult]:
    """Same framework on CPU and GPU (strict float32): each framework against itself."""
    tol = tolerance_for("float32", "cpu-vs-cuda")
    mask, runs = w.inputs["attention_mask"], []
    cpu, gpu = ref_cache.get(("taps", "float32", "cpu", "strict")), ref_cache.get(("taps", "float32", "cuda", "strict"))
    pairs = []
    if cpu is not None and gpu is not None:
        pairs.append(("PyTorch build", cpu, gpu))
    for (backend, device), arrays in keras_arrays.items():
        if device == "cuda" and (backend, "cpu") in keras_arrays:
            pairs.append((f"Keras build on {backend}", keras_arrays[(backend, "cpu")], arrays))
    for name, a, b in pairs:
        run = compare_taps(a, b, mask, w.config, tol, dtype="float32", device="cpu-vs-cuda", backend=name)
        run.check = "cpu-vs-cuda"
        runs.append(run)
    return runs


def describe_inputs(w: Subject, *, yours: bool) -> str:
    """What the runs compare on, said as it is: real tokenised texts, or seeded random ids."""
    if w.inputs["input_ids"].ndim == 3:
        n, m, t = w.inputs["input_ids"].shape
        windows = (w.inputs["attention_mask"].sum(-1) > 0).sum(1).tolist()
        return (f"inputs: {n} texts{' (yours)' if yours else ''} read as windows of up to {t} tokens, {m} windows "
                f"at most (windows per text {windows})")  # fmt: skip
    n, t = w.inputs["input_ids"].shape
    lengths = w.inputs["attention_mask"].sum(1).tolist()
    if not w.tokenized:
        return (f"inputs: {n} rows of seeded random token ids ({w.source} has no tokenizer; pass --tokenizer DIR "
                f"to compare on real text), padded to {t} (real lengths {lengths})")  # fmt: skip
    return f"inputs: {n} texts{' (yours)' if yours else ''}, padded to {t} tokens (real lengths {lengths})"
