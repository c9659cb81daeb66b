"""What every command shares: exit codes, the usage error, argument types, the missing-package check."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Iterable

# 3: a report that could not run every check it was asked for (a Keras backend crashed);
# what finished is still reported. Kept apart from 1, which means a measured parity failure.
EXIT_OK, EXIT_PARITY, EXIT_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3
# Interrupted (SIGINT/SIGTERM) with a complete save written: resumable. 75 is EX_TEMPFAIL (sysexits.h):
# "try again later", which is what a scheduler's requeue should do.
EXIT_INTERRUPTED = 75
# A second interrupt before this run saved anything: nothing to resume (128 + SIGINT, as shells say).
EXIT_ABORTED = 130


class UsageError(ValueError):
    """Bad command-line input."""


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def csv_ints(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated positive integers like 3,4,5 (no empty entries)."""
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers like 3,4,5. Received: {text!r}")
    return values


def label_list(text: str) -> tuple[str, ...]:
    """argparse type: distinct, non-empty comma-separated class names."""
    names = tuple(x.strip() for x in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct, non-empty comma-separated label names like neg,pos. Received: {text!r}"
        )
    return names


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(command: str, needs: Iterable[tuple[str, str, str]]) -> None:
    """Refuse, before any work, a run that would die halfway for want of a package; name the fix.

    `needs`: (module, what needs it, pyproject extra) for every optional package the run would import.
    """
    missing, seen = [], set()
    for module, why, extra in needs:
        if module not in seen and not installed(module):
            missing.append((module, why, extra))
        seen.add(module)
    if missing:
        extras = ",".join(dict.fromkeys(extra for _, _, extra in missing))
        raise ValueError(
            f"bertcnn {command} needs packages that are not installed: "
            + "; ".join(f"{m} (for {why})" for m, why, _ in missing)
            + f". Install them with `pip install 'bertcnn[{extras}]'` (in a clone: `pip install -e '.[{extras}]'`). "
            f"Received: {len(missing)} missing"
        )


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, plus `(default: X)` on every option whose help does not already say its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
            or isinstance(action, argparse._HelpAction)
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default
        return f"{text} (default: {shown})"


# -- the one vocabulary: options that mean the same everywhere are defined once -------------------
SOURCE_HELP = (
    "a checkpoint directory (from `bertcnn init`/`train`/`port`) or one weight file: *.keras, *.safetensors, "
    "*.pt/*.pth/*.bin, *.weights.h5 (with --config/--tokenizer where the file lacks them)"
)


# --force for a folder output: what may be replaced is recorded in the folder's marker (parity.io.owned).
FORCE_FOLDER_HELP = (
    "replace {what} when bertcnn wrote it (a checkpoint, a training directory or an export whose .bertcnn.json lists "
    "every file inside, unchanged); a folder with anything else in it is refused, never emptied"
)


def add_checkpoint(p: argparse.ArgumentParser, *, required: bool = True, what: str = SOURCE_HELP) -> None:
    p.add_argument("--checkpoint", required=required, metavar="CK", help=what)


def add_source_options(p: argparse.ArgumentParser) -> None:
    """--config / --tokenizer: what a weight file that carries neither needs, for every command that reads one."""
    p.add_argument("--config", metavar="FILE", help="config.json for weight files that carry none (.pt, .weights.h5)")
    p.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="folder with tokenizer.json for weight files that carry none (default: the checkpoint's own)",
    )


def add_framework(p: argparse.ArgumentParser, *, required: bool, extra: str = "") -> None:
    p.add_argument(
        "--framework",
        required=required,
        choices=("torch", "keras"),
        help="which build runs the model: the PyTorch one or the Keras 3 one (same weights, same function)" + extra,
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--threads / --no-progress: how a long command uses the machine and the terminal."""
    p.add_argument(
        "--threads",
        type=positive,
        default=None,
        metavar="N",
        help="intra-op threads (default: the framework's, all cores; 1 can win on a busy shared machine)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr even on a terminal")


def add_mixed_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mixed-precision",
        choices=("bf16",),
        default=None,
        help="bf16 compute with float32 weights (torch.autocast / Keras mixed_bfloat16): faster on CPUs and GPUs with "
        "bf16 units, logits within the tolerance table's bfloat16 entry (default: float32)",
    )


def add_long_text(p: argparse.ArgumentParser, *, trains: bool = False) -> None:
    """--long-text / --stride / --max-windows: how a text longer than --max-length is read."""
    g = p.add_argument_group("long documents")
    default_is = (
        "truncate; windows are recorded in DIR's config.json, and every reader reads so"
        if trains
        else "as the model reads, recorded by `train --long-text windows` in its config.json; else truncate"
    )
    g.add_argument(
        "--long-text",
        choices=("truncate", "windows"),
        default=None,
        help="a text longer than --max-length tokens: cut there (truncate), or read whole as overlapping windows "
        "of --max-length tokens, each [CLS] ... [SEP] (Hugging Face's return_overflowing_tokens), the CNN's max "
        f"over time taken over all of them (default: {default_is})",
    )
    g.add_argument(
        "--stride",
        type=non_negative,
        default=None,
        metavar="N",
        help="windows: tokens each window repeats from the one before, Hugging Face's stride (default: the model's "
        "recorded stride, else 0)",
    )
    g.add_argument(
        "--max-windows",
        type=positive,
        default=None,
        metavar="M",
        help="windows: at most M per text; the rest is cut and counted, like truncation (default: the model's "
        "recorded cap, else all)",
    )


def resolve_long_text(long_text: str | None, stride: int | None = None, max_windows: int | None = None,
                      config=None) -> tuple[int, int | None] | None:  # fmt: skip
    """(stride, max_windows) to read long texts as windows, None to cut them: `long_text` ("truncate"/"windows"),
    else as `config`'s model reads (its `windows`, recorded by `train --long-text windows`); `stride` and
    `max_windows` override the recorded ones and are refused where texts are cut."""
    recorded = None if config is None else config.windows
    mode = long_text or ("windows" if recorded else "truncate")
    if mode != "windows":
        given = [f for f, v in (("--stride", stride), ("--max-windows", max_windows)) if v is not None]
        if given:
            verb = "shape" if len(given) > 1 else "shapes"
            whose = "" if long_text else " (the model reads long texts cut at its length)"
            raise UsageError(f"{' and '.join(given)} {verb} the windows of --long-text windows{whose}; add it, or drop "
                             f"{' and '.join(given)}. Received: {' '.join(given)} with --long-text "
                             f"{long_text or 'truncate'}")  # fmt: skip
        return None
    if recorded:  # windows as recorded, refined by what was given
        rs, rm = recorded
        return (rs if stride is None else stride), (rm if max_windows is None else max_windows)
    return stride or 0, max_windows


def long_text_options(args: argparse.Namespace, config=None) -> tuple[int, int | None] | None:
    """`resolve_long_text` for a command's --long-text/--stride/--max-windows and its model's config."""
    return resolve_long_text(args.long_text, args.stride, args.max_windows, config)


def non_negative(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0. Received: {text!r}")
    return value


def source_needs(path: str | None, why: str) -> list[tuple[str, str, str]]:
    """(module, why, extra) that reading or writing weights at `path` needs, by its format."""
    if not path or path == "-":
        return []
    from parity.io import formats as F

    try:
        fmt = F.format_of(path)
    except ValueError:
        return []  # an unknown suffix: the reader says so, with its own message
    if fmt == F.TORCH:
        return [("torch", why, "torch")]
    if fmt in (F.KERAS, F.KERAS_WEIGHTS):
        return [("h5py", why, "tf")]
    return []
