"""The parity report: the same weights through both builds, compared tap by tap.

Frameworks are imported inside the functions, so `import parity` stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from parity.checkpoint import backbone_checkpoint, embedded_backbone_dir, load_checkpoint
from parity.compare import RunResult, argmax_tap, compare_arrays, compare_taps, diagnose, format_table
from parity.config import BertCnnConfig
from parity.inputs import random_batch
from parity.tokenize import Tokenizer
from parity.tolerance import tolerance_for

# Real sentences (well-known opening lines) of varied length; "Hi" is shorter than
# the widest default kernel once tokenised ([CLS] hi [SEP]), so that path is exercised.
SENTENCES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
    "Call me Ishmael.",
    "Hi",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "The sky above the port was the color of television, tuned to a dead channel.",
    "Happy families.",
)


@dataclass
class Weights:
    """What a report runs: a config, canonical tensors, and inputs."""

    config: BertCnnConfig
    tensors: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    source: str


def load_weights(checkpoint: str | os.PathLike | None = None, *, seed: int = 0) -> Weights:
    """A checkpoint, or the embedded MiniLM backbone with a head drawn from `seed`."""
    if checkpoint is None:
        backbone = embedded_backbone_dir()
        config, tensors, _ = backbone_checkpoint(backbone, seed=seed)
        tok_dir, source = backbone, f"embedded all-MiniLM-L6-v2 + head(seed={seed})"
    else:
        config, tensors = load_checkpoint(checkpoint)
        tok_dir, source = Path(checkpoint), str(checkpoint)
    return Weights(config, tensors, sample_inputs(config, tok_dir, seed=seed), source)


def sample_inputs(config: BertCnnConfig, tokenizer_dir: Path, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Tokenised `SENTENCES`; seeded random ids when the checkpoint carries no tokenizer."""
    if (tokenizer_dir / "tokenizer.json").is_file():
        tok = Tokenizer(tokenizer_dir, max_length=config.max_position_embeddings, pad_token_id=config.pad_token_id)
        return tok(list(SENTENCES))
    lengths = [min(n, config.max_position_embeddings) for n in (29, 6, 3, 25, 18, 17, 4)]
    return random_batch(config, lengths, seed=seed)


def torch_taps(w: Weights, dtype: str = "float32", device: str = "cpu") -> dict[str, np.ndarray]:
    import torch

    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(w.config, w.tensors).to(device=device, dtype=getattr(torch, dtype))
    inputs = {k: torch.from_numpy(v).to(device) for k, v in w.inputs.items()}
    with torch.inference_mode():
        taps = model(**inputs, return_taps=True)
    return {
        k: v.detach().float().cpu().numpy() if v.dtype == torch.bfloat16 else v.detach().cpu().numpy()
        for k, v in taps.items()
    }


def keras_taps(w: Weights, dtype: str = "float32", device: str = "cpu") -> dict[str, np.ndarray]:
    """The Keras build's taps on this process's backend."""
    from parity.backends import keras_taps as taps

    return taps(w.config, w.tensors, w.inputs, dtype, device)[0]


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


def run_parity(
    w: Weights,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    backend: str | None = None,
    keras_w: Weights | None = None,
) -> RunResult:
    """PyTorch build as reference, Keras build (on `backend`) as candidate; `keras_w` = other weights."""
    from parity.backends import current_backend, keras_side

    backend = backend or current_backend()
    kw = keras_w or w
    reference = torch_taps(w, dtype, device)
    ((candidate, meta),) = keras_side(
        backend, [{"task": "taps", "dtype": dtype, "device": device}], kw.config, kw.tensors, w.inputs
    )
    run = compare_taps(
        reference,
        candidate,
        w.inputs["attention_mask"],
        w.config,
        tolerance_for(dtype, device),
        dtype=dtype,
        device=device,
        backend=backend,
    )
    return judge(run, meta)


# -- the `bertcnn report` command ---------------------------------------------
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", "all")


