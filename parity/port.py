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
from parity.checkpoint import CONFIG_NAME, TOKENIZER_FILES, WEIGHTS_NAME, copy_tokenizer, floating_dtype
from parity.config import BertCnnConfig
from parity.layout import PortError, check_tensors, expected_shapes, rows

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
        "Exit codes: 0 written, 2 bad input (one line on stderr; nothing written)."
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
        metavar="HF_BERT_DIR",
        help="the Hugging Face BERT the source was fine-tuned from: its config.json gives the BERT sizes, the head is "
        "read off the tensors, and its tokenizer is carried into a checkpoint directory",
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
    p.add_argument("--force", action="store_true", help="replace an existing DST")


def run(args: argparse.Namespace) -> int:
    r = port(
        args.source,
        args.dest,
        config=args.config,
        dtype=args.dtype,
        force=args.force,
        backbone=args.backbone,
        tokenizer=args.tokenizer,
        mask_padding=args.mask_padding,
    )
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


# The seeds' head, as BertCnnConfig fields read off the tensors.
HEAD_FIELDS = ("kernel_sizes", "num_filters", "num_labels", "head_hidden_size")
SEED_POOLING_NOTE = (
    "mask_padding=False: the seeds' pooling (windows over padding count in the max, so a padded text's logits "
    "depend on its batch), which reproduces the source model exactly; --mask-padding chooses padding-aware pooling"
)


@dataclass
class _Given:
    """What the user said about the config: a full bertcnn config, or a BERT config to complete from tensors."""

    config: BertCnnConfig | None = None
    hf: dict | None = None  # a Hugging Face BERT config.json: BERT sizes only
    hf_from: str = ""
    mask_padding: bool | None = None
    tokenizer_dir: Path | None = None


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
    if tokenizer is not None and dst_fmt != F.DIR:
        raise ValueError(
            f"--tokenizer needs a checkpoint directory destination; a {dst_fmt} file holds weights only. "
            f"Received: DST {str(dst)!r}"
        )
    given = _given(config, backbone, mask_padding)

    w = _read(src, src_fmt, given)
    cfg = w.config
    tensors = w.tensors
    src_dtype = str(floating_dtype(tensors.values()))
    out_dtype = dtype or src_dtype
    if out_dtype != src_dtype:
        tensors = {k: _cast(k, v, out_dtype) for k, v in tensors.items()}
    notes = list(w.notes)
    tok_dir = w.tokenizer_dir
    if tokenizer is not None:
        tok_dir = _tokenizer_dir(Path(tokenizer), cfg, "--tokenizer")
    elif given.tokenizer_dir is not None and dst_fmt == F.DIR:
        tok_dir = _tokenizer_dir(given.tokenizer_dir, cfg, "--backbone")
        notes.append(f"tokenizer carried from the backbone {str(given.tokenizer_dir)!r}")
    if tok_dir is not None and dst_fmt != F.DIR:
        notes.append(f"tokenizer files in {tok_dir} were not carried: a {dst_fmt} file holds weights only")
    elif tok_dir is None and dst_fmt == F.DIR:
        notes.append(
            f"{dst.name} has no tokenizer, so `bertcnn predict` cannot read text with it; add one with "
            f"`bertcnn port {dst} NEW_DIR --tokenizer HF_BERT_DIR`"
        )
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
            if tok_dir is not None:
                copy_tokenizer(tok_dir, tmp)
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


def _given(config, backbone, mask_padding: bool | None) -> _Given:
    """--config (bertcnn or Hugging Face config.json) / --backbone, checked before any weights are read."""
    if config is not None and backbone is not None:
        raise ValueError(
            "Pass --config or --backbone, not both: --backbone reads the BERT config from the backbone's "
            f"config.json. Received: --config {str(config)!r} --backbone {str(backbone)!r}"
        )
    given = _Given(mask_padding=mask_padding)
    if isinstance(config, BertCnnConfig):
        given.config = config
    elif config is not None:
        raw = _read_json(Path(config))
        if _is_hf_bert(raw):
            given.hf, given.hf_from = raw, f"--config {config}"
        else:
            given.config = BertCnnConfig.from_dict(raw)
    elif backbone is not None:
        b = Path(backbone)
        if not (b / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"--backbone must be a Hugging Face BERT directory with a {CONFIG_NAME} (and its tokenizer). "
                f"Received: {str(b)!r}"
            )
        raw = _read_json(b / CONFIG_NAME)
        if not _is_hf_bert(raw):
            raise ValueError(
                f"--backbone {b} holds no Hugging Face BERT config (model_type 'bert'); a bertcnn checkpoint's "
                f"config goes to --config. Received: model_type={raw.get('model_type')!r}"
            )
        given.hf, given.hf_from = raw, f"--backbone {b}"
        if any((b / n).is_file() for n in TOKENIZER_FILES):
            given.tokenizer_dir = b
    if mask_padding is not None and given.hf is None:
        raise ValueError(
            "--mask-padding/--no-mask-padding only apply when the config is built from --backbone or a Hugging Face "
            "--config; a bertcnn config keeps its own pooling (a port never changes the function). "
            f"Received: --{'' if mask_padding else 'no-'}mask-padding"
        )
    return given


def _is_hf_bert(raw: dict) -> bool:
    return isinstance(raw, dict) and "model_type" in raw


