"""`bertcnn evaluate`: score a checkpoint on a labelled file with either build.

The model opens through `parity.commands.loading` (the same sources, tokenisation and
length-sorted batching as `bertcnn predict`, exports included), the file is read by
`parity.training.data` (every bad row refused with FILE:LINE before the model is even
built) and the figures come from `parity.training.metrics`, the functions the trainers'
per-epoch eval uses too.
"""

from __future__ import annotations

import argparse
import json
import sys

from parity.batching import predict_encoded
from parity.commands.builds import FRAMEWORKS
from parity.commands.common import positive
from parity.commands.loading import open_model
from parity.progress import counter
from parity.training.data import FORMATS, read_labelled
from parity.training.metrics import evaluate_logits

__all__ = ["add_arguments", "evaluate", "format_table", "run"]

DEFAULT_MAX_LENGTH = 128  # the training recipe's default: evaluate what the model was trained to see


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Prints a table: per label precision, recall, F1 and support; the confusion matrix (rows: true label, "
        "columns: predicted); accuracy, macro-F1 (mean F1 over the labels that occur in the file or the "
        "predictions), mean cross-entropy loss, and how many texts were truncated. With --json, one object: "
        "accuracy, macro_f1, loss, per_label, confusion_matrix, labels, num_examples, truncated, max_length."
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="checkpoint directory, or a weight file as `bertcnn predict` takes (with --config/--tokenizer)",
    )
    p.add_argument(
        "--file",
        required=True,
        metavar="FILE",
        help=f"labelled data: {', '.join(FORMATS)} (JSON lines with text and label; CSV/TSV with a header row)",
    )
    p.add_argument(
        "--framework",
        choices=FRAMEWORKS,
        help="which build runs the model (torch or keras); not needed for an export directory (`bertcnn export`), "
        "which runs in its own runtime",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--batch-size", type=positive, default=32, metavar="N", help="most texts per batch (default: 32)")
    p.add_argument(
        "--max-length",
        type=positive,
        default=None,
        metavar="N",
        help=f"truncate texts to N tokens (default: {DEFAULT_MAX_LENGTH}, as training, or the position table "
        "if smaller)",
    )
    p.add_argument("--text-column", default="text", metavar="NAME", help="CSV/TSV/JSON text field (default: text)")
    p.add_argument("--label-column", default="label", metavar="NAME", help="CSV/TSV/JSON label field (default: label)")
    p.add_argument("--config", metavar="FILE", help="config.json for weight files that carry none (.pt, .weights.h5)")
    p.add_argument("--tokenizer", metavar="DIR", help="folder with tokenizer.json for weight files that carry none")
    p.add_argument("--threads", type=positive, default=None, metavar="N", help="intra-op threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr even on a terminal")


def evaluate(
    framework: str | None,
    checkpoint: str,
    file: str,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    text_column: str = "text",
    label_column: str = "label",
    config: str | None = None,
    tokenizer: str | None = None,
    threads: int | None = None,
    progress=None,
) -> dict:
    """The metrics dict `bertcnn evaluate --json` prints."""
    if framework is not None and framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {list(FRAMEWORKS)}. Received: {framework!r}")
    model = open_model(checkpoint, framework, config=config, threads=threads)
    cfg = model.config
    # The file is read (and every bad row refused) before the slow framework import and model build.
    data = read_labelled(
        file, num_labels=cfg.num_labels, label_names=cfg.label_names, text_column=text_column, label_column=label_column
    )
    if data.named and cfg.label_names is None:
        raise ValueError(
            f"{file} labels its rows by name ({', '.join(data.label_names)}) but the checkpoint names no labels, "
            "so names cannot be matched to its ids; use integer ids in the file, or a checkpoint with names "
            f"(`bertcnn init DIR --labels ...`, or one trained on named data). Received: {list(data.label_names)!r}"
        )
    default_length = min(DEFAULT_MAX_LENGTH, cfg.max_position_embeddings)
    tok = model.tokenizer(tokenizer, max_length or default_length)
    forward = model.forward()
    encoded, truncated = tok.encode_counted(list(data.texts))
    if progress is not None:
        progress = progress(len(encoded))
    logits = predict_encoded(forward, tok, encoded, batch_size=batch_size, progress=progress)
    result = evaluate_logits(logits, data.labels, cfg.labels)
    result.update(truncated=int(truncated), max_length=tok.max_length)
    return result


def format_table(r: dict) -> str:
    """The human view: per-label scores, the confusion matrix with names, the summary figures."""
    names = r["labels"]
    w = max(9, *(len(n) for n in names))
    out = [f"{'label':<{w}}  precision  recall      f1  support"]
    for n in names:
        s = r["per_label"][n]
        out.append(f"{n:<{w}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}")
    out.append("")
    out.append("confusion matrix (rows: true label, columns: predicted)")
    cw = max(5, *(len(n) for n in names), *(len(str(v)) for row in r["confusion_matrix"] for v in row))
    out.append(" " * w + "".join(f"  {n:>{cw}}" for n in names))
    for n, row in zip(names, r["confusion_matrix"], strict=True):
        out.append(f"{n:<{w}}" + "".join(f"  {v:>{cw}d}" for v in row))
    out.append("")
    out.append(
        f"accuracy {r['accuracy']:.4f}   macro-F1 {r['macro_f1']:.4f}   loss {r['loss']:.4f}   "
        f"examples {r['num_examples']}   truncated {r['truncated']} (longer than {r['max_length']} tokens)"
    )
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    progress = None if args.no_progress else lambda total: counter(total, unit="text")
    r = evaluate(
        args.framework,
        args.checkpoint,
        args.file,
        batch_size=args.batch_size,
        max_length=args.max_length,
        text_column=args.text_column,
        label_column=args.label_column,
        config=args.config,
        tokenizer=args.tokenizer,
        threads=args.threads,
        progress=progress,
    )
    if args.json:
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(r))
    return 0
