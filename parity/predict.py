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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
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
    return predict_encoded(
        forward,
        tokenizer,
        tokenizer.encode(texts),
        batch_size=batch_size,
        max_tokens=max_tokens,
        pad_multiple=pad_multiple,
        progress=progress,
    )


def predict_encoded(
    forward: Forward,
    tokenizer: Tokenizer,
    encoded: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    batch_size: int = 32,
    max_tokens: int | None = None,
    pad_multiple: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """`predict_logits` on rows already tokenised (`Tokenizer.encode_counted`, which also counts truncation)."""
    batches = plan_batches([len(ids) for ids, _ in encoded], batch_size=batch_size, max_tokens=max_tokens)
    out: np.ndarray | None = None
    done = 0
    for idx in batches:
        rows = [encoded[i] for i in idx]
        width = max(len(ids) for ids, _ in rows)
        pad_to = bucket_width(width, pad_multiple, tokenizer.max_length) if pad_multiple else None
        logits = np.asarray(forward(tokenizer.pad(rows, pad_to=pad_to)))
        if out is None:
            out = np.empty((len(encoded), *logits.shape[1:]), dtype=logits.dtype)
        out[idx] = logits
        done += len(idx)
        if progress is not None:
            progress(done, len(encoded))
    return out


# -- models from a checkpoint directory or a single weight file -----------------------------------
@dataclass
class Loaded:
    """A model's forward, its config, and where its tokenizer is (None when the source has none)."""

    forward: Forward
    config: BertCnnConfig
    tokenizer: Path | None


def read_weights(source: str | os.PathLike, config: str | os.PathLike | None = None):
    """(config, canonical tensors, tokenizer dir or None) from a checkpoint directory or one weight file.

    Files are read as untrusted data by `parity.formats` (no unpickling, no Keras
    deserialisation) and checked by name and shape against the config: the file's own
    (.keras, a .safetensors written by `bertcnn port`) or `config`, a config.json, for
    formats that carry none (.pt/.pth/.bin, .weights.h5, foreign .safetensors).
    """
    from parity import formats as F
    from parity.checkpoint import TOKENIZER_FILES, load_checkpoint
    from parity.port import strict_check

    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"--checkpoint not found; expected {F.FORMAT_HELP}. Received: {str(src)!r}")
    given = None if config is None else BertCnnConfig.from_json_file(config)
    if src.is_dir():
        if given is not None:
            raise ValueError(
                f"{src} is a checkpoint directory, which carries its own config.json; drop --config. "
                f"Received: --config {config}"
            )
        cfg, tensors = load_checkpoint(src)
        has_tok = any((src / n).is_file() for n in TOKENIZER_FILES)
        return cfg, tensors, (src if has_tok else None)
    fmt = F.format_of(src)

    def expect_for(cfg: BertCnnConfig):
        return lambda shapes: strict_check(shapes, cfg, what=str(src))

    needs = ValueError(
        f"{src} is a {fmt} file, which carries no model config; pass --config path/to/config.json "
        f"(the config.json of the checkpoint these weights belong to). Received: no --config"
    )
    if fmt == F.KERAS:
        w = F.read_keras_archive(src, expect_for)
    elif fmt == F.SAFETENSORS:
        w = F.read_safetensors(src)
    elif fmt == F.TORCH:
        w = F.read_torch(src)
    else:  # Keras weights: the layout comes from the config
        if given is None:
            raise needs
        w = F.Weights(given, F.read_keras_h5(src, given, src, expect_for(given)))
    if w.config is None:
        if given is None:
            raise needs
        w.config = given
    elif given is not None and given != w.config:
        raise ValueError(
            f"--config disagrees with the config stored in {src}; drop --config (the file carries its own). "
            f"Received: --config {config}"
        )
    strict_check({k: v.shape for k, v in w.tensors.items()}, w.config, what=str(src))
    # Own writable copies: readers may hand out read-only memory maps.
    return w.config, {k: np.array(v) for k, v in w.tensors.items()}, w.tokenizer_dir


def load_forward(
    framework: str,
    source: str | os.PathLike,
    *,
    config: str | os.PathLike | None = None,
    attn_implementation: str = "sdpa",
    compiled: bool = True,
) -> Loaded:
    """The forward of `framework`'s build of the model in `source` (a checkpoint directory or weight file)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {sorted(FRAMEWORKS)}. Received: {framework!r}")
    cfg, tensors, tokenizer = read_weights(source, config)
    return build_forward(framework, cfg, tensors, tokenizer, attn_implementation=attn_implementation, compiled=compiled)


def build_forward(
    framework: str,
    config: BertCnnConfig,
    tensors: dict[str, np.ndarray],
    tokenizer: Path | None = None,
    *,
    attn_implementation: str = "sdpa",
    compiled: bool = True,
) -> Loaded:
    """`framework`'s build from canonical tensors (the slow part: imports the framework, builds the model)."""
    if framework == "torch":
        from bertcnn_torch import BertCNN

        forward = torch_predictor(BertCNN._from_tensors(config, tensors, attn_implementation=attn_implementation))
    elif framework == "keras":
        from bertcnn_tf import BertCNN

        forward = keras_predictor(BertCNN._from_tensors(config, tensors), compiled=compiled)
    else:
        raise ValueError(f"framework must be one of {sorted(FRAMEWORKS)}. Received: {framework!r}")
    return Loaded(forward, config, tokenizer)


