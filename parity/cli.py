"""`bertcnn` / `python -m parity`: the parity report, checkpoint init, prediction.

Results go to stdout, errors to stderr. Exit codes: 0 ok, 1 parity failure,
2 bad input (one line saying what was wrong; `--debug` shows the traceback),
3 a report that could not run every check (a Keras backend crashed).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

# No surprise downloads, no TensorFlow start-up chatter on stderr.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# 3: a report that could not run every check it was asked for (a Keras backend crashed);
# what finished is still reported. Kept apart from 1, which means a measured parity failure.
EXIT_OK, EXIT_PARITY, EXIT_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3


class UsageError(ValueError):
    """Bad command-line input."""


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 3,4,5. Received: {text!r}") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write whole or not at all: a temp file beside `path`, renamed into place."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


# -- init (this module) -------------------------------------------------------------------------
def _label_list(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct, non-empty comma-separated label names like neg,pos. Received: {text!r}"
        )
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", metavar="DIR", help="where to write the checkpoint (must be empty or new)")
    p.add_argument(
        "--backbone", metavar="HF_BERT_DIR", help="Hugging Face BERT directory (default: the embedded MiniLM)"
    )
    p.add_argument(
        "--labels",
        type=_label_list,
        default=None,
        metavar="NAME,NAME,...",
        help="class names in id order, e.g. neg,pos; sets --num-labels (default: none, ids stand in for names)",
    )
    p.add_argument(
        "--num-labels", type=int, default=None, metavar="N", help="number of classes (default: 2, or --labels' count)"
    )
    p.add_argument(
        "--kernel-sizes", type=_csv_ints, default=(3, 4, 5), metavar="3,4,5", help="conv widths (default: 3,4,5)"
    )
    p.add_argument("--num-filters", type=int, default=100, metavar="N", help="filters per width (default: 100)")
    p.add_argument(
        "--head-hidden-size",
        type=int,
        default=None,
        metavar="N",
        help="add the seed Keras example's dense+ReLU layer of N units (default: none, the seed PyTorch head)",
    )
    p.add_argument(
        "--no-mask-padding",
        action="store_true",
        help="max-pool over padding too, exactly as the seeds (default: windows touching padding are left out)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the head initialisation (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint in DIR (default: refuse)")


def run(args: argparse.Namespace) -> int:
    from parity.checkpoint import CONFIG_NAME, backbone_checkpoint, embedded_backbone_dir, save_checkpoint

    dest = Path(args.directory)
    if dest.exists() and any(dest.iterdir()) and not args.force:
        raise UsageError(f"{dest} already exists and is not empty; pass --force to overwrite. Received: {str(dest)!r}")
    labels = args.labels
    if labels is not None and args.num_labels not in (None, len(labels)):
        raise UsageError(
            f"--num-labels {args.num_labels} disagrees with --labels, which names {len(labels)} classes; "
            f"drop --num-labels (--labels sets it). "
            f"Received: --labels {','.join(labels)} --num-labels {args.num_labels}"
        )
    num_labels = len(labels) if labels is not None else (2 if args.num_labels is None else args.num_labels)
    backbone = Path(args.backbone) if args.backbone else embedded_backbone_dir()
    config, tensors, hf = backbone_checkpoint(
        backbone,
        seed=args.seed,
        kernel_sizes=args.kernel_sizes,
        num_filters=args.num_filters,
        num_labels=num_labels,
        label_names=labels,
        head_hidden_size=args.head_hidden_size,
        mask_padding=not args.no_mask_padding,
    )
    if hf.ignored:
        print(f"note: not part of the backbone, left out: {', '.join(hf.ignored)}", file=sys.stderr)
    save_checkpoint(dest, config, tensors, tokenizer_from=backbone)
    named = f", labels {', '.join(labels)}" if labels else ""
    print(
        f"wrote {dest / CONFIG_NAME} and weights: {len(tensors)} tensors, "
        f"{sum(v.size for v in tensors.values()):,} parameters, {num_labels} classes{named}"
    )
    return EXIT_OK


# Each command: name -> (module, help). The module defines `add_arguments(parser)` and
# `run(args) -> exit code`; it is imported only when its command runs.
COMMANDS = {
    "report": ("parity.report", "parity report: same weights through both builds, compared tap by tap"),
    "init": ("parity.cli", "write a canonical checkpoint: pretrained BERT + seeded CNN head"),
    "predict": ("parity.predict", "logits per text with either build"),
    "port": ("parity.port", "convert weights between checkpoint formats and frameworks, losslessly"),
    "train": ("parity.training.command", "fine-tune a checkpoint with PyTorch or Keras (same recipe, same result)"),
    "evaluate": ("parity.training.evaluate", "accuracy, macro-F1, per-label scores, confusion matrix of a file"),
    "export": ("parity.serving.command", "write a serving directory: ONNX, TensorFlow SavedModel or LiteRT"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bertcnn")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, so `--help` and each command stay fast."""
    parser = argparse.ArgumentParser(prog="bertcnn", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if a in COMMANDS), None))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if args.debug:
            raise
        print(f"bertcnn {args.command}: error: {e}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
