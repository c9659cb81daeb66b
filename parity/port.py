"""`bertcnn port SRC DST`: move weights between formats and frameworks, losslessly and strictly.

The tool people use on a checkpoint someone emailed them, so: formats are chosen by
path, inputs are read as untrusted data (see `parity.formats`), every tensor is
checked by name and shape against the config before any is written, dtypes are
kept unless `--dtype` says otherwise, and the destination appears whole or not at all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from parity import formats as F
from parity.checkpoint import CONFIG_NAME, WEIGHTS_NAME, copy_tokenizer, floating_dtype
from parity.config import BertCnnConfig
from parity.layout import PortError, check_tensors, expected_shapes, rows

DTYPE_RULE = (
    "--dtype casts every tensor with IEEE round-to-nearest-even; a finite value that would "
    "overflow to infinity in the target dtype is refused. Without --dtype the source dtype is kept."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        f"{p.description}. Formats by path: {F.FORMAT_HELP}. "
        "Tensor-only formats (.pt, .weights.h5, foreign .safetensors) need --config."
    )
    p.add_argument("source", metavar="SRC", help="checkpoint to read (never modified)")
    p.add_argument("dest", metavar="DST", help="where to write; the format follows the name")
    p.add_argument("--config", metavar="FILE", help="config.json for sources that carry none (.pt, .weights.h5)")
    p.add_argument("--dtype", choices=F.FLOAT_DTYPES, help=DTYPE_RULE)
    p.add_argument("--force", action="store_true", help="replace an existing DST")


def run(args: argparse.Namespace) -> int:
    r = port(args.source, args.dest, config=args.config, dtype=args.dtype, force=args.force)
    for note in r.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"ported {args.source} ({r.source_format}) -> {args.dest} ({r.dest_format}): {r.num_tensors} tensors, "
        f"{r.num_parameters:,} parameters, {r.dtype}, {r.seconds:.1f} s"
    )
    return 0


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
) -> PortResult:
    """Read `source`, check it strictly, write `dest` atomically. Raises ValueError/FileNotFoundError on bad input."""
    start = time.perf_counter()
    src, dst = Path(source), Path(dest)
    if not src.exists():
        raise FileNotFoundError(f"Source not found; expected {F.FORMAT_HELP}. Received: {str(src)!r}")
    src_fmt = F.DIR if src.is_dir() else F.format_of(src)
    dst_fmt = F.format_of(dest, for_output=True)
    if dst.resolve() == src.resolve():
        raise ValueError(
            f"Source and destination are the same path; the source is never overwritten. Received: {str(dst)!r}"
        )
    if (dst.exists() or dst.is_symlink()) and not force:
        raise ValueError(f"Destination already exists; pass --force to replace it. Received: {str(dst)!r}")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"Destination folder does not exist; create it first. Received: {str(dst.parent)!r}")
    if dtype is not None and dtype not in F.FLOAT_DTYPES:
        raise ValueError(f"--dtype must be one of {F.FLOAT_DTYPES}. Received: {dtype!r}")
    given = config if isinstance(config, BertCnnConfig) or config is None else BertCnnConfig.from_json_file(config)

    w = _read(src, src_fmt, given)
    cfg = w.config
    tensors = w.tensors
    src_dtype = str(floating_dtype(tensors.values()))
    out_dtype = dtype or src_dtype
    if out_dtype != src_dtype:
        tensors = {k: _cast(k, v, out_dtype) for k, v in tensors.items()}
    notes = []
    if w.tokenizer_dir is not None and dst_fmt != F.DIR:
        notes.append(f"tokenizer files in {src} were not carried: a {dst_fmt} file holds weights only")
    if not F.CARRIES_CONFIG[dst_fmt]:
        notes.append(f"{dst.name} holds no config; pass --config with the source's config.json to read it back")

    total = sum(v.nbytes for v in tensors.values())
    bar = _Progress(total, f"{src.name} -> {dst.name}", enabled=progress)
    ordered = [(r.torch_name, tensors[r.torch_name]) for r in rows(cfg)]
    with _Staged(dst, force) as tmp:
        if dst_fmt == F.DIR:
            tmp.mkdir()
            (tmp / CONFIG_NAME).write_text(cfg.to_json(), encoding="utf-8")
            F.write_safetensors(tmp / WEIGHTS_NAME, ordered, {"format": "pt"}, bar)
            if w.tokenizer_dir is not None:
                copy_tokenizer(w.tokenizer_dir, tmp)
        elif dst_fmt == F.SAFETENSORS:
            F.write_safetensors(tmp, ordered, {"format": "pt", F.CONFIG_METADATA_KEY: cfg.to_json()}, bar)
        elif dst_fmt == F.TORCH:
            F.write_torch(tmp, ordered, bar)
        elif dst_fmt == F.KERAS:
            F.write_keras_archive(tmp, cfg, out_dtype, tensors, bar)
        else:
            F.write_keras_h5(tmp, cfg, tensors, bar)
    bar.done()
    return PortResult(
        src_fmt,
        dst_fmt,
        cfg,
        out_dtype,
        len(tensors),
        sum(int(v.size) for v in tensors.values()),
        time.perf_counter() - start,
        notes,
    )


def _read(src: Path, fmt: str, given: BertCnnConfig | None) -> F.Weights:
    def expect_for(config: BertCnnConfig):
        return lambda shapes: strict_check(shapes, config, what=f"{src}")

    if fmt == F.DIR:
        w = F.read_dir(src, expect_for)
    elif fmt == F.KERAS:
        w = F.read_keras_archive(src, expect_for)
    elif fmt == F.SAFETENSORS:
        w = F.read_safetensors(src)  # memory-mapped: nothing is read until written out
    elif fmt == F.TORCH:
        w = F.read_torch(src)
    else:
        if given is None:
            raise _needs_config(src, fmt)
        w = F.Weights(given, F.read_keras_h5(src, given, src, expect_for(given)))
    if w.config is None:
        if given is None:
            raise _needs_config(src, fmt)
        w.config = given
        strict_check({k: v.shape for k, v in w.tensors.items()}, given, what=str(src))
    elif given is not None and given != w.config:
        diffs = [
            f"{k} (--config {getattr(given, k)!r}, {src.name} {getattr(w.config, k)!r})"
            for k in (f.name for f in fields(BertCnnConfig))
            if getattr(given, k) != getattr(w.config, k)
        ]
        raise ValueError(
            f"--config disagrees with the config stored in {src}: {'; '.join(diffs)}. "
            f"Drop --config (the file carries its own) or pass the matching one. Received: {len(diffs)} differing keys"
        )
    elif fmt == F.SAFETENSORS:
        strict_check({k: v.shape for k, v in w.tensors.items()}, w.config, what=str(src))
    return w


def _needs_config(src: Path, fmt: str) -> ValueError:
    return ValueError(
        f"{src} is a {fmt} file, which carries no model config; pass --config path/to/config.json "
        "(the config.json of the checkpoint these weights belong to). Received: no --config"
    )


def strict_check(shapes: Mapping[str, tuple], config: BertCnnConfig, *, what: str) -> None:
    """The weight-table check, led by the config fields the tensors contradict, when that can be told."""
    try:
        check_tensors({k: tuple(v) for k, v in shapes.items()}, expected_shapes(config), what=what)
    except PortError as e:
        hints = config_disagreements(shapes, config)
        if hints:
            raise PortError(f"{what}: config disagrees with the tensors: {'; '.join(hints)}.\n{e}") from None
        raise


def config_disagreements(shapes: Mapping[str, tuple], config: BertCnnConfig) -> list[str]:
    """Config fields read back from tensor shapes that differ from `config` (e.g. num_filters, layers)."""
    s = {k: tuple(v) for k, v in shapes.items()}
    seen: dict[str, tuple[object, str]] = {}

    def note(field, value, name):
        seen.setdefault(field, (value, name))

    if len(s.get(w := "bert.embeddings.word_embeddings.weight", ())) == 2:
        note("vocab_size", s[w][0], w)
        note("hidden_size", s[w][1], w)
    if len(s.get(p := "bert.embeddings.position_embeddings.weight", ())) == 2:
        note("max_position_embeddings", s[p][0], p)
    if len(s.get(t := "bert.embeddings.token_type_embeddings.weight", ())) == 2:
        note("type_vocab_size", s[t][0], t)
    layers = {k.split(".")[3] for k in s if k.startswith("bert.encoder.layer.")}
    if layers:
        note("num_hidden_layers", len(layers), "bert.encoder.layer.*")
    if len(s.get(i := "bert.encoder.layer.0.intermediate.dense.weight", ())) == 2:
        note("intermediate_size", s[i][0], i)
    convs = sorted({k.split(".")[1] for k in s if k.startswith("convs.")}, key=lambda x: (len(x), x))
    widths = [s[c][2] for j in convs if len(s.get(c := f"convs.{j}.weight", ())) == 3]
    if convs and len(widths) == len(convs):
        note("kernel_sizes", tuple(widths), "convs.*.weight")
        note("num_filters", s["convs.0.weight"][0] if "convs.0.weight" in s else widths, "convs.0.weight")
    if "hidden.weight" in s or "fc.weight" in s:
        note(
            "head_hidden_size", s["hidden.weight"][0] if len(s.get("hidden.weight", ())) == 2 else None, "hidden.weight"
        )
    if len(s.get("fc.weight", ())) == 2:
        note("num_labels", s["fc.weight"][0], "fc.weight")
    return [
        f"{field}: config {getattr(config, field)!r}, tensors {value!r} ({name})"
        for field, (value, name) in seen.items()
        if value != getattr(config, field)
    ]


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


class _Staged:
    """Yield a temporary path beside `dest`; on success rename it into place, on any failure remove it."""

    def __init__(self, dest: Path, force: bool):
        self.dest, self.force = dest, force
        self.tmp = dest.with_name(f".{dest.name}.port-tmp-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            _remove(self.tmp)
            return
        old = None
        if self.dest.exists() or self.dest.is_symlink():
            old = self.dest.with_name(f".{self.dest.name}.port-old-{uuid.uuid4().hex[:8]}")
            os.replace(self.dest, old)
        try:
            os.replace(self.tmp, self.dest)
        except BaseException:
            if old is not None:
                os.replace(old, self.dest)
            _remove(self.tmp)
            raise
        if old is not None:
            _remove(old)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


class _Progress:
    """A bar on a terminal once a port has run for ~2 s; silent when stderr is piped."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label, self.done_bytes = max(total, 1), label, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start, self.drawn = time.monotonic(), False

    def __call__(self, nbytes: int) -> None:
        self.done_bytes += nbytes
        if self.enabled and time.monotonic() - self.start > 2.0:
            frac = min(self.done_bytes / self.total, 1.0)
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac:4.0%} of {self.total / 2**20:,.0f} MiB")
            sys.stderr.flush()
            self.drawn = True

    def done(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
