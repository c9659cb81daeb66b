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

import numpy as np

from parity.batching import Counts, predict_stream, windows
from parity.commands.builds import FRAMEWORKS
from parity.commands.common import (
    SOURCE_HELP,
    add_checkpoint,
    add_framework,
    add_long_text,
    add_mixed_precision,
    add_run_options,
    add_source_options,
    positive,
    resolve_long_text,
)
from parity.commands.loading import (
    EXPORT_NOTE,
    EXPORT_SOURCE,
    add_max_length,
    add_threshold,
    check_source,
    decision_thresholds,
    open_model,
)
from parity.progress import counter
from parity.training.data import FORMATS, read_labelled
from parity.training.metrics import evaluate_logits
from parity.training.multilabel import evaluate_multilabel

__all__ = ["add_arguments", "evaluate", "format_table", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Prints a table: per label precision, recall, F1 and support; the confusion matrix (rows: true label, "
        "columns: predicted); accuracy, macro-F1 (mean F1 over the labels that occur in the file or the "
        "predictions), mean cross-entropy loss, and how many texts were truncated. With --json, one object: "
        "accuracy, macro_f1, loss, per_label, confusion_matrix, labels, num_examples, truncated, max_length. "
        "A multi-label model (rows with a list of labels): per label precision, recall, F1, support; micro, macro "
        "(every label) and weighted F1; subset accuracy (the whole set right), Hamming loss (cells wrong); mean "
        "binary cross-entropy; the thresholds used (--threshold, else the model's own, else 0.5)."
    )
    add_checkpoint(p, what=SOURCE_HELP + EXPORT_SOURCE)
    p.add_argument(
        "--eval",
        required=True,
        metavar="FILE",
        help=f"labelled data, as `bertcnn train --eval` takes: {', '.join(FORMATS)} (JSON lines with text and label; "
        "CSV/TSV with a header row)",
    )
    add_framework(p, required=False, extra=EXPORT_NOTE)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--batch-size", type=positive, default=32, metavar="N", help="most texts per batch (default: 32)")
    add_max_length(p)
    p.add_argument("--text-column", default="text", metavar="NAME", help="CSV/TSV/JSON text field (default: text)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="CSV/TSV/JSON label field (default: label; labels for a multi-label model)")  # fmt: skip
    p.add_argument("--label-separator", default="|", metavar="C",
                   help="multi-label CSV/TSV: the character between a row's labels (default: |)")  # fmt: skip
    add_threshold(p)
    add_long_text(p)
    add_source_options(p)
    add_run_options(p)
    add_mixed_precision(p)


def evaluate(
    framework: str | None,
    checkpoint: str,
    file: str,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    text_column: str = "text",
    label_column: str | None = None,
    config: str | None = None,
    tokenizer: str | None = None,
    threads: int | None = None,
    progress=None,
    mixed_precision: str | None = None,
    threshold: float | None = None,
    label_separator: str = "|",
    long_text: str | None = None,
    stride: int | None = None,
    max_windows: int | None = None,
) -> dict:
    """The metrics dict `bertcnn evaluate --json` prints.

    `long_text` "truncate" or "windows" (`stride`, `max_windows`), default as the model reads (its config's
    `window_stride`); `threshold`: a multi-label model's decision threshold for every label (default: its own,
    else 0.5).
    """
    if framework is not None and framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {list(FRAMEWORKS)}. Received: {framework!r}")
    check_source("evaluate", checkpoint, framework)
    model = open_model(checkpoint, framework, config=config, threads=threads, command="evaluate",
                       mixed_precision=mixed_precision)  # fmt: skip
    cfg = model.config
    thresholds = decision_thresholds(cfg, threshold)
    # The file is read (and every bad row refused) before the slow framework import and model build.
    data = read_labelled(
        file,
        num_labels=cfg.num_labels,
        label_names=cfg.label_names,
        text_column=text_column,
        label_column=label_column or ("labels" if cfg.multi_label else "label"),
        multi_label=cfg.multi_label,
        label_separator=label_separator,
    )
    if data.named and cfg.label_names is None:
        names = ",".join(data.label_names)
        raise ValueError(
            f"{file} labels its rows by name ({', '.join(data.label_names)}) but the checkpoint names no labels, "
            "so names cannot be matched to its ids; use integer ids in the file, or give the checkpoint its class "
            f"names in id order: `bertcnn port {checkpoint} NEW_CK --labels {names}` writes the same weights "
            f"with those names (`bertcnn init --labels` would start a new, untrained head). "
            f"Received: {list(data.label_names)!r}"
        )
    tok = model.tokenizer(tokenizer, max_length, resolve_long_text(long_text, stride, max_windows, cfg))
    forward = model.forward()
    if progress is not None:
        progress = progress(len(data))
    step = None if progress is None else (lambda done: progress(done, len(data)))
    counts = Counts()
    results = predict_stream(forward, tok, windows(data.texts), batch_size=batch_size, progress=step, counts=counts)
    logits = _logits(results, len(data))
    if cfg.multi_label:
        result = evaluate_multilabel(logits, data.labels, cfg.labels, thresholds)
    else:
        result = evaluate_logits(logits, data.labels, cfg.labels)
    result.update(truncated=int(counts.truncated), max_length=tok.max_length)
    if tok.stride is not None:
        result.update(stride=tok.stride, max_windows=tok.max_windows)
    return result


def _logits(results, total: int) -> np.ndarray:
    """(total, num_labels) logits from `predict_stream`'s windows: the only per-text array kept (no tokens)."""
    out, at = None, 0
    for run, z in results:
        if out is None:
            out = np.empty((total, *z.shape[1:]), dtype=z.dtype)
        out[at : at + len(run)] = z
        at += len(run)
    return out


def format_multilabel(r: dict) -> str:
    """The human view of a multi-label evaluation: per-label scores and thresholds, then the summary figures."""
    names = r["labels"]
    w = max(9, *(len(n) for n in names))
    out = [f"{'label':<{w}}  precision  recall      f1  support  predicted  threshold"]
    for n, t in zip(names, r["thresholds"], strict=True):
        s = r["per_label"][n]
        out.append(f"{n:<{w}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}  "
                   f"{s['predicted']:9d}  {t:9.4f}")  # fmt: skip
    out.append("")
    out.append(f"micro-F1 {r['micro_f1']:.4f}   macro-F1 {r['macro_f1']:.4f}   weighted-F1 {r['weighted_f1']:.4f}")
    out.append(
        f"subset accuracy {r['subset_accuracy']:.4f}   Hamming loss {r['hamming_loss']:.4f}   loss {r['loss']:.4f}   "
        f"examples {r['num_examples']}   {_cut(r)}"
    )
    return "\n".join(out) + "\n"


def _cut(r: dict) -> str:
    if "stride" in r:
        line = f"read as windows of {r['max_length']} tokens (stride {r['stride']})"
        if r["max_windows"] is not None:
            line += f", {r['truncated']} cut at {r['max_windows']} windows"
        return line
    return f"truncated {r['truncated']} (longer than {r['max_length']} tokens)"


def format_table(r: dict) -> str:
    """The human view: per-label scores, the confusion matrix with names, the summary figures."""
    if "micro_f1" in r:
        return format_multilabel(r)
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
        f"examples {r['num_examples']}   {_cut(r)}"
    )
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    progress = None if args.no_progress else lambda total: counter(total, unit="text")
    r = evaluate(
        args.framework,
        args.checkpoint,
        args.eval,
        batch_size=args.batch_size,
        max_length=args.max_length,
        text_column=args.text_column,
        label_column=args.label_column,
        config=args.config,
        tokenizer=args.tokenizer,
        threads=args.threads,
        mixed_precision=args.mixed_precision,
        progress=progress,
        threshold=args.threshold,
        label_separator=args.label_separator,
        long_text=args.long_text,
        stride=args.stride,
        max_windows=args.max_windows,
    )
    if args.json:
        sys.stdout.write(json.dumps(r, indent=2) + "\n")
    else:
        sys.stdout.write(format_table(r))
    return 0
