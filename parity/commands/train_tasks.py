"""`bertcnn train` for the problems people bring: several labels per text, classes of very different sizes, long
documents (issue 30, DESIGN decision 22).

The options, and the checks that tie them to the model's problem type (`problem_type` in its config.json):
`--class-weights balanced|FILE.json` (resolved against the training file into the recipe's
numbers, `parity.training.objective`), `--tune-thresholds` (multi-label, with `--eval`), and
`--long-text windows --stride N --max-windows M`. Each is refused before any work when it
cannot apply.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parity.commands.common import UsageError, add_long_text, long_text_options
from parity.commands.train_ui import plural
from parity.tokenize import Tokenizer
from parity.training.data import read_labelled
from parity.training.loop import evaluator
from parity.training.objective import resolve_class_weights
from parity.training.recipe import TrainingRecipe

__all__ = ["add_task_arguments", "check_problem", "class_weights", "label_column", "read_data", "read_labels"]


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-label, imbalanced classes")
    g.add_argument(
        "--class-weights",
        metavar="WEIGHTS",
        help="balanced or FILE.json: weigh the loss per class, as torch's CrossEntropyLoss(weight=) (a mean "
        "weighted by each row's class weight) or, multi-label, BCEWithLogitsLoss(pos_weight=) per label; balanced: "
        "n_rows / (n_classes x rows of the class) (multi-label: rows without / rows with the label); FILE.json: "
        '{"name": weight, ...}',
    )
    g.add_argument(
        "--tune-thresholds",
        action="store_true",
        help="multi-label, with --eval: choose each label's probability threshold for the best F1 on the eval "
        "file after each evaluation; saved in DIR's config.json (predict, evaluate and exports use it)",
    )
    add_long_text(p, trains=True)


def label_column(args: argparse.Namespace, config) -> str:
    """--label-column, else `labels` for a multi-label model (its rows hold lists) and `label` for one label."""
    return args.label_column or ("labels" if config.multi_label else "label")


def check_problem(args: argparse.Namespace, config) -> None:
    """The options against the model's problem type: refused before any work."""
    if not config.multi_label and args.tune_thresholds:
        raise UsageError("--tune-thresholds chooses per-label thresholds of a multi-label model; this checkpoint is "
                         "single-label (problem_type single_label_classification: one class per text, by argmax); "
                         "start a multi-label head with `bertcnn init NEW_CK --backbone CK --multi-label --labels "
                         "a,b,c`. Received: --tune-thresholds")  # fmt: skip
    if args.tune_thresholds and not args.eval:
        raise UsageError("--tune-thresholds chooses each label's threshold on held-out rows: add --eval FILE. "
                         "Received: --tune-thresholds without --eval")  # fmt: skip
    if not args.resume:  # on --resume the saved recipe has the windows; --stride alone is compared with it
        long_text_options(args)
    if args.class_weights is not None and args.class_weights != "balanced":
        path = Path(args.class_weights)
        if path.suffix.lower() != ".json" or not path.is_file():
            why = "not found" if not path.exists() else "not a .json file"
            raise UsageError(f"--class-weights takes balanced or a JSON file of weights ({why}: expected "
                             f'{{"name": weight, ...}}). Received: --class-weights {args.class_weights!r}')  # fmt: skip


def class_weights(args: argparse.Namespace, data) -> tuple[float, ...]:
    """--class-weights as numbers in id order, from the training file's labels or the JSON file."""
    return resolve_class_weights(args.class_weights, data.labels, data.label_names, source=args.train)


def cut_word(tok) -> str:
    return "truncated" if tok.stride is None else f"cut to {tok.max_windows} windows"


def read_note(tok, plan) -> str:
    """How the training texts were read: truncated to max_length, or as windows (and how many were cut)."""
    if tok.stride is None:
        return f"{plan.truncated} truncated to {tok.max_length} tokens"
    windows = sum(len(doc) for doc in plan.encoded)
    line = f"read as {windows} windows of up to {tok.max_length} tokens (stride {tok.stride})"
    if tok.max_windows is not None:
        line += f"; {plan.truncated} cut to {tok.max_windows} windows"
    return line


# -- the data: read by the model's problem type, tokenised (truncated or as windows) ---------------------------
def read_labels(args: argparse.Namespace, config, names=None, file: str | None = None):
    """A labelled file (`--train`, or `file`), read by the model's problem type: every bad row refused by line."""
    return read_labelled(file or args.train, num_labels=config.num_labels, label_names=names or config.label_names,
                         text_column=args.text_column, label_column=label_column(args, config),
                         multi_label=config.multi_label, label_separator=args.label_separator)  # fmt: skip


def read_data(plan, config, recipe: TrainingRecipe, data=None):
    """The training (and held-out) rows, tokenized, into `plan` (`train.Plan`); returns the training file as read."""
    args, main = plan.args, plan.main
    data = data or read_labels(args, config)
    held = read_labels(args, config, data.label_names, args.eval) if args.eval else None
    max_length = min(recipe.max_length, config.max_position_embeddings)
    tok = tokenizer_at(plan.tok_dir, max_length, config.pad_token_id)
    if recipe.long_text == "windows":
        tok.windows(recipe.stride, recipe.max_windows)
    plan.encoded, plan.truncated = tok.encode_counted(list(data.texts))
    plan.labels = data.labels
    if main:
        print(f"train: {plural(len(plan.encoded), 'row')} from {args.train}; {read_note(tok, plan)}", file=sys.stderr)
    if held is not None:
        held_enc, held_cut = tok.encode_counted(list(held.texts))
        if main:
            print(f"eval: {plural(len(held_enc), 'row')} from {args.eval}; {held_cut} {cut_word(tok)}",
                  file=sys.stderr)  # fmt: skip
            plan.evaluate = evaluator(held_enc, held.labels, data.label_names, batch_size=recipe.batch_size,
                                      pad_token_id=config.pad_token_id, multi_label=config.multi_label,
                                      tune=recipe.tune_thresholds, thresholds=config.thresholds)  # fmt: skip
    return data


def tokenizer_at(directory: Path, max_length: int, pad_token_id: int) -> Tokenizer:
    try:
        return Tokenizer(directory, max_length=max_length, pad_token_id=pad_token_id)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # the tokenizers library raises a bare Exception for a damaged file
        raise ValueError(f"{Path(directory) / 'tokenizer.json'}: not a readable tokenizer ({str(e)[:120]}); expected "
                         "a tokenizers tokenizer.json. Received: a damaged file") from None  # fmt: skip