def _read_json(path: Path) -> dict:
    import json

    if not path.is_file():
        raise FileNotFoundError(f"Config file not found; expected a config.json. Received: {str(path)!r}")
    if path.stat().st_size > F.MAX_JSON_BYTES:
        raise F.bad(path, "config.json is implausibly large", "a small JSON config")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise F.bad(path, f"not valid JSON ({type(e).__name__})", "a config.json") from None


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
        raise F.bad(d / "tokenizer.json", f"not a readable tokenizer ({F._first_line(e)})", "tokenizer.json") from None
    if size > config.vocab_size:
        raise ValueError(
            f"{flag} {d}: the tokenizer has {size} tokens but the model's embedding table has {config.vocab_size} "
            f"rows; it belongs to another model. Received: vocab size {size}"
        )
    return d


def _read(src: Path, fmt: str, given: _Given) -> F.Weights:
    full = given.config

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
        if full is None:
            raise _needs_config(src, fmt, hf=given.hf is not None)
        w = F.Weights(full, F.read_keras_h5(src, full, src, expect_for(full)))
    if w.config is not None and given.hf is not None:
        raise ValueError(
            f"{src} carries its own config; {given.hf_from.split()[0]} is for tensor-only sources "
            f"(.pt, foreign .safetensors). Drop {given.hf_from.split()[0]}. Received: {given.hf_from}"
        )
    if w.config is None:
        if full is None and given.hf is None:
            raise _needs_config(src, fmt)
        shapes = {k: v.shape for k, v in w.tensors.items()}
        if full is None:
            full = _config_from_hf(given, shapes, src)
            if given.mask_padding is None:
                w.notes.append(SEED_POOLING_NOTE)
        w.config = full
        strict_check(shapes, full, what=str(src))
    elif full is not None and full != w.config:
        diffs = [
            f"{k} (--config {getattr(full, k)!r}, {src.name} {getattr(w.config, k)!r})"
            for k in (f.name for f in fields(BertCnnConfig))
            if getattr(full, k) != getattr(w.config, k)
        ]
        raise ValueError(
            f"--config disagrees with the config stored in {src}: {'; '.join(diffs)}. "
            f"Drop --config (the file carries its own) or pass the matching one. Received: {len(diffs)} differing keys"
        )
    elif fmt == F.SAFETENSORS:
        strict_check({k: v.shape for k, v in w.tensors.items()}, w.config, what=str(src))
    return w


def _config_from_hf(given: _Given, shapes: Mapping[str, tuple], src: Path) -> BertCnnConfig:
    """The BERT part from the Hugging Face config, the head (widths, filters, labels, hidden) from the tensors."""
    read = read_fields(shapes)
    missing = [f for f in HEAD_FIELDS if f not in read]
    if missing:
        raise ValueError(
            f"{src}: the CNN head cannot be read off the tensors ({', '.join(missing)} not found); expected the seed "
            "class's convs.{j}.weight/bias and fc.weight/bias. Received: "
            f"{len(shapes)} tensors, {sum(not k.startswith('bert.') for k in shapes)} outside bert.*"
        )
    head = {f: read[f][0] for f in HEAD_FIELDS}
    mask = False if given.mask_padding is None else given.mask_padding
    try:
        return BertCnnConfig.from_hf_config(given.hf, **head, mask_padding=mask)
    except ValueError as e:
        raise ValueError(f"{given.hf_from}: {str(e).splitlines()[0]}") from None


def _needs_config(src: Path, fmt: str, hf: bool = False) -> ValueError:
    if hf:
        return ValueError(
            f"{src} is a {fmt} file: reading it needs the full bertcnn config.json, not a BERT config; "
            "--backbone and a Hugging Face --config work for .pt and foreign .safetensors. Received: no bertcnn config"
        )
    return ValueError(
        f"{src} is a {fmt} file, which carries no model config; pass --config path/to/config.json "
        "(the config.json of the checkpoint these weights belong to), or, for a model trained with the seeds' "
        "class, --backbone HF_BERT_DIR (the BERT it was fine-tuned from). Received: no --config"
    )


def strict_check(shapes: Mapping[str, tuple], config: BertCnnConfig, *, what: str) -> None:
    """The weight-table check, led by the config fields the tensors contradict, when that can be told."""
    try:
        check_tensors({k: tuple(v) for k, v in shapes.items()}, expected_shapes(config), what=what)
    except PortError as e:
        hints = config_disagreements(shapes, config)
        if hints:
            summary, *detail = str(e).splitlines()
            raise PortError(
                "\n".join(
                    [
                        f"{what}: config disagrees with the tensors: {'; '.join(hints)}; pass the config the weights "
                        f"were trained with. Received: {len(hints)} differing fields",
                        "  " + summary,
                        *detail,
                    ]
                )
            ) from None
        raise


def read_fields(shapes: Mapping[str, tuple]) -> dict[str, tuple[object, str]]:
    """Config fields readable off tensor shapes: field -> (value, the tensor it was read from)."""
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
    return seen


def config_disagreements(shapes: Mapping[str, tuple], config: BertCnnConfig) -> list[str]:
    """Config fields read back from tensor shapes that differ from `config` (e.g. num_filters, layers)."""
    return [
        f"{field}: config {getattr(config, field)!r}, tensors {value!r} ({name})"
        for field, (value, name) in read_fields(shapes).items()
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
