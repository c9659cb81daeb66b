"""What `bertcnn train` shows and takes beyond its core flow: recipe options, progress, interrupts, quiet imports.

Kept apart from `parity.commands.train` so each module stays readable: the recipe options
(every number typed and bounded at parse time, so `--batch-size 0` is refused the way
`predict` refuses it), the progress lines, SIGINT/SIGTERM handling (the first stops the
run after the current update with a save, a second aborts at once), and a filter for the
lines TensorFlow's C++ runtime prints at import before its own logging is set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import signal
import sys
import threading
import time
from typing import Any

from parity import interrupt
from parity.commands.common import EXIT_ABORTED, EXIT_INTERRUPTED, non_negative, positive
from parity.training.recipe import BEST_METRICS, TrainingRecipe

__all__ = [
    "Interrupts",
    "Reporter",
    "aborted",
    "add_recipe_arguments",
    "given_recipe",
    "nothing_to_do",
    "plural",
    "resume_command",
    "shown_loss",
    "summarize",
]

STATE_NAME = "trainer_state.json"  # parity.training.state's; read here only to say where a run stands

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
    "grad_accum": "grad_accum",
    "keep_best": "keep_best",
    "early_stopping": "early_stopping",
    "mixed_precision": "mixed_precision",
    "long_text": "long_text",
    "stride": "stride",
    "max_windows": "max_windows",
}


# -- argument types: each says what it expected and what it got, as `common.positive` does -------------------------
def _number(text: str, ok, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}. Received: {text!r}")
    return value


def positive_number(text: str) -> float:
    return _number(text, lambda v: v > 0, "a positive number")


def non_negative_number(text: str) -> float:
    return _number(text, lambda v: v >= 0, "a number >= 0")


def fraction(text: str) -> float:
    return _number(text, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def beta(text: str) -> float:
    return _number(text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainingRecipe()
    g = p.add_argument_group("recipe (defaults: torch AdamW / Hugging Face Trainer; on --resume: the saved recipe)")
    g.add_argument("--epochs", type=positive, metavar="N", help=f"default {d.epochs}")
    g.add_argument("--batch-size", type=positive, metavar="N",
                   help=f"rows per micro-batch (per update without --grad-accum), default {d.batch_size}")  # fmt: skip
    g.add_argument("--grad-accum", type=positive, metavar="N",
                   help="micro-batches per update (HF's gradient_accumulation_steps): an update is the mean "
                        "loss of N x --batch-size rows; default 1")  # fmt: skip
    g.add_argument("--lr", type=positive_number, metavar="LR", help=f"peak learning rate, default {d.lr}")
    g.add_argument("--weight-decay", type=non_negative_number, metavar="WD",
                   help=f"default {d.weight_decay}; never on biases, LayerNorm weights")  # fmt: skip
    g.add_argument("--adam-beta1", type=beta, metavar="B1", help=f"default {d.betas[0]}")
    g.add_argument("--adam-beta2", type=beta, metavar="B2", help=f"default {d.betas[1]}")
    g.add_argument("--adam-epsilon", type=positive_number, metavar="EPS", help=f"default {d.eps}")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--warmup-steps", type=non_negative, metavar="N",
                   help="linear warmup over N updates, then linear decay to 0")  # fmt: skip
    w.add_argument("--warmup-ratio", type=fraction, metavar="R",
                   help="warmup over this fraction of all updates (default 0)")  # fmt: skip
    g.add_argument("--max-grad-norm", type=positive_number, metavar="NORM",
                   help=f"global-norm clipping (torch's); default {d.max_grad_norm}")  # fmt: skip
    g.add_argument("--no-clip", action="store_true", help="no gradient clipping")
    g.add_argument("--seed", type=non_negative, metavar="N", help="seeds shuffling and dropout (default 0)")
    g.add_argument("--dtype", choices=("float32", "float64"), help="training dtype, also of the saved weights")
    g.add_argument("--mixed-precision", choices=("bf16",),
                   help="bf16 compute (torch.autocast / Keras mixed_bfloat16) with float32 weights, AdamW moments "
                        "and saves: faster on CPUs and GPUs with bf16 units (default: float32 compute)")  # fmt: skip
    g.add_argument("--no-dropout", action="store_true", help="train with every dropout probability 0")
    g.add_argument("--no-shuffle", action="store_true", help="file order, contiguous batches")
    grouping = g.add_mutually_exclusive_group()
    grouping.add_argument(
        "--group-by-length",
        action="store_true",
        default=None,
        help="shuffle, batching similar lengths (HF's group_by_length; less padding); the default",
    )
    grouping.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                          help="shuffle rows into random batches (HF Trainer's default; more padding)")  # fmt: skip
    g.add_argument("--keep-best", choices=tuple(BEST_METRICS), metavar="METRIC",
                   help="with --eval: DIR's checkpoint is the best epoch's by accuracy, macro_f1 or loss (HF's "
                        "load_best_model_at_end); --resume continues the last epoch's weights")  # fmt: skip
    g.add_argument(
        "--early-stopping",
        type=positive,
        metavar="N",
        help="with --keep-best: stop after N epochs without improvement (Keras' EarlyStopping)",
    )
    g.add_argument("--max-length", type=positive, metavar="N",
                   help=f"tokens per text, recorded in the model's config (max_seq_length); longer: cut, counted "
                        f"(default: the checkpoint's max_seq_length, else {d.max_length})")  # fmt: skip


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
    if args.group_by_length is not None:
        out["group_by_length"] = args.group_by_length
    if args.tune_thresholds:
        out["tune_thresholds"] = True
    return out


# -- what is printed ---------------------------------------------------------------------------------------------
def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 update`, `2 updates`; `plural(1, "class", "classes")`."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def shown_loss(loss: float | None) -> str:
    """4 decimals (0.5782); a loss under 0.001 in 3 significant digits instead of 0.0000."""
    if loss is None:
        return "n/a (no update in this run)"
    return f"{loss:.4f}" if abs(loss) >= 1e-3 or loss == 0 else f"{loss:.3e}"


class Reporter:
    """Progress on stderr: a live line on a terminal (step, loss, rate, eta), else one line per epoch.

    An epoch's train loss is the mean over every update of the epoch: on --resume, the updates
    before the save (`earlier`, the saved log) count too, so the line is the one an uninterrupted
    run prints.
    """

    def __init__(self, total: int, done: int, *, live: bool, earlier: tuple[dict[str, Any], ...] = (),
                 epoch: int = 0):  # fmt: skip
        self.total, self.start_step, self.live = total, done, live
        self.t0 = time.monotonic()
        self.epoch_losses: list[float] = [m["loss"] for m in earlier if "loss" in m and m.get("epoch") == epoch]

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


def nothing_to_do(plan) -> int:
    snap, out = plan.start, plan.out
    if not plan.main:
        return 0
    if plan.args.json:
        summary = summarize(snap, out, 0.0, 0, plan.args.framework)
        print(json.dumps({**summary, "updates_this_run": 0, "interrupted": False}, indent=2))
    else:
        print(f"nothing to do: {out} is finished at {plural(snap.state.step, 'update')} "
              f"({plural(snap.recipe.epochs, 'epoch')}); nothing was rewritten")  # fmt: skip
    return 0


def aborted(args: argparse.Namespace, out, interrupts: Interrupts, *, wrote: bool) -> int:
    """Stopped at once (during start-up, or by a second interrupt): say what DIR holds.

    `wrote`: DIR holds a save of this run; with --resume it holds the save resumed from, whole either way.
    """
    step = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        step = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))["step"]
    if interrupts.armed:
        how = "aborted by a second interrupt"
    else:
        name = signal.Signals(interrupts.signal).name if interrupts.signal else interrupt.signal_name()
        how = f"interrupted by {name} before the first update"
    if not (wrote or args.resume) or step is None:
        print(f"bertcnn train: {how}: stopped; nothing was written", file=sys.stderr)
        return EXIT_ABORTED
    print(f"bertcnn train: {how}: {out} holds the last complete save (update {step}); "
          f"continue with `{resume_command(args)}`", file=sys.stderr)  # fmt: skip
    return EXIT_INTERRUPTED


# Options that start a run: a resume reads them from DIR, so they are left out of its command.
_NOT_ON_RESUME = {"--checkpoint", "--config", "--tokenizer", "--force", "--resume", "--help"}


def resume_command(args: argparse.Namespace) -> str:
    """The command that continues this run: every option it was given (from the parser), with --resume."""
    from parity.commands import build_parser

    parser = build_parser("train")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    given: dict[str, list[str]] = {}
    for action in sub._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag is None or flag in _NOT_ON_RESUME:
            continue
        value = getattr(args, action.dest, None)
        if action.nargs == 0:  # a switch: given when the value is the one it stores
            if value is not None and value == action.const and value != action.default:
                given[flag] = [flag]
        elif value is not None and value != action.default:
            shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
            given[flag] = [flag, shlex.quote(shown)]
    first = [given.pop(f, []) for f in ("--out", "--train", "--framework")]  # where the run is, then the rest
    return " ".join(["bertcnn", "train", "--resume", *(w for ws in [*first, *given.values()] for w in ws)])


def summarize(final, out, seconds: float, truncated: int, framework: str) -> dict[str, Any]:
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
        "kept": _kept(final),
        "early_stopped": final.state.early_stopped,
        "seconds": round(seconds, 3),
        "recipe": final.recipe.to_dict(),
        "problem_type": final.config.problem_type,
        "thresholds": None if final.config.thresholds is None else list(final.config.thresholds),
    }


def _kept(final) -> dict[str, Any] | None:
    """Which epoch DIR's checkpoint holds, with `--keep-best` (None: the last weights, as without it)."""
    best = final.state.best
    if final.recipe.keep_best is None or best is None:
        return None
    return {"epoch": best["epoch"], "step": best["step"], "metric": final.recipe.keep_best, "value": best["value"]}


