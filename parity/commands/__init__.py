"""`bertcnn` / `python -m parity`: the command line, one module per command (the top layer).

Results go to stdout, errors to stderr. Exit codes: 0 ok, 1 parity failure,
2 bad input (one line saying what was wrong; `--debug` shows the traceback),
3 a report that could not run every check (a Keras backend crashed).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# No surprise downloads, no TensorFlow start-up chatter on stderr.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from parity.commands.common import EXIT_INCOMPLETE, EXIT_INPUT, EXIT_OK, EXIT_PARITY, UsageError

__all__ = ["COMMANDS", "EXIT_INCOMPLETE", "EXIT_INPUT", "EXIT_OK", "EXIT_PARITY", "UsageError", "build_parser", "main"]
DESCRIPTION = (
    "One BERT-CNN text classifier in PyTorch and Keras 3, proven to compute the same function: "
    "report, init, predict, port, train, evaluate, export."
)

# Each command: name -> (module, help). The module defines `add_arguments(parser)` and
# `run(args) -> exit code`; it is imported only when its command runs.
COMMANDS = {
    "report": ("parity.commands.report", "parity report: same weights through both builds, compared tap by tap"),
    "init": ("parity.commands.init", "write a canonical checkpoint: pretrained BERT + seeded CNN head"),
    "predict": ("parity.commands.predict", "logits per text with either build"),
    "port": ("parity.commands.port", "convert weights between checkpoint formats and frameworks, losslessly"),
    "train": ("parity.commands.train", "fine-tune a checkpoint with PyTorch or Keras (same recipe, same result)"),
    "evaluate": ("parity.commands.evaluate", "accuracy, macro-F1, per-label scores, confusion matrix of a file"),
    "export": ("parity.commands.export", "write a serving directory: ONNX, TensorFlow SavedModel or LiteRT"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bertcnn")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, so `--help` and each command stay fast."""
    parser = argparse.ArgumentParser(prog="bertcnn", description=DESCRIPTION)
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
