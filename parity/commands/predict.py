"""`bertcnn predict`: logits per text with either build, or with an export in its runtime; streamed.

Texts are read, tokenised, length-sorted and predicted a window at a time
(`parity.batching.windows`, `predict_stream`) and each window's lines are printed, in
input order, before the next is read: memory does not grow with the input, and as a
filter in a pipe (`--file -`) it answers what has arrived while the pipe is still open.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys

import numpy as np

from parity.batching import WINDOW, Counts, predict_stream, windows
from parity.commands.common import (
    SOURCE_HELP,
    add_checkpoint,
    add_framework,
    add_long_text,
    add_mixed_precision,
    add_run_options,
    add_source_options,
    long_text_options,
    positive,
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
from parity.io.destination import write_file
from parity.io.outputs import FILE, check_output
from parity.io.texts import Texts
from parity.progress import bar, watching
from parity.training.metrics import softmax
from parity.training.multilabel import predicted, sigmoid

OUTPUT_HELP = (
    "Output, one line per text in input order (TEXT arguments first, then --file's lines): "
    "LABEL<TAB>LOGITS<TAB>TEXT, where LABEL is the predicted class's name (its id when the checkpoint names "
    "none) and LOGITS the space-separated logits of every class in id order; in TEXT a backslash, tab, line feed "
    "and carriage return are written \\\\, \\t, \\n and \\r, so each text is one line of three columns. "
    "With --json, one object per line: "
    '{"text", "label" (name), "label_id", "logits", "probabilities" (softmax, computed in float64)}. '
    "Lines are printed a few thousand texts at a time, as they are read (--file - works as a filter in a pipe; "
    "a bad line of standard input stops the run there, exit 2, after the results before it). "
    "A text longer than --max-length tokens is cut; how many were is said on stderr at the end "
    "(--long-text windows reads it whole, as overlapping windows). "
    "A multi-label model (problem_type multi_label_classification): LABELS<TAB>PROBABILITIES<TAB>TEXT, where LABELS "
    "are the names of every label whose sigmoid probability reaches its threshold, joined by commas (empty: none), "
    "and PROBABILITIES the sigmoid of every label in id order; with --json "
    '{"text", "labels", "label_ids", "logits", "probabilities" (sigmoid, float64), "thresholds"}. '
    "Thresholds: --threshold, else the model's own (`train --tune-thresholds`), else 0.5."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = OUTPUT_HELP
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (quote each); also or instead: --file")
    add_checkpoint(p, what=SOURCE_HELP + EXPORT_SOURCE)
    add_framework(p, required=False, extra=EXPORT_NOTE)
    p.add_argument(
        "--file",
        metavar="PATH",
        help="UTF-8 file with one text per line (blank lines skipped); '-' reads standard input as it comes",
    )
    add_source_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of tab-separated columns")
    p.add_argument(
        "--taps",
        metavar="FILE.npz",
        help="also save every tap plus the input_ids/attention_mask they came from; runs all texts as one batch, "
        "so it is for a few texts, and not with --file - (standard input cannot be read twice)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --taps file")
    p.add_argument("--batch-size", type=positive, default=32, metavar="N", help="most texts per batch (default: 32)")
    p.add_argument(
        "--max-tokens",
        type=positive,
        default=None,
        metavar="N",
        help="also cap each batch at N padded tokens (rows x longest), so long texts batch smaller",
    )
    add_max_length(p)
    add_threshold(p)
    add_long_text(p)
    add_run_options(p)
    add_mixed_precision(p)


def _check(args: argparse.Namespace) -> None:
    """Everything that can be refused before any work (exit 2, nothing written)."""
    check_source("predict", args.checkpoint, args.framework)
    if args.long_text == "truncate":  # otherwise the model's config says how it reads; checked once it is open
        long_text_options(args)
    if args.taps:
        if args.file == "-":
            raise ValueError(
                "--taps runs every text as one batch, so it needs all of them at once, and standard input is "
                "read as it comes and cannot be read twice; save it to a file and pass --file FILE (or give TEXT "
                f"arguments). Received: --taps {args.taps} --file -"
            )
        inputs = [args.file, args.checkpoint, args.tokenizer, args.config]
        check_output(args.taps, flag="--taps", kind=FILE, inputs=inputs, force=args.force)
        args.taps_existed = os.path.lexists(args.taps)  # --force replaces only what was there at the start


def run(args: argparse.Namespace) -> int:
    _check(args)
    texts = Texts(args.texts, args.file, purpose="predict")
    if texts.total == 0:
        raise ValueError("no texts to predict: give TEXT arguments or --file PATH. Received: nothing")
    model = open_model(args.checkpoint, args.framework, config=args.config, threads=args.threads, taps=bool(args.taps),
                       mixed_precision=args.mixed_precision)  # fmt: skip
    thresholds = decision_thresholds(model.config, args.threshold)
    if model.text_forward is not None:
        return _predict_strings(args, texts, model, thresholds)
    tokenizer = model.tokenizer(args.tokenizer, args.max_length, long_text_options(args, model.config))
    runs = windows(texts, size=max(WINDOW, 8 * args.batch_size), ready=texts.ready)
    first = next(runs)  # standard input: its first texts (or its end, refused if empty) before the model is built
    forward = model.forward()
    counts = Counts()
    # Progress only for people watching: never into pipes or logs, never on stdout.
    shown = bool(args.file) and not args.no_progress and watching()
    try:
        with bar(texts.total, unit="text", enabled=shown) as progress:
            results = predict_stream(
                forward,
                tokenizer,
                itertools.chain([first], runs),
                batch_size=args.batch_size,
                max_tokens=args.max_tokens,
                progress=lambda n: progress.update(n - progress.n),
                counts=counts,
            )
            names = model.config.labels
            for done, logits in results:
                lines = (output_line(t, z, names, as_json=args.json, thresholds=thresholds)
                         for t, z in zip(done, logits, strict=True))  # fmt: skip
                sys.stdout.write("".join(lines))
                sys.stdout.flush()  # a window's results as soon as they exist
    except BrokenPipeError:
        _stdout_gone()  # the reader stopped reading (`| head`): stop too, quietly
        return 0
    if counts.truncated:
        print(model.truncation_note(counts.truncated, counts.texts, tokenizer.max_length, tokenizer.max_windows),
              file=sys.stderr)  # fmt: skip
    if args.taps:
        _save_taps(args, forward, tokenizer)
    return 0


def _predict_strings(args: argparse.Namespace, texts: Texts, model, thresholds=None) -> int:
    """A `--text` export: each batch of texts goes in as strings; the artifact's own graph tokenizes them."""
    given = [flag for flag, value in (("--tokenizer", args.tokenizer), ("--max-length", args.max_length),
                                      ("--max-tokens", args.max_tokens), ("--stride", args.stride),
                                      ("--max-windows", args.max_windows)) if value is not None]  # fmt: skip
    if args.long_text == "windows":
        given.append("--long-text windows")
    if given:
        raise ValueError(
            f"{args.checkpoint} is a --text export: it tokenizes in its own graph, with the tokenizer and length it "
            f"was exported with, so {', '.join(given)} cannot apply; leave {'them' if len(given) > 1 else 'it'} out "
            f"(or predict from the checkpoint). Received: {' '.join(given)}"
        )
    forward = model.text_forward()
    names = model.config.labels
    shown = bool(args.file) and not args.no_progress and watching()
    try:
        with bar(texts.total, unit="text", enabled=shown) as progress:
            for run in windows(texts, size=max(WINDOW, 8 * args.batch_size), ready=texts.ready):
                # Similar lengths batched together (less padding), printed back in input order.
                order = sorted(range(len(run)), key=lambda i: len(run[i]))
                logits = np.empty((len(run), len(names)), dtype=np.float32)
                for start in range(0, len(run), args.batch_size):
                    rows = order[start : start + args.batch_size]
                    logits[rows] = forward([run[i] for i in rows])
                    progress.update(len(rows))
                lines = (output_line(t, z, names, as_json=args.json, thresholds=thresholds)
                         for t, z in zip(run, logits, strict=True))  # fmt: skip
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()
    return 0


