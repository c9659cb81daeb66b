"""`bertcnn predict`: logits per text with either build, or with an export in its runtime."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from parity.batching import predict_encoded
from parity.commands.common import positive
from parity.commands.loading import open_model
from parity.io.files import staged_file
from parity.io.texts import gather_texts
from parity.progress import counter, watching
from parity.tokenize import truncation_note
from parity.training.metrics import softmax

OUTPUT_HELP = (
    "Output, one line per text in input order (TEXT arguments first, then --file's lines): "
    "LABEL<TAB>LOGITS<TAB>TEXT, where LABEL is the predicted class's name (its id when the checkpoint names "
    "none) and LOGITS the space-separated logits of every class in id order. With --json, one object per line: "
    '{"text", "label" (name), "label_id", "logits", "probabilities" (softmax, computed in float64)}. '
    "A text longer than --max-length tokens is cut, and how many were is said on stderr."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = OUTPUT_HELP
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (quote each); also or instead: --file")
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a checkpoint directory (from `bertcnn init`/`train`/`port`), or one weight file: *.keras, "
        "*.safetensors, *.pt/*.pth/*.bin, *.weights.h5 (with --config/--tokenizer where the file lacks them)",
    )
    p.add_argument(
        "--framework",
        choices=("torch", "keras"),
        help="which build runs the model: the PyTorch one or the Keras 3 one (same weights, same function); "
        "not needed for an export directory (`bertcnn export`), which runs in its own runtime",
    )
    p.add_argument(
        "--file",
        metavar="PATH",
        help="UTF-8 file with one text per line (blank lines skipped); '-' reads standard input",
    )
    p.add_argument("--config", metavar="FILE", help="config.json for weight files that carry none (.pt, .weights.h5)")
    p.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="folder with tokenizer.json for weight files that carry none (default: the checkpoint's own)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of tab-separated columns")
    p.add_argument("--taps", metavar="FILE.npz", help="save every tap plus the input_ids/attention_mask they came from")
    p.add_argument("--batch-size", type=positive, default=32, metavar="N", help="most texts per batch (default: 32)")
    p.add_argument(
        "--max-tokens",
        type=positive,
        default=None,
        metavar="N",
        help="also cap each batch at N padded tokens (rows x longest), so long texts batch smaller",
    )
    p.add_argument(
        "--max-length",
        type=positive,
        default=None,
        metavar="N",
        help="truncate texts to N tokens (default: the model's max_position_embeddings)",
    )
    p.add_argument(
        "--threads",
        type=positive,
        default=None,
        metavar="N",
        help="intra-op threads (default: the framework's, all cores; 1 can win on a busy shared machine)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr even on a terminal")


def run(args: argparse.Namespace) -> int:
    texts = gather_texts(args.texts, args.file, purpose="predict")
    if not texts:
        raise ValueError("no texts to predict: give TEXT arguments or --file PATH. Received: nothing")
    model = open_model(args.checkpoint, args.framework, config=args.config, threads=args.threads, taps=bool(args.taps))
    tokenizer = model.tokenizer(args.tokenizer, args.max_length)
    forward = model.forward()
    encoded, truncated = tokenizer.encode_counted(texts)
    if truncated:
        print(truncation_note(truncated, len(texts), tokenizer.max_length, model.config), file=sys.stderr)
    # Progress only for people watching: never into pipes or logs, never on stdout.
    progress = counter(len(texts), unit="text", enabled=bool(args.file) and not args.no_progress and watching())
    logits = predict_encoded(
        forward, tokenizer, encoded, batch_size=args.batch_size, max_tokens=args.max_tokens, progress=progress
    )
    sys.stdout.write("".join(output_line(t, row, model.config.labels, as_json=args.json) for t, row in
                             zip(texts, logits, strict=True)))  # fmt: skip
    if args.taps:
        inputs = tokenizer(texts)
        with staged_file(args.taps, suffix=".npz") as tmp:
            np.savez(tmp, **inputs, **forward(inputs, return_taps=True))
    return 0


def output_line(text: str, logits: np.ndarray, names: tuple[str, ...], *, as_json: bool) -> str:
    """One text's line: LABEL<TAB>LOGITS<TAB>TEXT, or a JSON object with float64 softmax probabilities."""
    label = int(np.argmax(logits))
    if not as_json:
        return f"{names[label]}\t{' '.join(f'{x:.6f}' for x in logits)}\t{text}\n"
    probabilities = softmax(logits[None])[0]
    record = {
        "text": text,
        "label": names[label],
        "label_id": label,
        "logits": [float(x) for x in logits],
        "probabilities": [float(x) for x in probabilities],
    }
    return json.dumps(record) + "\n"
