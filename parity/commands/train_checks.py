"""What `bertcnn train` refuses before any work: conflicting options, a missing package or backend, unsafe outputs.

Every check here runs before the first byte is written; --out is checked under its writer lock
(`claim_out`), so a second writer is told who holds it, and a refused run leaves nothing behind
(the lock file goes with the lock).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from parity.commands import builds
from parity.commands.common import UsageError, require, source_needs
from parity.io.destination import claim
from parity.io.outputs import DIR, check_existing, check_output, ours
from parity.training.state import has_state

__all__ = ["check_environment", "check_out", "check_tensorboard", "claim_out", "refuse_conflicts"]


def refuse_conflicts(args: argparse.Namespace) -> None:
    if args.resume:
        for flag, value in (("--force", args.force), ("--checkpoint", args.checkpoint), ("--config", args.config),
                            ("--tokenizer", args.tokenizer)):  # fmt: skip
            if value:
                why = ("--force starts over, --resume continues" if flag == "--force" else
                       f"--resume reads the model from DIR, so {flag} would be ignored")  # fmt: skip
                raise UsageError(f"--resume and {flag} conflict: {why}. Drop one of them. "
                                 f"Received: --resume {flag}{'' if value is True else ' ' + str(value)}")  # fmt: skip
    if args.keep_best and not args.eval:
        raise UsageError(f"--keep-best picks the best epoch by held-out metrics: add --eval FILE (labelled rows kept "
                         f"out of --train). Received: --keep-best {args.keep_best} without --eval")  # fmt: skip
    if args.early_stopping and not args.keep_best:
        raise UsageError("--early-stopping watches the --keep-best metric: add --keep-best accuracy|macro_f1|loss. "
                         f"Received: --early-stopping {args.early_stopping} without --keep-best")  # fmt: skip
    if args.no_clip and args.max_grad_norm is not None:
        raise UsageError("--no-clip and --max-grad-norm conflict: one turns clipping off, the other sets its norm. "
                         f"Drop one of them. Received: --no-clip --max-grad-norm {args.max_grad_norm}")  # fmt: skip


def check_environment(args: argparse.Namespace) -> None:
    """Where and with what the run will train: refused now rather than after a save."""
    world_size = os.environ.get("WORLD_SIZE", "1")
    if args.framework == "torch" and args.data_parallel:
        raise UsageError("--data-parallel is Keras on JAX; torch trains data-parallel under torchrun: "
                         "`torchrun --nproc-per-node N -m parity train ... --framework torch`. "
                         "Received: --framework torch --data-parallel")  # fmt: skip
    if args.framework == "keras" and (world_size not in ("", "1") or args.dist_backend):
        raise UsageError("torchrun and --dist-backend are for --framework torch; Keras trains data-parallel in one "
                         f"process with --data-parallel (KERAS_BACKEND=jax). Received: WORLD_SIZE={world_size}, "
                         f"--dist-backend {args.dist_backend}")  # fmt: skip
    backend = builds.current_backend() if args.framework == "keras" else None
    if args.data_parallel and backend != "jax":
        raise UsageError("--data-parallel is Keras' DataParallel, which runs on the JAX backend: set "
                         "KERAS_BACKEND=jax (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N simulates "
                         f"N devices). Received: KERAS_BACKEND={backend}")  # fmt: skip
    needs = [("jax", "--data-parallel", "jax")] if args.data_parallel else []
    needs += builds.needs(args.framework, f"--framework {args.framework}")
    if args.tensorboard:
        needs.append(("tensorboard", "--tensorboard", "tensorboard"))
    require("train", needs + source_needs(args.checkpoint, "--checkpoint"))


def out_inputs(args: argparse.Namespace) -> list:
    """The run's inputs --out must stay clear of."""
    if args.resume:
        return [args.train, args.eval]
    return [args.checkpoint, args.train, args.eval, args.config, args.tokenizer]


def claim_out(args: argparse.Namespace, out: Path):
    """--out checked, locked (one writer) and recovered for the whole run (`parity.io.destination.claim`)."""
    return claim(out, flag="--out", kind=DIR, inputs=out_inputs(args), check=lambda p: check_out(args, p))


def check_out(args: argparse.Namespace, out: Path) -> None:
    """What may be at --out: a run to --resume (files of the user's inside are kept); else nothing, an empty
    folder, or with --force a folder bertcnn wrote that holds nothing else."""
    if args.resume:
        if not out.is_dir() or out.is_symlink() or not has_state(out):
            raise UsageError(f"--resume needs a training directory with a save; {out} has none (train without "
                             f"--resume to start one). Received: {str(out)!r}")  # fmt: skip
        return
    if not os.path.lexists(out) or ours(out) == "an empty folder":
        return
    if args.force:
        check_existing(out, flag="--out", kind=DIR, force=True)
        return
    check_existing(out, flag="--out", kind=DIR, force=True)  # a folder --force could not replace says why first
    hint = "pass --resume to continue it or --force to replace it" if has_state(out) else "pass --force to replace it"
    raise UsageError(f"{out} exists and is not empty; {hint} (it is {ours(out)}). Received: {str(out)!r}")


def check_tensorboard(args: argparse.Namespace, out: Path) -> None:
    """--tensorboard LOGDIR is appended to, never replaced, so it may exist; not a file, an input or inside --out."""
    board = Path(args.tensorboard)
    inputs = [args.checkpoint, args.train, args.eval, args.config, args.tokenizer]
    if not board.exists():
        check_output(board, flag="--tensorboard", kind=DIR, inputs=[*inputs, out])
        return
    if not board.is_dir():
        raise UsageError(f"--tensorboard names a folder for event files; {str(board)!r} is a file. Choose a folder. "
                         f"Received: --tensorboard {str(board)!r}")  # fmt: skip
    if not os.access(board, os.W_OK | os.X_OK):
        raise UsageError(f"--tensorboard: the folder {str(board)!r} is not writable; choose one you can write to. "
                         f"Received: --tensorboard {str(board)!r}")  # fmt: skip
    _not_an_input(board, [*inputs, out], flag="--tensorboard")


def _not_an_input(out: Path, inputs: list, flag: str = "--out") -> None:
    """check_output's rule for a directory it does not recognise: not the current folder, not an input."""
    where = out.resolve()
    for other in [Path.cwd(), *[Path(i) for i in inputs if i]]:
        o = other.resolve()
        if where == o or where in o.parents or (other != Path.cwd() and o in where.parents):
            raise UsageError(f"{flag} must not be, contain or lie inside the current folder or an input of this run "
                             f"({str(other)!r}). Choose another path. Received: {flag} {str(out)!r}")  # fmt: skip
