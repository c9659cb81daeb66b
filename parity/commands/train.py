"""`bertcnn train`: fine-tune a checkpoint in either framework into a training directory.

The directory is a canonical checkpoint plus the training state (`parity.training.state`);
`--resume` continues it, in the same or the other framework.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from parity.commands import builds
from parity.commands.common import UsageError
from parity.io.checkpoint import load_checkpoint
from parity.io.files import sha256_file
from parity.tokenize import Tokenizer
from parity.training.data import read_labelled
from parity.training.loop import Run, evaluator
from parity.training.recipe import TrainingRecipe
from parity.training.state import has_state, initial_snapshot, load_snapshot, recipe_differences, save_snapshot

# CLI option -> recipe field, for the options that only change the recipe.
_RECIPE_OPTIONS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "weight_decay": "weight_decay",
    "adam_epsilon": "eps",
    "warmup_steps": "warmup_steps",
    "warmup_ratio": "warmup_ratio",
    "max_grad_norm": "max_grad_norm",
    "seed": "seed",
    "dtype": "dtype",
    "max_length": "max_length",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="CK", help="canonical checkpoint to start from (with tokenizer files)")
    p.add_argument("--train", metavar="FILE", required=True, help="labelled .jsonl/.csv/.tsv training file")
    p.add_argument("--out", metavar="DIR", required=True, help="training directory: checkpoint + training state")
    p.add_argument("--framework", choices=("torch", "keras"), required=True)
    p.add_argument("--eval", metavar="FILE", help="held-out labelled file: loss, accuracy, macro-F1 after each epoch")
    d = TrainingRecipe()
    g = p.add_argument_group("recipe (defaults: torch AdamW / Hugging Face Trainer; on --resume: the saved recipe)")
    g.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    g.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    g.add_argument("--lr", type=float, help=f"peak learning rate, default {d.lr}")
    g.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}; never on biases, LayerNorm weights")
    g.add_argument("--adam-beta1", type=float, help=f"default {d.betas[0]}")
    g.add_argument("--adam-beta2", type=float, help=f"default {d.betas[1]}")
    g.add_argument("--adam-epsilon", type=float, help=f"default {d.eps}")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--warmup-steps", type=int, help="linear warmup over N updates, then linear decay to 0")
    w.add_argument("--warmup-ratio", type=float, help="warmup over this fraction of all updates (default 0)")
    g.add_argument("--max-grad-norm", type=float, help=f"global-norm clipping (torch's); default {d.max_grad_norm}")
    g.add_argument("--no-clip", action="store_true", help="no gradient clipping")
    g.add_argument("--seed", type=int, help="seeds shuffling and dropout (default 0)")
    g.add_argument("--dtype", choices=("float32", "float64"), help="training dtype, also of the saved weights")
    g.add_argument("--no-dropout", action="store_true", help="train with every dropout probability 0")
    g.add_argument("--no-shuffle", action="store_true", help="file order, contiguous batches")
    g.add_argument("--group-by-length", action="store_true", help="shuffle, batching similar lengths (less padding)")
    g.add_argument("--max-length", type=int, help=f"tokens per text; longer: cut, counted (default {d.max_length})")
    p.add_argument("--text-column", default="text", help="text column/key (default: text)")
    p.add_argument("--label-column", default="label", help="label column/key (default: label)")
    p.add_argument("--save-every", type=int, metavar="N", help="also save every N updates (always: each epoch end)")
    p.add_argument("--resume", action="store_true", help="continue DIR's last save (either framework's)")
    p.add_argument("--force", action="store_true", help="replace a non-empty DIR (its files are removed)")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    dp = p.add_argument_group("data parallel (torch: launch with `torchrun --nproc-per-node N -m parity train ...`)")
    dp.add_argument("--data-parallel", action="store_true",
                    help="keras on JAX: keras.distribution.DataParallel over all local devices")  # fmt: skip
    dp.add_argument("--dist-backend", choices=("gloo", "nccl"), help="torchrun: default gloo on CPU, nccl on CUDA")


def given_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe fields the user set on the command line (and only those)."""
    out = {field: getattr(args, opt) for opt, field in _RECIPE_OPTIONS.items() if getattr(args, opt) is not None}
    if args.adam_beta1 is not None or args.adam_beta2 is not None:
        d = TrainingRecipe().betas
        out["betas"] = (d[0] if args.adam_beta1 is None else args.adam_beta1,
                        d[1] if args.adam_beta2 is None else args.adam_beta2)  # fmt: skip
    if args.no_clip:
        out["max_grad_norm"] = None
    if args.no_dropout:
        out["dropout"] = False
    if args.no_shuffle:
        out["shuffle"] = False
    if args.group_by_length:
        out["group_by_length"] = True
    return out


