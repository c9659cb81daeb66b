"""Batch prediction shared by both builds: length-sorted batches, input order restored.

With padding-aware pooling a text's logits do not depend on its batch-mates, so
sorting by length (less padding, less work) changes nothing but the speed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from parity.tokenize import Tokenizer

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]  # inputs -> (B, num_labels) logits


def predict_logits(forward: Forward, tokenizer: Tokenizer, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
    """(N, num_labels) logits for `texts`, in input order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    order = np.argsort(tokenizer.lengths(texts), kind="stable")
    out: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        logits = np.asarray(forward(tokenizer([texts[i] for i in idx])))
        for row, i in enumerate(idx):
            out[i] = logits[row]
    return np.stack(out)


def torch_forward(checkpoint: str) -> tuple[Forward, object]:
    import torch

    from bertcnn_torch import BertCNN

    model = BertCNN.from_pretrained(checkpoint)

    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False):
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_taps=return_taps)
        if return_taps:
            return {k: v.numpy() for k, v in out.items()}
        return out.numpy()

    return forward, model.config


def keras_forward(checkpoint: str) -> tuple[Forward, object]:
    from keras import ops

    from bertcnn_tf import BertCNN

    model = BertCNN.from_pretrained(checkpoint)

    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False):
        out = model(**inputs, training=False, return_taps=return_taps)
        if return_taps:
            return {k: ops.convert_to_numpy(v) for k, v in out.items()}
        return ops.convert_to_numpy(out)

    return forward, model.config


FRAMEWORKS = {"torch": torch_forward, "keras": keras_forward}


# -- the `bertcnn predict` command --------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--framework", required=True, choices=("torch", "keras"))
    p.add_argument("--file", metavar="PATH", help="read one text per line (blank lines skipped)")
    p.add_argument("--json", action="store_true", help='one JSON object per line: {"text", "logits", "label"}')
    p.add_argument("--taps", metavar="FILE.npz", help="save every tap plus the input_ids/attention_mask they came from")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")


def run(args: argparse.Namespace) -> int:
    from parity.cli import UsageError

    texts = list(args.texts)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise FileNotFoundError(f"--file must be a text file with one text per line. Received: {str(path)!r}")
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise UsageError("no texts to predict: give TEXT arguments or --file PATH. Received: nothing")
    forward, config = FRAMEWORKS[args.framework](args.checkpoint)
    tokenizer = Tokenizer(args.checkpoint, max_length=config.max_position_embeddings, pad_token_id=config.pad_token_id)
    logits = predict_logits(forward, tokenizer, texts, batch_size=args.batch_size)
    for text, row in zip(texts, logits, strict=True):
        label = int(np.argmax(row))
        if args.json:
            print(json.dumps({"text": text, "logits": [float(x) for x in row], "label": label}))
        else:
            print(f"{label}\t{' '.join(f'{x:.6f}' for x in row)}\t{text}")
    if args.taps:
        inputs = tokenizer(texts)
        taps = forward(inputs, return_taps=True)
        tmp = Path(args.taps).with_name(f".{Path(args.taps).name}.tmp-{os.getpid()}.npz")
        try:
            np.savez(tmp, **inputs, **taps)
            os.replace(tmp, args.taps)
        finally:
            tmp.unlink(missing_ok=True)
    return 0