def _stdout_gone() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not complain
        os.close(devnull)


def _save_taps(args: argparse.Namespace, forward, tokenizer) -> None:
    """Every text's taps in one batch, as before streaming (a regular --file is read a second time)."""
    inputs = tokenizer(list(Texts(args.texts, args.file, purpose="predict")))
    taps = forward(inputs, return_taps=True)

    def write(tmp) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy adds no .npz suffix to the name
            np.savez(f, **inputs, **taps)

    write_file(args.taps, write, flag="--taps", force=args.force and args.taps_existed)


# A TEXT column holds one line: the characters that would split it are written as their escapes.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escaped(text: str) -> str:
    """`text` with backslash, tab, LF and CR written \\\\, \\t, \\n, \\r: one tab-separated column, one line."""
    return text.translate(_ESCAPES)


def output_line(text: str, logits: np.ndarray, names: tuple[str, ...], *, as_json: bool,
                thresholds: tuple[float, ...] | None = None) -> str:  # fmt: skip
    """One text's line: LABEL<TAB>LOGITS<TAB>TEXT, or a JSON object with float64 softmax probabilities.

    With `thresholds` (a multi-label model): LABELS<TAB>PROBABILITIES<TAB>TEXT, the labels whose sigmoid reaches
    their threshold.
    """
    if thresholds is not None:
        return _multi_label_line(text, logits, names, thresholds, as_json)
    label = int(np.argmax(logits))
    if not as_json:
        return f"{names[label]}\t{' '.join(f'{x:.6f}' for x in logits)}\t{escaped(text)}\n"
    probabilities = softmax(logits[None])[0]
    record = {
        "text": text,
        "label": names[label],
        "label_id": label,
        "logits": [float(x) for x in logits],
        "probabilities": [float(x) for x in probabilities],
    }
    return json.dumps(record) + "\n"


def _multi_label_line(text: str, logits: np.ndarray, names: tuple[str, ...], thresholds, as_json: bool) -> str:
    probabilities = sigmoid(logits)
    ids = [int(i) for i in np.flatnonzero(predicted(logits[None], thresholds)[0])]
    if not as_json:
        chosen = ",".join(names[i] for i in ids)
        return f"{chosen}\t{' '.join(f'{p:.6f}' for p in probabilities)}\t{escaped(text)}\n"
    record = {
        "text": text,
        "labels": [names[i] for i in ids],
        "label_ids": ids,
        "logits": [float(x) for x in logits],
        "probabilities": [float(x) for x in probabilities],
        "thresholds": [float(x) for x in thresholds],
    }
    return json.dumps(record) + "\n"
