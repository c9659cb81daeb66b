"""`bertcnn` / `python -m parity`: the command line, one module per command (the top layer).

Results go to stdout, errors to stderr. Exit codes: 0 ok, 1 parity failure,
2 bad input (one line saying what was wrong; `--debug` shows the traceback),
3 a report that could not run every check (a Keras backend crashed), 75 train interrupted
with a save to resume, 130 interrupted (SIGINT/SIGTERM: one line, nothing half-written;
`parity.interrupt` is the one handler, installed here around every command).
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import os
import sys

# No surprise downloads, no TensorFlow start-up chatter on stderr.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from parity import interrupt
from parity.commands.common import (
    EXIT_ABORTED,
    EXIT_INCOMPLETE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARITY,
    HelpFormatter,
    UsageError,
)

__all__ = [
    "COMMANDS",
    "EXIT_INCOMPLETE",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARITY",
    "UsageError",
    "build_parser",
    "main",
]
# Write failures that are the disk's, not the program's: reported in one line, exit 2.
DISK_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the disk is read-only",
}
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


EXIT_CODES = (
    "Exit codes: 0 done (report: every check asked for ran and passed); 1 parity failure (a compared result is "
    "out of tolerance); 2 bad input, a missing optional package or an unsafe output path (one line on stderr, "
    "nothing written); 3 incomplete (report: fewer checks ran than were asked, e.g. no GPU or a crashed Keras "
    "backend; what ran is still reported); 75 interrupted and resumable (train: SIGINT/SIGTERM, a complete save "
    "was written; continue with --resume); 130 interrupted (SIGINT/SIGTERM, any command: one line on stderr, "
    "nothing left half-written; train: before its first update, or by a second interrupt before it saved)."
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported, so `--help` and each command stay fast."""
    parser = argparse.ArgumentParser(
        prog="bertcnn", description=DESCRIPTION, epilog=EXIT_CODES, allow_abbrev=False, formatter_class=HelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name, help=help_text, description=help_text, allow_abbrev=False, formatter_class=HelpFormatter
        )
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.epilog = f"{p.epilog} {EXIT_CODES}" if p.epilog else EXIT_CODES
            p.set_defaults(run=module.run)
    return parser


def _refuse_unknown_options(parser: argparse.ArgumentParser, command: str, argv: list[str]) -> None:
    """An unknown or misspelt --option is named first (argparse would report a missing required one instead)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    known = set(sub._option_string_actions) | set(parser._option_string_actions)
    for token in argv[argv.index(command) + 1 :]:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            close = difflib.get_close_matches(name, sorted(k for k in known if k.startswith("--")), n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; see `bertcnn {command} --help`"
            sub.error(f"unknown option {name}{hint} Received: {token!r}")


def _debug_first(argv: list[str]) -> list[str]:
    """`--debug` is the program's option, accepted anywhere before a `--` (argparse takes it only before COMMAND)."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = argv[:end]
    if "--debug" not in head:
        return argv
    return ["--debug", *[a for a in head if a != "--debug"], *argv[end:]]


def _refuse_unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A mistyped COMMAND is named with the nearest one (argparse only lists the choices)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word in COMMANDS:
        return
    close = difflib.get_close_matches(word, list(COMMANDS), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see `bertcnn --help`"
    parser.error(f"unknown command {word!r}; {hint} Commands: {', '.join(COMMANDS)}. Received: {word!r}")


def _interrupted(command: str) -> int:
    """The one line for SIGINT/SIGTERM: every write is staged and removed when cut short, so nothing is half-written."""
    print(
        f"bertcnn{' ' + command if command else ''}: interrupted by {interrupt.signal_name()}: stopped; nothing was "
        "left half-written (an output is published whole or not at all)",
        file=sys.stderr,
    )
    return EXIT_ABORTED


def main(argv: list[str] | None = None) -> int:
    argv = _debug_first(sys.argv[1:] if argv is None else list(argv))
    with interrupt.handling():  # from here SIGINT/SIGTERM end any command with one line and 130
        command = next((a for a in argv if a in COMMANDS), None)
        debug = "--debug" in argv[:1]
        try:
            code = _main(argv, command)
        except KeyboardInterrupt:
            if debug:
                raise
            return _interrupted(command or "")
        except BaseException:
            # An error raised because of the interrupt (a child process it killed, a cut read) is the interrupt.
            if interrupt.requested() and not debug:
                return _interrupted(command or "")
            raise
        # A KeyboardInterrupt swallowed on the way (raised inside a callback whose errors are only
        # reported) is still honoured; train says itself what an interrupt did (75 or 130).
        if interrupt.requested() and code not in (EXIT_INTERRUPTED, EXIT_ABORTED) and not debug:
            return _interrupted(command or "")
        return code


def _main(argv: list[str], command: str | None) -> int:
    parser = build_parser(command)
    if not argv:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    if command is None:
        _refuse_unknown_command(parser, argv)
    else:
        _refuse_unknown_options(parser, command, argv)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if args.debug or interrupt.requested():
            raise
        print(f"bertcnn {args.command}: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as e:
        if args.debug or e.errno not in DISK_ERRORS or interrupt.requested():
            raise
        # Every write is staged and removed on failure: what was there before is still there, whole.
        where = e.filename or "the output"
        print(
            f"bertcnn {args.command}: error: {DISK_ERRORS[e.errno]} while writing {where}; nothing was replaced "
            f"(the previous files are intact): free space or choose another place, then run again. "
            f"Received: {e.strerror}",
            file=sys.stderr,
        )
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