def load_tokenizer(
    config: BertCnnConfig, own: Path | None, source: str, tokenizer: str | None, max_length: int | None
) -> Tokenizer:
    """`tokenizer` (else the source's own, `own`) at `max_length` (default: the position table)."""
    max_length = max_length or config.max_position_embeddings
    if max_length > config.max_position_embeddings:
        raise ValueError(
            f"--max-length must be at most max_position_embeddings={config.max_position_embeddings}. "
            f"Received: {max_length}"
        )
    where = tokenizer or own
    if where is None:
        raise ValueError(
            f"{source} carries no tokenizer; pass --tokenizer DIR (a folder with tokenizer.json, such as the "
            "checkpoint or Hugging Face BERT these weights came from). Received: no --tokenizer"
        )
    return Tokenizer(where, max_length=max_length, pad_token_id=config.pad_token_id)


def truncation_note(truncated: int, total: int, max_length: int, config: BertCnnConfig) -> str:
    cap = "--max-length" if max_length < config.max_position_embeddings else "the model's position table"
    return (
        f"note: {truncated} of {total} texts were longer than {max_length} tokens ({cap}) "
        f"and were cut to their first {max_length}"
    )


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


def read_texts(path: str) -> tuple[list[str], int]:
    """One text per line of a UTF-8 file ('-': stdin); returns (texts, blank lines skipped).

    Lines end at LF (a CR before it is dropped); a byte-order mark is ignored. Bytes
    that are not UTF-8 are reported with the file and line, not a byte offset.
    """
    name = "<stdin>" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--file must be a text file with one text per line. Received: {path!r}")
        data = p.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{name}:{line}: bytes that are not UTF-8; expected a UTF-8 text file (re-save it as UTF-8). "
            f"Received: byte {data[e.start : e.start + 1]!r} on line {line}"
        ) from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line
    texts = [line for line in lines if line.strip()]
    return texts, len(lines) - len(texts)


def gather_texts(args_texts: Sequence[str], file: str | None, *, purpose: str) -> list[str]:
    """TEXT arguments, then `file`'s lines ('-' = stdin): what predict and report run on.

    Bad bytes are refused with where they are (argument number, FILE:LINE); an empty file is
    named as such, not mistaken for a missing --file.
    """
    texts = list(args_texts)
    for i, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as surrogate escapes
            raise ValueError(
                f"TEXT argument {i} has bytes that are not UTF-8; expected UTF-8 text (or use --file). "
                f"Received: {text.encode('utf-8', 'surrogateescape')[:80]!r}"
            ) from None
    if file:
        from_file, blank = read_texts(file)
        if not from_file and not texts:
            name = "standard input" if file == "-" else file
            raise ValueError(
                f"{name} has no texts to {purpose}; expected one text per line. "
                f"Received: {'an empty file' if not blank else f'{blank} blank line(s)'}"
            )
        texts += from_file
    return texts


def run(args: argparse.Namespace) -> int:
    from parity.training.metrics import softmax

    texts = gather_texts(args.texts, args.file, purpose="predict")
    if not texts:
        raise ValueError("no texts to predict: give TEXT arguments or --file PATH. Received: nothing")
    from parity.serving import export_forward, is_export

    if is_export(args.checkpoint):  # an export runs in its own runtime; --framework does not apply
        if args.taps:
            raise ValueError(
                f"an export computes logits only: --taps needs a checkpoint. Received: {args.checkpoint!r}"
            )
        if args.framework:
            print(f"note: {args.checkpoint} is an export; --framework {args.framework} ignored", file=sys.stderr)
        forward, config = export_forward(args.checkpoint, threads=args.threads)
        tokenizer = load_tokenizer(config, Path(args.checkpoint), args.checkpoint, args.tokenizer, args.max_length)
    elif args.framework is None:
        raise ValueError(
            "--framework torch|keras is required for a checkpoint (only an export directory runs without one). "
            f"Received: {args.checkpoint!r}"
        )
    else:
        set_threads(args.framework, args.threads)
        config, tensors, own_tokenizer = read_weights(args.checkpoint, args.config)
        tokenizer = load_tokenizer(config, own_tokenizer, args.checkpoint, args.tokenizer, args.max_length)
        forward = build_forward(args.framework, config, tensors).forward
        del tensors
    encoded, truncated = tokenizer.encode_counted(texts)
    if truncated:
        print(truncation_note(truncated, len(texts), tokenizer.max_length, config), file=sys.stderr)
    # Progress only for people watching: never into pipes or logs, never on stdout.
    progress = Progress() if args.file and not args.no_progress and sys.stderr.isatty() else None
    logits = predict_encoded(
        forward, tokenizer, encoded, batch_size=args.batch_size, max_tokens=args.max_tokens, progress=progress
    )
    names = config.labels
    probabilities = softmax(logits)
    lines = []
    for text, row, probs in zip(texts, logits, probabilities, strict=True):
        label = int(np.argmax(row))
        if args.json:
            lines.append(
                json.dumps(
                    {
                        "text": text,
                        "label": names[label],
                        "label_id": label,
                        "logits": [float(x) for x in row],
                        "probabilities": [float(x) for x in probs],
                    }
                )
            )
        else:
            lines.append(f"{names[label]}\t{' '.join(f'{x:.6f}' for x in row)}\t{text}")
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
