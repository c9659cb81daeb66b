"""Batch prediction shared by both builds: length-sorted batches, input order restored.

With padding-aware pooling a text's logits do not depend on its batch-mates, so
sorting by length (less padding, less work) changes nothing but the speed. Texts are
tokenised once; batches are neighbours in length order, capped by a row count and
optionally by a token budget (rows x padded width), so long texts come in small
batches and short ones in large ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from parity.inputs import check_inputs
from parity.tokenize import Tokenizer

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]  # inputs -> (B, num_labels) logits


def plan_batches(lengths: Sequence[int], *, batch_size: int = 32, max_tokens: int | None = None) -> list[np.ndarray]:
    """Indices of each batch: neighbours in (stable) length order, every index exactly once.

    A batch holds at most `batch_size` rows and, with `max_tokens`, at most that many
    padded tokens (rows x its longest length); a row longer than the budget goes alone.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1 (or None for no budget). Received: {max_tokens}")
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        # Ascending order: the newest row is the longest, so it sets the padded width.
        rows, width = end - start, lengths[order[end - 1]]
        if rows > batch_size or (max_tokens is not None and rows > 1 and rows * width > max_tokens):
            batches.append(order[start : end - 1])
            start = end - 1
    if start < len(order):
        batches.append(order[start:])
    return batches


def bucket_width(width: int, multiple: int, cap: int) -> int:
    """`width` rounded up to a multiple of `multiple`, at most `cap`: a compiled path sees few shapes."""
    return min(-(-width // multiple) * multiple, max(cap, width))


def predict_logits(
    forward: Forward,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_tokens: int | None = None,
    pad_multiple: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, num_labels) logits for `texts`, in input order.

    `pad_multiple` pads each batch's width up to a multiple (for shape-specialising
    compilers such as XLA); `progress(done, total)` is called after each batch.
    """
    encoded = tokenizer.encode(texts)
    batches = plan_batches([len(ids) for ids, _ in encoded], batch_size=batch_size, max_tokens=max_tokens)
    out: np.ndarray | None = None
    done = 0
    for idx in batches:
        rows = [encoded[i] for i in idx]
        width = max(len(ids) for ids, _ in rows)
        pad_to = bucket_width(width, pad_multiple, tokenizer.max_length) if pad_multiple else None
        logits = np.asarray(forward(tokenizer.pad(rows, pad_to=pad_to)))
        if out is None:
            out = np.empty((len(texts), *logits.shape[1:]), dtype=logits.dtype)
        out[idx] = logits
        done += len(idx)
        if progress is not None:
            progress(done, len(texts))
    return out


def torch_forward(checkpoint: str, *, attn_implementation: str = "sdpa", compile: bool = False):
    """A forward for the checkpoint's PyTorch build, and its config."""
    from bertcnn_torch import BertCNN

    model = BertCNN.from_pretrained(checkpoint, attn_implementation=attn_implementation)
    return torch_predictor(model, compile=compile), model.config


def torch_predictor(model, *, compile: bool = False) -> Forward:
    """numpy in, numpy out, under `inference_mode` (no autograd bookkeeping at all)."""
    import torch

    if compile:  # the encoder only: the input checks in BertCNN.forward are numpy, which dynamo cannot trace
        model.bert.compile(dynamic=True)

    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False):
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            out = model(**tensors, return_taps=return_taps)
        if return_taps:
            return {k: v.numpy() for k, v in out.items()}
        return out.numpy()

    return forward


def keras_forward(checkpoint: str, *, compiled: bool = True, jit_compile: bool = False):
    """A forward for the checkpoint's Keras build, and its config."""
    from bertcnn_tf import BertCNN

    model = BertCNN.from_pretrained(checkpoint)
    return keras_predictor(model, compiled=compiled, jit_compile=jit_compile), model.config


def keras_predictor(model, *, compiled: bool = True, jit_compile: bool = False) -> Forward:
    """numpy in, numpy out, on a compiled graph on TensorFlow, else eager (other backends: not measured yet).

    Eager Keras runs op by op through Python: on this CPU a MiniLM batch takes 2-3x
    longer than the same graph. On TensorFlow the graph is traced once for
    (None, None) inputs, so no length or batch size retraces; XLA (`jit_compile`)
    specialises on shapes instead (pair it with `pad_multiple`). Inputs are checked
    here in numpy, once per batch, because a traced call cannot see values.
    """
    import keras
    from keras import ops

    names = ("input_ids", "attention_mask", "token_type_ids")
    compiled_call = None
    if compiled and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = {k: tf.TensorSpec((None, None), tf.int64) for k in names}
        compiled_call = tf.function(
            lambda x: model(**x, training=False),
            input_signature=None if jit_compile else [spec],
            jit_compile=jit_compile,
        )

    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False):
        if return_taps or compiled_call is None:
            out = model(**inputs, training=False, return_taps=return_taps)
            if return_taps:
                return {k: ops.convert_to_numpy(v) for k, v in out.items()}
            return ops.convert_to_numpy(out)
        check_inputs(inputs["input_ids"], inputs.get("attention_mask"), inputs.get("token_type_ids"), model.config)
        ids = np.asarray(inputs["input_ids"], dtype=np.int64)
        x = {
            "input_ids": ids,
            "attention_mask": np.asarray(inputs.get("attention_mask", np.ones_like(ids)), dtype=np.int64),
            "token_type_ids": np.asarray(inputs.get("token_type_ids", np.zeros_like(ids)), dtype=np.int64),
        }
        return ops.convert_to_numpy(compiled_call(x))

    return forward


