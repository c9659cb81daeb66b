"""`bertcnn train`: fine-tune a checkpoint in either framework into a training directory.

The directory is a canonical checkpoint plus the training state (`parity.training.state`);
`--resume` continues it, in the same or the other framework. A run is three steps:
`prepare` checks everything that can fail and reads the inputs (nothing is written),
`execute` trains (saving as it goes), `finish` says what happened. SIGINT/SIGTERM during
start-up (before the first update) stop the run at once, nothing written (exit 130); from
then on they stop it after the current update with a complete save (exit 75: resume it),
and a second one aborts at once, leaving the last complete save. Every check of the
arguments runs before the frameworks are imported. One writer per directory (an OS lock,
held for the whole run by the process that writes: rank 0 under torchrun).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.commands import builds
from parity.commands.common import (
    EXIT_ABORTED,
    EXIT_INTERRUPTED,
    FORCE_FOLDER_HELP,
    UsageError,
    add_checkpoint,
    add_framework,
    add_run_options,
    add_source_options,
    positive,
)
from parity.commands.train_checks import check_environment, check_tensorboard, claim_out, refuse_conflicts
from parity.commands.train_tasks import add_task_arguments, check_problem, class_weights, read_data, read_labels
from parity.commands.train_ui import (
    Interrupts,
    Reporter,
    aborted,
    add_recipe_arguments,
    given_recipe,
    kept_line,
    nothing_to_do,
    plural,
    resume_command,
    shown_loss,
    summarize,
)
from parity.io.files import sha256_file
from parity.io.hub import resolve
from parity.io.reader import read_weights
from parity.stderr import quiet_native_stderr
from parity.training.loop import Run
from parity.training.recipe import TrainingRecipe
from parity.training.state import (
    STATE_NAME,
    Snapshot,
    adopt,
    initial_snapshot,
    load_snapshot,
    recipe_differences,
)

__all__ = ["add_arguments", "execute", "finish", "given_recipe", "prepare", "run", "summarize"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    start = (
        "checkpoint to start from: a checkpoint directory or one weight file (*.keras, *.safetensors, "
        "*.pt with --config, *.weights.h5 with --config); not with --resume"
    )
    add_checkpoint(p, required=False, what=start)
    add_source_options(p)
    p.add_argument("--train", metavar="FILE", required=True, help="labelled .jsonl/.csv/.tsv training file")
    p.add_argument("--out", metavar="DIR", required=True, help="training directory: checkpoint + training state")
    add_framework(p, required=True, extra="; trains with it (a save resumes in either)")
    p.add_argument("--eval", metavar="FILE", help="held-out labelled file: loss, accuracy, macro-F1 after each epoch")
    add_recipe_arguments(p)
    add_task_arguments(p)
    p.add_argument("--text-column", default="text", metavar="NAME", help="text column/key (default: text)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="label column/key (default: label; labels for a multi-label model)")  # fmt: skip
    p.add_argument("--label-separator", default="|", metavar="C",
                   help="multi-label CSV/TSV: the character between a row's labels (default: |)")  # fmt: skip
    p.add_argument("--save-every", type=positive, metavar="N", help="also save every N updates (always: epoch ends)")
    p.add_argument("--resume", action="store_true", help="continue DIR's last save (either framework's)")
    p.add_argument("--force", action="store_true", help=FORCE_FOLDER_HELP.format(what="an existing DIR"))
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    p.add_argument(
        "--tensorboard",
        metavar="LOGDIR",
        help="also write TensorBoard scalars there (the same tags in both frameworks; appended on --resume)",
    )
    add_run_options(p)
    dp = p.add_argument_group("data parallel (torch: launch with `torchrun --nproc-per-node N -m parity train ...`)")
    dp.add_argument("--data-parallel", action="store_true",
                    help="keras on JAX: keras.distribution.DataParallel over all local devices")  # fmt: skip
    dp.add_argument("--dist-backend", choices=("gloo", "nccl"), help="torchrun: default gloo on CPU, nccl on CUDA")


@dataclass
class Plan:
    """What `prepare` decided and read: everything `execute` needs, nothing written yet."""

    args: argparse.Namespace
    out: Path
    world: Any  # bertcnn_torch.distributed.World under torch; None for keras
    start: Snapshot | None
    tok_dir: Path
    encoded: list | None = None
    labels: Any = None
    evaluate: Any = None
    truncated: int = 0

    @property
    def main(self) -> bool:
        return self.world is None or self.world.is_main


def run(args: argparse.Namespace) -> int:
    # Every check of the arguments and inputs comes before the frameworks' imports (seconds).
    refuse_conflicts(args)
    check_environment(args)
    _check_inputs(args)
    out, interrupts, started = Path(args.out), Interrupts(), []
    writes = args.framework != "torch" or os.environ.get("RANK", "0") == "0"  # torchrun: rank 0 writes
    with claim_out(args, out) if writes else contextlib.nullcontext():  # checked, locked, recovered: one writer
        if writes and args.tensorboard:
            check_tensorboard(args, out)
        before = _state_of(out)
        try:
            with interrupts:  # the first SIGINT/SIGTERM after start-up stops the run at a complete save; a second
                return _run(args, out, interrupts, started, writes)  # aborts
        except KeyboardInterrupt:  # start-up, or a second interrupt: at once
            if not writes:  # rank 0 says it
                return EXIT_INTERRUPTED if interrupts.armed else EXIT_ABORTED
            return aborted(args, out, interrupts, wrote=any(r.saves for r in started) or _state_of(out) != before)


def _check_inputs(args: argparse.Namespace) -> None:
    """What the command line names must be there: refused in a blink, not after the imports."""
    if not args.resume and not args.checkpoint:
        raise UsageError("--checkpoint CK is required to start training (only --resume reads DIR instead). "
                         "Received: no --checkpoint")  # fmt: skip
    for flag, path in (("--train", args.train), ("--eval", args.eval)):
        if path and not Path(path).is_file():
            what = "is a folder" if Path(path).is_dir() else "not found"
            raise FileNotFoundError(f"{flag} {path!r}: {what}; expected a labelled .jsonl/.csv/.tsv file. "
                                    f"Received: {flag} {path!r}")  # fmt: skip
    if args.checkpoint:
        src = resolve(args.checkpoint, flag="--checkpoint")  # a hub id of a bertcnn checkpoint, too
        if not src.exists():
            raise FileNotFoundError(f"--checkpoint {args.checkpoint!r} not found; expected a checkpoint directory "
                                    f"or weight file. Received: {args.checkpoint!r}")  # fmt: skip
    if args.tokenizer and not (Path(args.tokenizer) / "tokenizer.json").is_file():
        raise UsageError(f"--tokenizer must be a folder with a tokenizer.json (it is copied into DIR). "
                         f"Received: --tokenizer {args.tokenizer!r}")  # fmt: skip


def _state_of(out: Path) -> tuple[int, int] | None:
    """Which save DIR holds (inode and time of its trainer_state.json): whether this run published one."""
    try:
        st = (out / STATE_NAME).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _run(args: argparse.Namespace, out: Path, interrupts: Interrupts, started: list, writes: bool) -> int:
    # torch: join torchrun's group (a no-op in one process); only rank 0 writes DIR, logs and prints.
    world = builds.runtime("torch").join(out, backend=args.dist_backend, recover=False) if args.framework == "torch" \
        else None  # fmt: skip
    if world is not None:
        world.barrier()  # the other ranks read DIR only now (rank 0 recovered it under the lock)
    plan = prepare(args, out, world)
    if plan.start.state.finished:
        return nothing_to_do(plan)
    if writes and args.resume:
        adopt(out)  # a directory saved before markers existed: its verified files become the listing
    if writes and plan.start.recipe.mixed_precision == "bf16":
        builds.bf16_note(args.framework)
    final, seconds, stopped = execute(plan, interrupts, started)
    if world is not None:
        world.close()
    return finish(plan, final, seconds, stopped, interrupts.signal)


# -- prepare: every check that can fail, and the inputs read; nothing written --------------------------------
def prepare(args: argparse.Namespace, out: Path, world) -> Plan:
    """Read and check the start, the data and the tokenizer: the whole plan, nothing written."""
    main = world is None or world.is_main
    sha = sha256_file(args.train)
    given = given_recipe(args)
    if args.resume:
        start = load_snapshot(out, recover_first=False)  # recovered by `run`, under the lock
        check_problem(args, start.config)
        data = None
        if args.class_weights is not None:  # resolved against the data, then held to the saved numbers
            data = read_labels(args, start.config)
            given["class_weights"] = class_weights(args, data)
        _check_resume(args, start, given, sha, main)
        plan = Plan(args, out, world, start, out)
        _check_backend_dtype(args, start.recipe)
        if not start.state.finished:
            read_data(plan, start.config, start.recipe, data)
        return plan
    w = read_weights(args.checkpoint, config=args.config)  # every source; Keras files need no Keras
    check_problem(args, w.config)
    if "max_length" not in given and w.config.max_seq_length is not None:
        given["max_length"] = w.config.max_seq_length  # the length the model reads, unless --max-length says
    recipe = TrainingRecipe(**given)
    _check_backend_dtype(args, recipe)
    plan = Plan(args, out, world, None, _tokenizer_dir(args, w))
    data = read_labels(args, w.config)
    if args.class_weights is not None:
        recipe = recipe.replace(class_weights=class_weights(args, data))
    data = read_data(plan, w.config, recipe, data)
    plan.start = initial_snapshot(w.config, w.tensors, recipe, framework=args.framework, data_sha256=sha,
                                  num_rows=len(plan.encoded))  # fmt: skip
    if w.config.label_names is None and data.named:
        plan.start.config = plan.start.config.replace(label_names=data.label_names)
    return plan


def _check_resume(args: argparse.Namespace, snap: Snapshot, given: dict, sha: str, main: bool) -> None:
    diffs = recipe_differences(snap.recipe, given)
    if diffs:
        raise UsageError("--resume continues the saved recipe; these options differ from it: " + "; ".join(diffs)
                         + ". Drop them to continue, or start a new run in another directory (or --force without "
                         f"--resume). Received: {' '.join(diffs)}")  # fmt: skip
    if sha != snap.state.data_sha256:
        raise UsageError(f"--resume must train on the same data: {args.train} (sha256 {sha[:12]}...) is not the file "
                         f"the saved run used (sha256 {snap.state.data_sha256[:12]}...): it changed since the save, "
                         f"or is another file; pass the original file, or start a new run in another --out. "
                         f"Received: {args.train!r}")  # fmt: skip
    if snap.recipe.keep_best and not args.eval and not snap.state.finished:
        raise UsageError(f"This run keeps the best epoch by eval {snap.recipe.keep_best}: --resume needs the same "
                         "--eval FILE it was started with. Received: no --eval")  # fmt: skip
    if main and snap.state.framework != args.framework and not snap.state.finished:
        print(f"note: resuming a {snap.state.framework} save with {args.framework} "
              "(weights and moments through the weight table)", file=sys.stderr)  # fmt: skip


def _tokenizer_dir(args: argparse.Namespace, w) -> Path:
    if args.tokenizer:
        return Path(args.tokenizer)  # a folder with a tokenizer.json: `_check_inputs`
    own = w.tokenizer_dir or w.backbone_tokenizer
    if own is None or not (Path(own) / "tokenizer.json").is_file():
        raise UsageError(f"{args.checkpoint} carries no tokenizer.json; pass --tokenizer DIR (a folder with the "
                         "tokenizer.json of the checkpoint or Hugging Face BERT these weights came from). "
                         "Received: no --tokenizer")  # fmt: skip
    return Path(own)


def _check_backend_dtype(args: argparse.Namespace, recipe: TrainingRecipe) -> None:
    if args.framework != "keras" or recipe.dtype != "float64" or builds.current_backend() != "jax":
        return
    if "jax" in sys.modules:
        import jax

        on = bool(jax.config.jax_enable_x64)
    else:
        on = os.environ.get("JAX_ENABLE_X64", "").strip().lower() in ("1", "true", "yes", "on")
    if not on:
        raise UsageError("float64 training on Keras' JAX backend needs JAX_ENABLE_X64=1 in the environment (JAX "
                         "silently truncates float64 to float32 otherwise). "
                         "Received: JAX_ENABLE_X64 unset")  # fmt: skip


# -- execute: train, saving as it goes -------------------------------------------------------------------------
def execute(plan: Plan, interrupts: Interrupts, started: list | None = None) -> tuple[Snapshot, float, bool]:
    args, main = plan.args, plan.main
    recipe = plan.start.recipe
    total = recipe.total_steps(len(plan.encoded))
    reporter = Reporter(total, plan.start.state.step, live=main and sys.stderr.isatty() and not args.no_progress,
                        earlier=tuple(plan.start.metrics), epoch=plan.start.state.epoch)  # fmt: skip
    run_ = Run(plan.start, plan.encoded, plan.labels, out=plan.out if main else None, save_every=args.save_every,
               tokenizer_from=plan.tok_dir, evaluate=plan.evaluate, progress=reporter if main else None,
               save_start=not args.resume, stop=interrupts.requested, started=interrupts.arm)  # fmt: skip
    if started is not None:
        started.append(run_)  # what `run` says after an abort: whether this run saved anything
    shown = reporter
    if plan.evaluate is None and main:
        # One summary line per epoch: wrap the log so an epoch's last update prints it.
        def shown(record: dict[str, Any]) -> None:
            reporter(record)
            if "loss" in record and record["batch"] + 1 == run_.steps_per_epoch:
                reporter.epoch_end(record["epoch"], record["step"])

    board = None

    def progress(record: dict[str, Any]) -> None:
        nonlocal board
        shown(record)
        if args.tensorboard:
            if board is None:  # opened with the first record: an interrupted start-up leaves no event file
                from parity.training.tensorboard import TensorBoardLog

                board = TensorBoardLog(args.tensorboard, start_step=plan.start.state.step)
            board(record)

    if main:
        run_.progress = progress
    try:
        return _train(plan, run_)
    finally:
        if board is not None:
            board.close()


def _train(plan: Plan, run_: Run) -> tuple[Snapshot, float, bool]:
    args = plan.args
    t0 = time.monotonic()
    if args.framework == "torch":
        builds.set_threads("torch", args.threads)
        final = builds.runtime("torch").train(run_, rank=plan.world.rank, world_size=plan.world.world_size)
    else:
        with quiet_native_stderr():  # TensorFlow's C++ start-up lines, printed before its logging is set up
            runtime = builds.runtime("keras")
        builds.set_threads("keras", args.threads)
        final = runtime.train(run_, data_parallel=args.data_parallel)
    return final, time.monotonic() - t0, run_.stopped


# -- finish: say what happened -----------------------------------------------------------------------------------
def finish(plan: Plan, final: Snapshot, seconds: float, stopped: bool, signum: int | None) -> int:
    args, out = plan.args, plan.out
    if not plan.main:
        return EXIT_INTERRUPTED if stopped else 0
    done = final.state.step - plan.start.state.step
    summary = summarize(final, out, seconds, plan.truncated, args.framework)
    summary["updates_this_run"] = done
    summary["interrupted"] = stopped
    if args.json:
        print(json.dumps(summary, indent=2))
    if stopped:
        name = signal.Signals(signum).name if signum else "a signal"
        total = final.recipe.total_steps(final.state.num_rows)
        print(f"bertcnn train: interrupted by {name} after update {final.state.step} of {total}: {out} holds a "
              f"complete save there; continue with `{resume_command(args)}`", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    if not args.json:
        count = plural(done, "update")
        if args.resume:
            count += f" in this run ({final.state.step} in all)"
        loss = summary["final_loss"]
        print(f"trained {count} ({args.framework}, {final.recipe.dtype}) in {seconds:.1f}s; last update's loss "
              f"{shown_loss(loss)}; wrote {out}")  # fmt: skip
        kept = kept_line(final)
        if kept:
            print(kept)
        if final.recipe.tune_thresholds and final.config.thresholds:
            pairs = zip(final.config.labels, final.config.thresholds, strict=True)
            chosen = ", ".join(f"{n} {t:.4f}" for n, t in pairs)
            print(f"thresholds chosen on {args.eval} (saved in {out / 'config.json'}): {chosen}")
    return 0