def _dtypes(text: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if not chosen or any(d not in DTYPES for d in chosen):
        raise argparse.ArgumentTypeError(f"expected one or more of {','.join(DTYPES)}. Received: {text!r}")
    return chosen


def _backends(text: str) -> tuple[str, ...]:
    from parity.backends import BACKENDS

    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if chosen == ("all",):
        return BACKENDS
    if not chosen or any(b not in BACKENDS for b in chosen):
        raise argparse.ArgumentTypeError(f"expected all or one or more of {','.join(BACKENDS)}. Received: {text!r}")
    return chosen


# -- report -----------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="DIR", help="canonical checkpoint (default: embedded MiniLM + seeded head)")
    p.add_argument(
        "--keras-checkpoint",
        metavar="DIR",
        help="build the Keras side from this checkpoint instead (localises "
        "a weight difference: the report names the first tap it reaches)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the structured report as JSON")
    p.add_argument("--dtype", type=_dtypes, default=DTYPES, help="float32, float64 or both (default: both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the head for the embedded default (default: 0)")
    p.add_argument(
        "--backend",
        type=_backends,
        default=None,
        metavar="B[,B]",
        help="Keras backend(s): tensorflow, jax, torch or all; others than this process's run in a child "
        "process (default: this process's, normally tensorflow)",
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="cpu, cuda or all (default: cpu)")
    p.add_argument("--grad", action="store_true", help="also compare d(cross-entropy)/d(every weight)")
    p.add_argument(
        "--train-steps",
        type=int,
        default=0,
        metavar="N",
        help="also train N plain-SGD steps in both builds (Keras: compile/fit) and compare the weights",
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw max abs difference per tap, one line per run")
    p.add_argument("--artifact", metavar="OUT", help="check an export directory (bertcnn export) against --checkpoint")


def _keras_weights(args, w: Weights) -> Weights:
    if not args.keras_checkpoint:
        return w
    kw = load_weights(args.keras_checkpoint, seed=args.seed)
    if kw.config != w.config:
        ours, theirs = w.config.to_dict(), kw.config.to_dict()
        diff = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
        raise ValueError(
            "--checkpoint and --keras-checkpoint must share one config to be compared tap by tap. "
            f"Received: differing keys (torch side, keras side) {diff}"
        )
    return replace(kw, inputs=w.inputs)


def _train_batches(w: Weights, steps: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """`steps` batches of the sample texts, rotated one row per step so each batch differs."""
    from parity.grad import seeded_labels

    n = w.inputs["input_ids"].shape[0]
    labels = seeded_labels(w.config, n, seed)
    rolled = [{k: np.roll(v, s, axis=0) for k, v in w.inputs.items()} for s in range(steps)]
    inputs = {k: np.concatenate([r[k] for r in rolled]) for k in w.inputs}
    return inputs, np.concatenate([np.roll(labels, s) for s in range(steps)]), n


def plan(args, devices: list[str]) -> list[dict]:
    """Keras tasks for one backend: (check, dtype, device, tier); strict tiers first on a GPU."""
    tasks = []
    for device in devices:
        for dtype in args.dtype:
            tasks.append({"task": "taps", "dtype": dtype, "device": device, "strict": True, "tier": "strict"})
        if device == "cuda":
            tasks.append({"task": "taps", "dtype": "float32", "device": device, "strict": False, "tier": "default"})
            tasks.append({"task": "taps", "dtype": "bfloat16", "device": device, "strict": False, "tier": "bf16"})
        if args.grad:
            for dtype in args.dtype:
                tasks.append({"task": "grad", "dtype": dtype, "device": device, "strict": True, "tier": "strict"})
    if args.train_steps:
        for dtype in args.dtype:
            tasks.append({"task": "train", "dtype": dtype, "device": "cpu", "tier": "strict"})
    return tasks


def run(args: argparse.Namespace) -> int:
    from parity.backends import current_backend, keras_side
    from parity.devices import keras_gpu, set_matmul_precision, torch_gpu
    from parity.grad import seeded_labels, torch_grads
    from parity.train import DEFAULT_LR, torch_train

    if args.artifact:  # an export, run in its own runtime, vs the PyTorch build (parity.serving.check)
        from parity.serving.check import run_check

        return run_check(args.checkpoint, args.artifact, json_path=args.json)
    if args.train_steps < 0:
        raise ValueError(f"--train-steps must be >= 0. Received: {args.train_steps}")
    w = load_weights(args.checkpoint, seed=args.seed)
    kw = _keras_weights(args, w)
    backends = args.backend or (current_backend(),)
    n, t = w.inputs["input_ids"].shape
    print(f"weights: {w.source}" + (f"; Keras side: {kw.source}" if kw is not w else ""))
    print(f"inputs: {n} texts, padded to {t} tokens (real lengths {w.inputs['attention_mask'].sum(1).tolist()})")
    print("reference: PyTorch build; candidate: Keras build; hidden states compared on real tokens\n")
    labels = seeded_labels(w.config, n, args.seed)
    train_x, train_y, train_bs = _train_batches(w, args.train_steps, args.seed) if args.train_steps else (None,) * 3

    skipped: list[dict] = []
    want = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = []
    for device in want:
        reason = torch_gpu() if device == "cuda" else None
        if reason:
            skipped.append({"device": device, "backend": "all", "reason": reason})
            print(f"skipped {device}: {reason}")
        else:
            devices.append(device)

    ref_cache: dict[tuple, dict[str, np.ndarray]] = {}

    def reference(task: dict) -> dict[str, np.ndarray]:
        key = (task["task"], task["dtype"], task["device"], task.get("tier"))
        if key not in ref_cache:
            if task["device"] == "cuda":
                set_matmul_precision(strict=task.get("strict", True), frameworks=("torch",))
            if task["task"] == "taps":
                ref_cache[key] = torch_taps(w, task["dtype"], task["device"])
            elif task["task"] == "grad":
                ref_cache[key] = torch_grads(w.config, w.tensors, w.inputs, labels, task["dtype"], task["device"])[0]
            else:
                ref_cache[key] = torch_train(
                    w.config, w.tensors, train_x, train_y, batch_size=train_bs, lr=DEFAULT_LR, dtype=task["dtype"]
                )[0]
        return ref_cache[key]

    runs: list[RunResult] = []
    keras_cpu_gpu: dict[tuple, dict] = {}
    for backend in backends:
        usable = []
        for device in devices:
            reason = keras_gpu(backend) if device == "cuda" else None
            if reason:
                skipped.append({"device": device, "backend": backend, "reason": reason})
                print(f"skipped {device} on Keras {backend}: {reason}")
            else:
                usable.append(device)
        tasks = plan(args, usable)
        if not tasks:
            continue
        for task in tasks:
            if task["task"] == "train":
                task.update(batch_size=train_bs, lr=DEFAULT_LR)
        inputs = {"taps": w.inputs, "grad": w.inputs, "train": train_x}
        # Tasks share one child per backend; train takes other inputs, so it gets its own call.
        groups = [[t for t in tasks if t["task"] != "train"], [t for t in tasks if t["task"] == "train"]]
        for group, lab, x in ((groups[0], labels, inputs["taps"]), (groups[1], train_y, train_x)):
            if not group:
                continue
            print(f"running Keras {backend}: {len(group)} task(s)...", file=sys.stderr)
            for task, (arrays, meta) in zip(
                group, keras_side(backend, group, kw.config, kw.tensors, x, lab), strict=True
            ):
                run = _compare(task, reference(task), arrays, w, backend)
                runs.append(judge(run, meta))
                if task["task"] == "taps" and task["tier"] == "strict" and task["dtype"] == "float32":
                    keras_cpu_gpu[(backend, task["device"])] = arrays
                print(format_table(run) + "\n")
    for cross in _cross_device_checks(ref_cache, keras_cpu_gpu, w):
        runs.append(cross)
        print(format_table(cross) + "\n")

    passed = all(r.passed for r in runs)
    for line in diagnose(runs):
        print(line)
    if args.json:
        doc = {"passed": passed, "source": w.source, "results": [r.to_dict() for r in runs], "skipped": skipped}
        if kw is not w:
            doc["keras_source"] = kw.source
        from parity.cli import write_text_atomic

        write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
    if args.plot:
        from parity.plot import plot_runs

        plot_runs(runs, args.plot)
        print(f"wrote {args.plot}")
    if not runs:
        print("nothing compared: " + "; ".join(s["reason"] for s in skipped))
        print("PARITY NOT CHECKED")
        return 0
    print("PARITY OK" if passed else "PARITY FAILED")
    return 0 if passed else 1


def _compare(task: dict, ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], w: Weights, backend: str):
    from parity.grad import grad_names

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
        run = compare_arrays(
            ref,
            cand,
            grad_names(w.config),
            tolerance_for(dtype, device, check),
            prefix=prefix,
            dtype=dtype,
            device=device,
            backend=backend,
            check=check,
        )
    run.check = "forward" if check == "taps" else check
    run.tier = task.get("tier", "strict")
    return run


def _cross_device_checks(ref_cache: dict, keras_arrays: dict, w: Weights) -> list[RunResult]:
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