FRAMEWORKS = {"torch": torch_forward, "keras": keras_forward}


def set_threads(framework: str, threads: int | None) -> None:
    """Intra-op threads for either build; None keeps the framework's default (all cores).

    On a machine shared with other busy processes, `--threads 1` can win by far:
    PyTorch's OpenMP threads meet at a barrier after every op, and a thread held off
    its core makes every op wait out a scheduler slice (profiled at load ~5 on 2
    cores: 20.6 s with 2 threads vs 4.9 s with 1). On an idle machine all cores win
    (1500 sentences: 12.5 s with 2 threads vs 17.9 s with 1), so that is the default;
    guessing from the load average misfired when runs follow each other.
    """
    if not threads:
        return
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)


class Progress:
    """`done/total texts, rate, eta` on one stderr line, redrawn at most a few times a second."""

    def __init__(self, stream=None, interval: float = 0.25):
        self.stream, self.interval = stream or sys.stderr, interval
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval and done < total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        self.stream.write(f"\r{done}/{total} texts  {rate:.0f}/s  eta {eta:.0f}s ")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


# -- the `bertcnn predict` command --------------------------------------------
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--checkpoint", required=True, metavar="DIR")
    p.add_argument("--framework", choices=("torch", "keras"), help="required unless DIR is an export (bertcnn export)")
    p.add_argument("--file", metavar="PATH", help="read one text per line (blank lines skipped)")
    p.add_argument("--json", action="store_true", help='one JSON object per line: {"text", "logits", "label"}')
    p.add_argument("--taps", metavar="FILE.npz", help="save every tap plus the input_ids/attention_mask they came from")
    p.add_argument("--batch-size", type=_positive, default=32, metavar="N", help="most texts per batch (default: 32)")
    p.add_argument(
        "--max-tokens",
        type=_positive,
        default=None,
        metavar="N",
        help="also cap each batch at N padded tokens (rows x longest), so long texts batch smaller",
    )
    p.add_argument(
        "--max-length",
        type=_positive,
        default=None,
        metavar="N",
        help="truncate texts to N tokens (default: the model's max_position_embeddings)",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        metavar="N",
        help="intra-op threads (default: the framework's, all cores; 1 can win on a busy shared machine)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr even on a terminal")


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
    from parity.serving import export_forward, is_export

    if is_export(args.checkpoint):  # an export runs in its own runtime; --framework does not apply
        if args.taps:
            raise UsageError(f"an export computes logits only: --taps needs a checkpoint. Received: {args.checkpoint!r}")
        if args.framework:
            print(f"note: {args.checkpoint} is an export; --framework {args.framework} ignored", file=sys.stderr)
        forward, config = export_forward(args.checkpoint, threads=args.threads)
    elif args.framework is None:
        raise UsageError(f"--framework torch|keras is required for a checkpoint. Received: {args.checkpoint!r}")
    else:
        set_threads(args.framework, args.threads)
        forward, config = FRAMEWORKS[args.framework](args.checkpoint)
    max_length = args.max_length or config.max_position_embeddings
    if max_length > config.max_position_embeddings:
        raise UsageError(
            f"--max-length must be at most max_position_embeddings={config.max_position_embeddings}. "
            f"Received: {max_length}"
        )
    tokenizer = Tokenizer(args.checkpoint, max_length=max_length, pad_token_id=config.pad_token_id)
    # Progress only for people watching: never into pipes or logs, never on stdout.
    progress = Progress() if args.file and not args.no_progress and sys.stderr.isatty() else None
    logits = predict_logits(
        forward, tokenizer, texts, batch_size=args.batch_size, max_tokens=args.max_tokens, progress=progress
    )
    lines = []
    for text, row in zip(texts, logits, strict=True):
        label = int(np.argmax(row))
        if args.json:
            lines.append(json.dumps({"text": text, "logits": [float(x) for x in row], "label": label}))
        else:
            lines.append(f"{label}\t{' '.join(f'{x:.6f}' for x in row)}\t{text}")
    sys.stdout.write("\n".join(lines) + "\n")
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