class Reporter:
    """Progress on stderr: a live line on a terminal (step, loss, rate, eta), else one line per epoch."""

    def __init__(self, total: int, done: int, *, live: bool):
        self.total, self.start_step, self.live = total, done, live
        self.t0 = time.monotonic()
        self.epoch_losses: list[float] = []

    def __call__(self, record: dict[str, Any]) -> None:
        if "loss" in record:
            self.epoch_losses.append(record["loss"])
            if self.live:
                done = record["step"] - self.start_step
                rate = done / max(time.monotonic() - self.t0, 1e-9)
                eta = (self.total - record["step"]) / rate if rate else 0.0
                print(f"\rstep {record['step']}/{self.total}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
                      f"{rate:.2f} it/s  eta {eta:.0f}s ", end="", file=sys.stderr, flush=True)  # fmt: skip
            return
        if self.live:
            print(file=sys.stderr)
        line = f"epoch {record['epoch'] + 1}: step {record['step']}/{self.total}"
        if self.epoch_losses:
            line += f", train loss {sum(self.epoch_losses) / len(self.epoch_losses):.4f}"
        for k in ("eval_loss", "eval_accuracy", "eval_macro_f1"):
            if k in record:
                line += f", {k.replace('_', ' ')} {record[k]:.4f}"
        print(line, file=sys.stderr, flush=True)
        self.epoch_losses = []

    def epoch_end(self, epoch: int, step: int) -> None:
        """Summary line for an epoch without evaluation (with it, the eval record prints it)."""
        self({"epoch": epoch, "step": step})


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    world = _world(args, out)  # under torchrun: this rank; only rank 0 writes, logs and prints
    main = world is None or world.is_main
    given = given_recipe(args)
    sha = sha256_file(args.train) if Path(args.train).is_file() else None
    if args.save_every is not None and args.save_every < 1:
        raise UsageError(f"--save-every takes a positive number of updates. Received: {args.save_every}")
    if args.resume:
        if not has_state(out):
            raise UsageError(f"--resume needs a training directory with a save; {out} has none (train without "
                             f"--resume to start one). Received: {str(out)!r}")  # fmt: skip
        snap = load_snapshot(out)
        diffs = recipe_differences(snap.recipe, given)
        if diffs:
            raise UsageError("--resume continues the saved recipe; these options differ from it: "
                             + "; ".join(diffs) + ". Drop them to continue, or start a new run in another "
                             f"directory (or --force without --resume). Received: {' '.join(diffs)}")  # fmt: skip
        if sha is not None and sha != snap.state.data_sha256:
            raise UsageError(f"--resume must train on the same data: {args.train} (sha256 {sha[:12]}...) is not the "
                             f"file the saved run used (sha256 {snap.state.data_sha256[:12]}...). "
                             f"Received: {args.train!r}")  # fmt: skip
        recipe, tok_dir = snap.recipe, out
        if snap.state.framework != args.framework:
            print(f"note: resuming a {snap.state.framework} save with {args.framework} "
                  "(weights and moments through the weight table)", file=sys.stderr)  # fmt: skip
    else:
        if not args.checkpoint:
            raise UsageError("--checkpoint CK is required to start training (only --resume reads DIR instead). "
                             "Received: no --checkpoint")  # fmt: skip
        if main and out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
            raise UsageError(f"{out} exists and is not empty; pass --resume to continue it or --force to replace "
                             f"it. Received: {str(out)!r}")  # fmt: skip
        recipe, tok_dir = TrainingRecipe(**given), Path(args.checkpoint)
    if sha is None:
        raise FileNotFoundError(f"Training file not found. Received: {args.train!r}")

    config, _ = load_checkpoint(out if args.resume else args.checkpoint)
    data = read_labelled(args.train, num_labels=config.num_labels, label_names=config.label_names,
                         text_column=args.text_column, label_column=args.label_column)  # fmt: skip
    max_length = min(recipe.max_length, config.max_position_embeddings)
    tok = Tokenizer(tok_dir, max_length=max_length, pad_token_id=config.pad_token_id)
    encoded, truncated = tok.encode_counted(list(data.texts))
    print(f"train: {len(encoded)} rows from {args.train}; {truncated} truncated to {max_length} tokens",
          file=sys.stderr)  # fmt: skip
    evaluate = None
    if args.eval:
        held = read_labelled(args.eval, num_labels=config.num_labels, label_names=data.label_names,
                             text_column=args.text_column, label_column=args.label_column)  # fmt: skip
        held_enc, held_cut = tok.encode_counted(list(held.texts))
        print(f"eval: {len(held_enc)} rows from {args.eval}; {held_cut} truncated", file=sys.stderr)
        evaluate = evaluator(held_enc, held.labels, data.label_names, batch_size=recipe.batch_size,
                             pad_token_id=config.pad_token_id)  # fmt: skip

    if args.resume:
        start = snap
    else:
        start = initial_snapshot(args.checkpoint, recipe, framework=args.framework, data_sha256=sha,
                                 num_rows=len(encoded))  # fmt: skip
        if config.label_names is None and data.named:
            start.config = start.config.replace(label_names=data.label_names)
        if main and args.force and out.exists() and not has_state(out):
            import shutil

            shutil.rmtree(out) if out.is_dir() else out.unlink()
        if main:
            save_snapshot(out, start, tokenizer_from=tok_dir)  # step 0: DIR is a whole save from the start
    total = recipe.total_steps(len(encoded))
    reporter = Reporter(total, start.state.step, live=sys.stderr.isatty())
    run_ = Run(start, encoded, data.labels, out=out if main else None, save_every=args.save_every,
               tokenizer_from=tok_dir, evaluate=evaluate if main else None,
               progress=reporter if main else None)  # fmt: skip
    if evaluate is None and main:
        # One summary line per epoch: wrap the log so an epoch's last update prints it.
        inner = reporter.__call__

        def progress(record: dict[str, Any]) -> None:
            inner(record)
            if "loss" in record and record["batch"] + 1 == run_.steps_per_epoch:
                reporter.epoch_end(record["epoch"], record["step"])

        run_.progress = progress
    t0 = time.monotonic()
    if args.framework == "torch":
        final = builds.runtime("torch").train(run_, rank=world.rank, world_size=world.world_size)
    else:
        final = builds.runtime("keras").train(run_, data_parallel=args.data_parallel)
    seconds = time.monotonic() - t0
    if not main:
        return 0
    summary = summarize(final, out, seconds, truncated, args.framework)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"trained {summary['steps']} updates ({args.framework}, {recipe.dtype}) in {seconds:.1f}s; "
              f"final loss {summary['final_loss']}; wrote {out}")  # fmt: skip
    return 0


