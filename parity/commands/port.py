"""`bertcnn port SRC DST`: move weights between formats and frameworks, losslessly and strictly.

The tool people use on a checkpoint someone emailed them, so: formats are chosen by
path, inputs are read as untrusted data (see `parity.io`), every tensor is
checked by name and shape against the config before any is written, dtypes are
kept unless `--dtype` says otherwise, and the destination appears whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.commands import builds
from parity.commands.common import FORCE_FOLDER_HELP, label_list, require, source_needs
from parity.config import BertCnnConfig
from parity.io import formats as F
from parity.io.card import read_run_metrics
from parity.io.checkpoint import WEIGHTS_NAME, Card, copy_tokenizer, write_hf_files
from parity.io.destination import claim
from parity.io.keras_h5 import write_keras_archive, write_keras_h5
from parity.io.outputs import DIR, FILE
from parity.io.reader import read_weights
from parity.io.safetensors import write_safetensors
from parity.io.torch_pickle import write_torch
from parity.layout import rows
from parity.progress import bar
from parity.training.state import METRICS_NAME

DTYPE_RULE = (
    "--dtype casts every tensor with IEEE round-to-nearest-even; a finite value that would "
    "overflow to infinity in the target dtype is refused. Without --dtype the source dtype is kept."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        f"{p.description}. Formats by path: {F.FORMAT_HELP}; any other suffix is refused. "
        "Tensor-only formats (.pt, .weights.h5, foreign .safetensors) need --config or --backbone."
    )
    p.epilog = (
        "A model trained with the seeds' PyTorch class: bertcnn port trained.pt ck/ --backbone HF_BERT_DIR "
        "(BERT sizes and tokenizer from the backbone, head read off the tensors, mask_padding=False as the seeds). "
        "Name the classes of a checkpoint that has none, weights untouched: bertcnn port ck ck-named --labels neg,pos."
    )
    p.add_argument("source", metavar="SRC", help="checkpoint to read (never modified)")
    p.add_argument(
        "dest", metavar="DST", help="where to write; the format follows the name (a directory: no suffix, or /)"
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="config.json for sources that carry none (.pt, .weights.h5): a bertcnn config.json, or a Hugging Face "
        "BERT config.json (then the head is read off the tensors)",
    )
    p.add_argument(
        "--backbone",
        metavar="HF_BERT",
        help="the Hugging Face BERT the source was fine-tuned from (a directory or a hub id): its config.json gives "
        "the BERT sizes, the head is read off the tensors, and its tokenizer is carried into a checkpoint directory",
    )
    p.add_argument(
        "--mask-padding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --backbone or a Hugging Face --config: pooling of the new config (default: --no-mask-padding, "
        "the seeds' pooling, which reproduces their logits exactly)",
    )
    p.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="carry this folder's tokenizer (tokenizer.json, vocab.txt, ...) into a checkpoint directory DST",
    )
    p.add_argument("--dtype", choices=F.FLOAT_DTYPES, help=DTYPE_RULE)
    p.add_argument(
        "--labels",
        type=label_list,
        metavar="NAME,NAME,...",
        help="class names in id order for DST's config (weights untouched): names the classes of a checkpoint that "
        "has none, e.g. one ported from the seeds' class",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing DST file; " + FORCE_FOLDER_HELP.format(what="a DST folder"),
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr even on a terminal")


def run(args: argparse.Namespace) -> int:
    require("port", [*source_needs(args.source, "reading SRC"), *dest_needs(args.dest)])
    r = port(
        args.source,
        args.dest,
        config=args.config,
        dtype=args.dtype,
        force=args.force,
        progress=False if args.no_progress else None,
        backbone=args.backbone,
        tokenizer=args.tokenizer,
        mask_padding=args.mask_padding,
        labels=args.labels,
    )
    for note in r.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"ported {args.source} ({r.source_format}) -> {args.dest} ({r.dest_format}): {r.num_tensors} tensors, "
        f"{r.num_parameters:,} parameters, {r.dtype}{_length(r)}, {r.seconds:.1f} s"
    )
    return 0


def _length(r: PortResult) -> str:
    """The length the model reads, as DST records it (a format without a config records nothing)."""
    n = r.config.max_seq_length
    return f", max_seq_length {n}" if n is not None and F.CARRIES_CONFIG[r.dest_format] else ""


@dataclass
class PortResult:
    source_format: str
    dest_format: str
    config: BertCnnConfig
    dtype: str
    num_tensors: int
    num_parameters: int
    seconds: float
    notes: list[str]


def port(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    config: str | os.PathLike | BertCnnConfig | None = None,
    dtype: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    backbone: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    mask_padding: bool | None = None,
    labels: tuple[str, ...] | None = None,
) -> PortResult:
    """Read `source`, check it strictly, write `dest` atomically. Raises ValueError/FileNotFoundError on bad input."""
    start = time.perf_counter()
    src, dst = Path(source), Path(dest)
    if not src.exists():
        raise FileNotFoundError(f"Source not found; expected {F.FORMAT_HELP}. Received: {str(src)!r}")
    dst_fmt = F.format_of(dest, for_output=True)
    if _same_path(dst, src):
        raise ValueError(
            f"Source and destination are the same path; the source is never overwritten. Received: {str(dst)!r}"
        )
    kind = DIR if dst_fmt == F.DIR else FILE
    with claim(dst, flag="DST", kind=kind, inputs=[src, config, backbone, tokenizer], force=force) as out:
        return _port(src, out, dst_fmt, start, config=config, dtype=dtype, progress=progress, backbone=backbone,
                     tokenizer=tokenizer, mask_padding=mask_padding, labels=labels)  # fmt: skip


def _port(src: Path, out, dst_fmt: str, start: float, *, config, dtype, progress, backbone, tokenizer, mask_padding,
          labels) -> PortResult:  # fmt: skip
    dst = out.path
    if labels is not None and not F.CARRIES_CONFIG[dst_fmt]:
        raise ValueError(
            f"--labels names the classes in DST's config, and a {dst_fmt} file holds no config; write a checkpoint "
            f"directory, .safetensors or .keras instead. Received: DST {str(dst)!r}"
        )
    if dtype is not None and dtype not in F.FLOAT_DTYPES:
        raise ValueError(f"--dtype must be one of {F.FLOAT_DTYPES}. Received: {dtype!r}")
    if tokenizer is not None and dst_fmt != F.DIR:
        raise ValueError(
            f"--tokenizer needs a checkpoint directory destination; a {dst_fmt} file holds weights only. "
            f"Received: DST {str(dst)!r}"
        )
    w = read_weights(src, config=config, backbone=backbone, mask_padding=mask_padding, writable=False)
    cfg, tensors = w.config, w.tensors
    if labels is not None:
        if len(labels) != cfg.num_labels:
            raise ValueError(
                f"--labels must name every one of the model's {cfg.num_labels} classes, in id order. "
                f"Received: {len(labels)} names ({','.join(labels)})"
            )
        cfg = cfg.replace(label_names=tuple(labels))
    src_dtype = str(F.floating_dtype(tensors.values()))
    out_dtype = dtype or src_dtype
    if out_dtype != src_dtype:
        tensors = {k: _cast(k, v, out_dtype) for k, v in tensors.items()}
    tok_dir, notes = _tokenizer_and_notes(w, cfg, dst, dst_fmt, tokenizer)
    total = sum(v.nbytes for v in tensors.values())
    ordered = [(r.torch_name, tensors[r.torch_name]) for r in rows(cfg)]
    template = builds.keras_template
    with bar(total, unit="B", unit_scale=True, desc=f"{src.name} -> {dst.name}", enabled=progress, delay=2.0) as b:
        advance = b.update
        if dst_fmt == F.DIR:
            with out.staged("checkpoint") as tmp:
                write_safetensors(tmp / WEIGHTS_NAME, ordered, {"format": "pt"}, advance)
                if tok_dir is not None:
                    copy_tokenizer(tok_dir, tmp, max_length=cfg.max_seq_length)
                cast = f", cast from {src_dtype} to {out_dtype}" if out_dtype != src_dtype else ""
                card = Card(source=f"`bertcnn port` of {src} ({w.format}{cast})",
                            metrics=read_run_metrics(src / METRICS_NAME) if src.is_dir() else ())  # fmt: skip
                write_hf_files(tmp, cfg, dtype=out_dtype, card=card)
        else:
            with out.staged() as tmp:
                if dst_fmt == F.SAFETENSORS:
                    write_safetensors(tmp, ordered, {"format": "pt", F.CONFIG_METADATA_KEY: cfg.to_json()}, advance)
                elif dst_fmt == F.TORCH:
                    write_torch(tmp, ordered, advance)
                elif dst_fmt == F.KERAS:
                    write_keras_archive(tmp, cfg, out_dtype, tensors, advance, template)
                else:
                    write_keras_h5(tmp, cfg, tensors, advance, template)
    return PortResult(
        w.format,
        dst_fmt,
        cfg,
        out_dtype,
        len(tensors),
        sum(int(v.size) for v in tensors.values()),
        time.perf_counter() - start,
        notes,
    )


def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.lexists(a) and os.path.samefile(a, b)
    except OSError:  # a link loop: the output checks say what is wrong with it
        return False


def dest_needs(dest: str) -> list[tuple[str, str, str]]:
    """Writing .keras / .weights.h5 asks Keras where each variable goes (a probe model); .pt needs torch."""
    try:
        fmt = F.format_of(dest, for_output=True)
    except ValueError:
        return []  # the reader and writer say what is wrong with the name
    if fmt in (F.KERAS, F.KERAS_WEIGHTS):
        return [("h5py", f"writing {fmt}", "tf"), *builds.needs("keras", f"writing {fmt} (Keras' h5 layout)")]
    if fmt == F.TORCH:
        return [("torch", "writing a .pt file", "torch")]
    return []


def _tokenizer_and_notes(w: F.Weights, cfg: BertCnnConfig, dst: Path, dst_fmt: str, tokenizer) -> tuple:
    """The tokenizer folder to carry into DST (or None), and the notes for the user."""
    notes = list(w.notes)
    tok_dir = w.tokenizer_dir
    if tokenizer is not None:
        tok_dir = _tokenizer_dir(Path(tokenizer), cfg, "--tokenizer")
    elif w.backbone_tokenizer is not None and dst_fmt == F.DIR:
        tok_dir = _tokenizer_dir(w.backbone_tokenizer, cfg, "--backbone")
        notes.append(f"tokenizer carried from the backbone {str(w.backbone_tokenizer)!r}")
    if tok_dir is not None and dst_fmt != F.DIR:
        notes.append(f"tokenizer files in {tok_dir} were not carried: a {dst_fmt} file holds weights only")
    elif tok_dir is None and dst_fmt == F.DIR:
        notes.append(
            f"{dst.name} has no tokenizer, so `bertcnn predict` cannot read text with it; add one with "
            f"`bertcnn port {dst} NEW_DIR --tokenizer HF_BERT_DIR`"
        )
    if not F.CARRIES_CONFIG[dst_fmt]:
        notes.append(f"{dst.name} holds no config; pass --config with the source's config.json to read it back")
        if cfg.max_seq_length is not None:
            n = cfg.max_seq_length
            notes.append(
                f"the model reads {n} tokens per text (max_seq_length in its config); read with a --config that "
                f"lacks it, {dst.name} reads up to {cfg.max_position_embeddings}: pass --max-length {n} then"
            )
    return tok_dir, notes


def _tokenizer_dir(d: Path, config: BertCnnConfig, flag: str) -> Path:
    """A folder with tokenizer.json whose vocabulary fits the model's embedding table."""
    from tokenizers import Tokenizer

    if not (d / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"{flag} must be a folder with tokenizer.json (a Hugging Face BERT directory or a bertcnn checkpoint). "
            f"Received: {str(d)!r}"
        )
    try:
        size = Tokenizer.from_file(str(d / "tokenizer.json")).get_vocab_size()
    except Exception as e:  # a damaged or foreign file; the library's message, on one line
        raise F.bad(d / "tokenizer.json", f"not a readable tokenizer ({F.first_line(e)})", "tokenizer.json") from None
    if size > config.vocab_size:
        raise ValueError(
            f"{flag} {d}: the tokenizer has {size} tokens but the model's embedding table has {config.vocab_size} "
            f"rows; it belongs to another model. Received: vocab size {size}"
        )
    return d


def _cast(name: str, a: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # overflow is detected and reported just below
        out = np.asarray(a).astype(F.np_dtype(dtype))
    with np.errstate(invalid="ignore"):
        overflow = np.isinf(out.astype(np.float32)) & np.isfinite(np.asarray(a).astype(np.float32))
    if overflow.any():
        raise ValueError(
            f"Casting {name} to {dtype} overflows {int(overflow.sum())} finite values to infinity; "
            f"keep the source dtype (drop --dtype) or pick a wider one. {DTYPE_RULE} Received: --dtype {dtype}"
        )
    return out