def kept_line(final) -> str | None:
    """`kept epoch 2 of 4 (eval accuracy 0.8125); stopped early: no better accuracy in 2 epochs`."""
    kept = _kept(final)
    if kept is None:
        return None
    line = f"kept epoch {kept['epoch'] + 1} of {final.recipe.epochs} (eval {kept['metric']} {kept['value']:.4f})"
    if final.state.early_stopped:
        line += f"; stopped early: no better {kept['metric']} in {plural(final.recipe.early_stopping, 'epoch')}"
    return line


# -- interrupts ----------------------------------------------------------------------------------------------------
class Interrupts:
    """SIGINT/SIGTERM while training: until the run is set to train (`arm`, before its first update) the one
    handler of every command (`parity.interrupt`) stops it at once, nothing written; from then, the first
    asks the run to stop after the current update with a complete save (`requested`), and a second
    aborts at once (KeyboardInterrupt), the last complete save kept.

    A second signal within DEBOUNCE_S of the first counts as the same one: torchrun forwards the
    terminal's Ctrl-C to workers that already got it from the terminal. Handlers are set only
    in the main thread (Python's rule) and restored on exit.
    """

    DEBOUNCE_S = interrupt.DEBOUNCE_S

    def __init__(self) -> None:
        self.signal: int | None = None
        self.armed = False
        self._at = 0.0
        self._old: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signal is not None

    def arm(self) -> None:
        """From now on the first signal stops the run after an update, saved; called before the first update."""
        if self.armed:
            return
        self.armed = True
        interrupt.raise_if_requested()  # one that came during start-up (and was swallowed) still stops at once
        if threading.current_thread() is threading.main_thread():
            for s in interrupt.STOPS:
                self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame) -> None:
        now = time.monotonic()
        if self.signal is None:
            self.signal, self._at = signum, now
            if sys.stderr.isatty():
                print(f"\n{signal.Signals(signum).name}: stopping after this update, with a complete save; "
                      "interrupt again to abort at once", file=sys.stderr, flush=True)  # fmt: skip
        elif now - self._at >= self.DEBOUNCE_S:
            interrupt.request(signum)
            raise KeyboardInterrupt

    def __enter__(self) -> Interrupts:
        return self

    def __exit__(self, *exc: object) -> bool:
        for s, handler in self._old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._old = {}
        return False