def _world(args: argparse.Namespace, out: Path):
    """torch: join torchrun's process group (rank 0 of 1 without torchrun); keras: None."""
    if args.framework == "torch":
        if args.data_parallel:
            raise UsageError("--data-parallel is Keras on JAX; torch trains data-parallel under torchrun: "
                             "`torchrun --nproc-per-node N -m parity train ... --framework torch`. "
                             "Received: --framework torch --data-parallel")  # fmt: skip
        return builds.runtime("torch").join(out, backend=args.dist_backend)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or args.dist_backend:
        raise UsageError("torchrun and --dist-backend are for --framework torch; Keras trains data-parallel in one "
                         "process with --data-parallel (KERAS_BACKEND=jax). "
                         f"Received: WORLD_SIZE={os.environ.get('WORLD_SIZE', '1')}, "
                         f"--dist-backend {args.dist_backend}")  # fmt: skip
    return None


def summarize(final, out: Path, seconds: float, truncated: int, framework: str) -> dict[str, Any]:
    updates = [m for m in final.metrics if "loss" in m]
    evals = [m for m in final.metrics if "eval_loss" in m]
    return {
        "out": str(out),
        "framework": framework,
        "steps": final.state.step,
        "epochs": final.recipe.epochs,
        "finished": final.state.finished,
        "final_loss": updates[-1]["loss"] if updates else None,
        "clipped_updates": sum(bool(m.get("clipped")) for m in updates),
        "truncated": truncated,
        "eval": evals[-1] if evals else None,
        "seconds": round(seconds, 3),
        "recipe": final.recipe.to_dict(),
    }
