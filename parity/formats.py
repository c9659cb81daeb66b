"""Readers and writers for every weight format `bertcnn port` speaks.

All of them meet in one in-memory form: canonical names -> numpy arrays in torch
layout (`parity.layout`). Readers treat files as untrusted: sizes are checked
against the file before anything is read, pickles are only opened with
`torch.load(weights_only=True)`, Keras archives are parsed as data (no Keras
deserialisation at all), and every failure becomes one ValueError line.
Writers stream tensor by tensor into a path the caller has staged.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.checkpoint import CONFIG_NAME, TOKENIZER_FILES, WEIGHTS_NAME
from parity.config import BertCnnConfig
from parity.layout import rows

DIR, SAFETENSORS, TORCH, KERAS, KERAS_WEIGHTS = "checkpoint directory", "safetensors", "torch", "keras", "keras weights"
FORMAT_HELP = (
    "a checkpoint directory (config.json + model.safetensors), *.safetensors, *.pt / *.pth / *.bin "
    "(PyTorch state_dict), *.keras (Keras archive) or *.weights.h5 (Keras weights)"
)
# Formats whose files carry the config themselves; the others need --config.
CARRIES_CONFIG = {DIR: True, SAFETENSORS: True, TORCH: False, KERAS: True, KERAS_WEIGHTS: False}

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
MAX_JSON_BYTES = 16 * 1024 * 1024  # config.json / metadata.json inside a .keras archive
CONFIG_METADATA_KEY = "bertcnn.config"  # a bare .safetensors we write carries its config here
REGISTERED_NAME = "bertcnn>BertCNN"

_HF_INT_BUFFERS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")

_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_ST_CODES = {v: k for k, v in _ST_DTYPES.items()}
FLOAT_DTYPES = tuple(_ST_CODES)


class FormatError(ValueError):
    """An unreadable or hostile input file; the message is one line."""


def _first_line(e: BaseException) -> str:
    """A library's error, cut to one line: user errors are reported on one stderr line."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def bad(path: str | os.PathLike, what: str, expected: str) -> FormatError:
    return FormatError(f"{path}: {what}; expected {expected}. Received: {str(path)!r}")


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover - ml_dtypes comes with torch/tensorflow installs
            raise ValueError(
                "bfloat16 tensors need the ml_dtypes package; `pip install ml_dtypes`. Received: bfloat16"
            ) from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def dtype_name(a: np.ndarray) -> str:
    return "bfloat16" if a.dtype.name == "bfloat16" else a.dtype.name


def format_of(path: str | os.PathLike, *, for_output: bool = False) -> str:
    """The format a path names: by suffix for files; a directory has no suffix or ends with `/`.

    An unknown suffix is refused rather than taken for a directory name, so a typo
    (`model.kears`) or a format this tool does not write (`x.onnx`) never becomes a
    checkpoint folder of that name. `ckpt.v2/` (trailing slash) is a directory.
    """
    raw = os.fspath(path)
    p = Path(raw)
    if raw.endswith(("/", os.sep)):
        return DIR
    name = p.name.lower()
    if name.endswith(".weights.h5"):
        return KERAS_WEIGHTS
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return SAFETENSORS
    if suffix in (".pt", ".pth", ".bin"):
        return TORCH
    if suffix == ".keras":
        return KERAS
    if suffix in (".h5", ".hdf5"):
        raise ValueError(
            f"Plain .h5 files (legacy Keras 2 models) are not supported; Keras weights must end in .weights.h5. "
            f"Received: {str(p)!r}"
        )
    if suffix == ".onnx":
        raise ValueError(
            "ONNX is a serving format, not a weight format `bertcnn port` writes; make ONNX with `bertcnn export`. "
            f"Received: {raw!r}"
        )
    if p.is_dir():
        return DIR  # an existing folder, whatever its name
    if not suffix:
        if p.is_file():
            raise ValueError(f"Unknown weight format for {raw!r}; expected {FORMAT_HELP}. Received: {raw!r}")
        return DIR
    what = "destination" if for_output else "source"
    raise ValueError(
        f"Unknown weight format suffix {suffix!r} for the {what}; expected {FORMAT_HELP}, "
        f"and a directory name without a suffix (or ending in '/', e.g. {p.name}/). Received: {raw!r}"
    )


@dataclass
class Weights:
    """What a reader found: canonical torch-layout tensors and, when the file has one, its config."""

    config: BertCnnConfig | None
    tensors: dict[str, np.ndarray]
    tokenizer_dir: Path | None = None
    notes: list[str] = field(default_factory=list)  # what a reader left out, for the user


# -- safetensors ---------------------------------------------------------------------------------
def read_safetensors_header(path: Path) -> tuple[dict, dict[str, dict], int]:
    """Validate a safetensors header against the file; returns (metadata, entries, data offset).

    Every claimed size is checked against the real file size before anything is
    mapped, so a hostile header cannot make us allocate or read past the end.
    """
    size = path.stat().st_size
    if size < 8:
        raise bad(path, f"file of {size} bytes is too short to be safetensors", "an 8-byte header length + JSON")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n == 0 or n > min(size - 8, MAX_HEADER_BYTES):
            raise bad(
                path,
                f"header claims {n} bytes but the file has {size - 8} after the length",
                "a safetensors file (8-byte little-endian header length, JSON header, tensor data)",
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(path, f"header is not valid JSON ({type(e).__name__})", "a safetensors JSON header") from None
    if not isinstance(header, dict):
        raise bad(path, "header is not a JSON object", "a safetensors JSON header")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad(path, "__metadata__ is not a string-to-string map", "safetensors metadata")
    data_len = size - 8 - n
    spans = []
    for name, e in header.items():
        ok = isinstance(e, dict) and set(e) >= {"dtype", "shape", "data_offsets"}
        shape, offs = (e.get("shape"), e.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        ok = ok and isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)
        if not ok:
            raise bad(path, f"tensor {name!r} has a malformed entry", "{dtype, shape, data_offsets}")
        if e["dtype"] not in _ST_DTYPES:
            raise bad(path, f"tensor {name!r} has dtype {e['dtype']!r}", f"a floating dtype in {sorted(_ST_DTYPES)}")
        begin, end = offs
        nbytes = int(np.prod(shape, dtype=object)) * np_dtype(_ST_DTYPES[e["dtype"]]).itemsize
        if not 0 <= begin <= end <= data_len or end - begin != nbytes:
            raise bad(
                path,
                f"tensor {name!r} claims bytes [{begin}, {end}) for shape {shape} "
                f"but the data section has {data_len} bytes",
                "offsets inside the file that match the shape",
            )
        spans.append((begin, end))
    spans.sort()
    covered = 0
    for begin, end in spans:
        if begin != covered:
            raise bad(path, "tensor data overlaps or leaves gaps", "contiguous, non-overlapping tensor data")
        covered = end
    if covered != data_len:
        raise bad(path, f"{data_len - covered} trailing bytes after the tensor data", "a complete safetensors file")
    return metadata, header, 8 + n


def read_safetensors(path: Path, expect: Callable[[Mapping[str, tuple]], None] | None = None) -> Weights:
    """Memory-map the tensors (zero copy); `expect` vets names and shapes before any data is touched."""
    metadata, entries, offset = read_safetensors_header(path)
    config = None
    if CONFIG_METADATA_KEY in metadata:
        try:
            config = BertCnnConfig.from_dict(json.loads(metadata[CONFIG_METADATA_KEY]))
        except (ValueError, TypeError) as e:
            raise bad(path, f"embedded config is invalid ({str(e).splitlines()[0]})", "a BertCnnConfig") from None
    if expect is not None:
        expect({k: tuple(e["shape"]) for k, e in entries.items()})
    data_len = path.stat().st_size - offset
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(data_len,)) if data_len else None
    tensors = {}
    for name, e in entries.items():
        begin, end = e["data_offsets"]
        dt = np_dtype(_ST_DTYPES[e["dtype"]])
        buf = mm[begin:end] if mm is not None else np.empty(0, np.uint8)
        tensors[name] = buf.view(dt).reshape(e["shape"])
    return Weights(config, tensors)


def write_safetensors(
    path: Path,
    tensors: Iterable[tuple[str, np.ndarray]],
    metadata: dict[str, str],
    progress: Callable[[int], None] = lambda n: None,
) -> None:
    """Stream tensors into a safetensors file: header first, then each tensor's bytes in turn."""
    items = list(tensors)
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, a in items:
        nbytes = a.size * a.dtype.itemsize
        span = [offset, offset + nbytes]
        header[name] = {"dtype": _ST_CODES[dtype_name(a)], "shape": list(a.shape), "data_offsets": span}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # keep tensor data 8-byte aligned, as safetensors does
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for _, a in items:
            f.write(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
            progress(a.nbytes)


# -- canonical directory -------------------------------------------------------------------------
def read_dir(path: Path, expect_for: Callable[[BertCnnConfig], Callable]) -> Weights:
    if not path.is_dir():
        raise FileNotFoundError(f"Source not found; expected {FORMAT_HELP}. Received: {str(path)!r}")
    present = sorted(p.name for p in path.iterdir())
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: {CONFIG_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(make one with `bertcnn init`). Received: {present}"
        )
    if not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: {WEIGHTS_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}. "
            f"Received: {present}"
        )
    cfg = path / CONFIG_NAME
    if cfg.stat().st_size > MAX_JSON_BYTES:
        raise bad(cfg, "config.json is implausibly large", "a small JSON config")
    try:
        hf = json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(cfg, f"not valid JSON ({type(e).__name__})", "a BertCnnConfig config.json") from None
    if isinstance(hf, dict) and hf.get("model_type") == "bert":
        raise ValueError(
            f"{path} is a Hugging Face BERT, not a bertcnn checkpoint; import it as a backbone with "
            f"`bertcnn init DIR --backbone {path}`. Received: model_type='bert'"
        )
    config = BertCnnConfig.from_dict(hf)
    w = read_safetensors(path / WEIGHTS_NAME, expect_for(config))
    w.config = config
    if any((path / n).is_file() for n in TOKENIZER_FILES):
        w.tokenizer_dir = path
    return w


# -- PyTorch state_dict (pickle) -----------------------------------------------------------------
def read_torch(path: Path) -> Weights:
    """`torch.load(weights_only=True)` only: a pickle that names any code is refused unrun."""
    import torch

    size = path.stat().st_size
    if size == 0:
        raise bad(path, "the file is empty", "a PyTorch state_dict written by torch.save")
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        # torch's zip format stores records uncompressed; a record larger than the file is a lie.
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise bad(path, f"damaged zip archive ({e})", "a PyTorch state_dict written by torch.save") from None
        if any(i.compress_type != zipfile.ZIP_STORED or i.file_size > size for i in infos):
            raise bad(path, "archive has compressed or oversized records", "torch.save's uncompressed zip format")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as e:  # untrusted bytes: any failure inside the unpickler is a bad file
        first = _first_line(e)
        raise bad(
            path,
            f"refused by torch.load(weights_only=True): {first}",
            "a plain state_dict (tensors only; pickles that reference code are never run)",
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        hint = f"dict with keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else type(obj).__name__
        raise bad(
            path,
            f"holds a {hint}, not a flat name->tensor state_dict",
            "torch.save(model.state_dict()) (save the state_dict itself, not a wrapper)",
        )
    tensors, notes = {}, []
    for k, t in obj.items():
        if k in _HF_INT_BUFFERS and not t.is_floating_point():
            # transformers < 4.31 saved these index buffers in every BertModel state_dict; not weights.
            notes.append(f"{k} (an index buffer older transformers saved, not a weight) was left out")
            continue
        if t.dtype not in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            raise bad(path, f"tensor {k!r} has dtype {t.dtype}", "floating tensors")
        t = t.detach().contiguous()
        if t.dtype == torch.bfloat16:
            tensors[k] = t.view(torch.int16).numpy().view(np_dtype("bfloat16"))
        else:
            tensors[k] = t.numpy()
    return Weights(None, tensors, notes=notes)


def write_torch(path: Path, tensors: Iterable[tuple[str, np.ndarray]], progress: Callable[[int], None]) -> None:
    import torch

    out = {}
    with warnings.catch_warnings():
        # Memory-mapped sources are read-only arrays; torch only reads them here, to save.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for name, a in tensors:
            a = np.ascontiguousarray(a)
            if dtype_name(a) == "bfloat16":
                out[name] = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
            else:
                out[name] = torch.from_numpy(a)
            progress(a.nbytes)
    torch.save(out, path)


# -- Keras (.keras archive, .weights.h5) ---------------------------------------------------------
@dataclass(frozen=True)
class KerasTemplate:
    """How Keras lays out this model's weights in h5, learned from Keras itself.

    A tiny model of the same structure is saved with every variable filled with its
    own index; reading that file back maps each h5 dataset to its variable by value,
    never by position. Sizes do not change the layout, so the probe stays small.
    """

    groups: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (group path, attrs)
    datasets: dict[str, str]  # h5 dataset path -> keras variable path (weight-table path)
    archive_config: dict  # the .keras config.json for the probe
    archive_metadata: bytes


def _structure(config: BertCnnConfig) -> BertCnnConfig:
    ks = config.kernel_sizes
    return BertCnnConfig(
        vocab_size=1,
        hidden_size=1,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=1,
        intermediate_size=1,
        max_position_embeddings=max(ks),
        type_vocab_size=1,
        kernel_sizes=ks,
        num_filters=1,
        num_labels=1,
        head_hidden_size=None if config.head_hidden_size is None else 1,
    )


@functools.lru_cache(maxsize=16)
def keras_template(structure: BertCnnConfig) -> KerasTemplate:
    import h5py

    from bertcnn_tf.model import BertCNN

    model = BertCNN(structure)
    prefix = model.name + "/"
    by_index = {}
    for i, v in enumerate(model.weights):
        v.assign(np.full(tuple(v.shape), i + 1, dtype="float32"))
        by_index[i + 1] = v.path.removeprefix(prefix)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "probe.keras"
        model.save(archive)
        with zipfile.ZipFile(archive) as zf:
            cfg = json.loads(zf.read("config.json"))
            meta = zf.read("metadata.json")
            h5bytes = zf.read("model.weights.h5")
    groups, datasets = [], {}
    with h5py.File(io.BytesIO(h5bytes), "r") as f:
        groups.append(("", tuple((k, str(v)) for k, v in f.attrs.items())))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = by_index[int(np.asarray(obj[()]).flat[0])]
            else:
                groups.append((name, tuple((k, str(v)) for k, v in obj.attrs.items())))

        f.visititems(visit)
    if sorted(datasets.values()) != sorted(by_index.values()):
        raise RuntimeError("Keras weight layout probe did not find every variable exactly once")
    return KerasTemplate(tuple(groups), datasets, cfg, meta)


def keras_layout(config: BertCnnConfig) -> tuple[KerasTemplate, dict[str, tuple]]:
    """The template plus, per h5 dataset, the weight-table row it holds."""
    t = keras_template(_structure(config))
    by_path = {r.keras_path: r for r in rows(config)}
    return t, {ds: by_path[kp] for ds, kp in t.datasets.items()}


def write_keras_h5(
    target, config: BertCnnConfig, tensors: Mapping[str, np.ndarray], progress: Callable[[int], None]
) -> None:
    """Write Keras' h5 layout directly: each tensor transposed once, straight into its dataset."""
    import h5py

    template, table = keras_layout(config)
    with h5py.File(target, "w") as f:
        for name, attrs in template.groups:
            g = f if name == "" else f.require_group(name)
            for k, v in attrs:
                g.attrs[k] = v
        for ds, row in table.items():
            a = np.ascontiguousarray(row.op.to_keras(tensors[row.torch_name]))
            d = f.create_dataset(ds, data=a)
            if dtype_name(a) == "bfloat16":
                d.attrs["dtype"] = "bfloat16"
            progress(a.nbytes)


def read_keras_h5(
    source, config: BertCnnConfig, where: Path, expect: Callable[[Mapping[str, tuple]], None]
) -> dict[str, np.ndarray]:
    """Strict read: every dataset Keras would write is present, nothing else, shapes checked before reading."""
    import h5py

    _, table = keras_layout(config)
    try:
        with h5py.File(source, "r") as f:
            found: dict[str, object] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    found[name] = obj

            f.visititems(visit)
            # Name and shape problems in torch terms, so the user sees the weight-table names.
            named = {table[ds].torch_name if ds in table else f"<keras h5> {ds}": ds for ds in found}
            shapes = {}
            for n, ds in named.items():
                shape = tuple(found[ds].shape) if found[ds].shape is not None else ()
                shapes[n] = table[ds].op.torch_shape(shape) if ds in table else shape
            expect(shapes)
            tensors = {}
            for ds, row in table.items():
                d = found[ds]
                if d.attrs.get("dtype") == "bfloat16" and d.dtype.kind == "V" and d.dtype.itemsize == 2:
                    a = d[()].view(np_dtype("bfloat16"))
                elif d.dtype.kind == "f" and d.dtype.itemsize in (2, 4, 8):
                    a = d[()]
                else:
                    raise bad(where, f"dataset {ds} has dtype {d.dtype}", "float16/32/64 or bfloat16 weights")
                tensors[row.torch_name] = np.ascontiguousarray(row.op.to_torch(a))
            return tensors
    except (ValueError, FileNotFoundError):
        raise
    except Exception as e:  # h5py/HDF5 errors on damaged input: OSError, KeyError, RuntimeError, TypeError
        first = _first_line(e)
        raise bad(
            where,
            f"not a readable Keras weights file ({type(e).__name__}: {first})",
            "an HDF5 file written by Keras model.save_weights or `bertcnn port`",
        ) from None


def write_keras_archive(
    path: Path, config: BertCnnConfig, dtype: str, tensors: Mapping[str, np.ndarray], progress: Callable[[int], None]
) -> None:
    """A .keras zip exactly as `model.save` lays it out; the h5 is streamed in, never held whole."""
    template, _ = keras_layout(config)
    cfg = json.loads(json.dumps(template.archive_config))
    cfg["config"]["config"] = config.to_dict()
    cfg["config"]["dtype"] = dtype
    h5_tmp = path.with_name(path.name + ".h5-part")
    try:
        write_keras_h5(h5_tmp, config, tensors, progress)
        with zipfile.ZipFile(path, "w") as zf:  # stored, like Keras: the h5 is read in place
            zf.writestr("metadata.json", template.archive_metadata)
            zf.writestr("config.json", json.dumps(cfg))
            with open(h5_tmp, "rb") as src, zf.open("model.weights.h5", "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 16 * 1024 * 1024)
    finally:
        h5_tmp.unlink(missing_ok=True)


def read_keras_archive(path: Path, expect_for: Callable[[BertCnnConfig], Callable]) -> Weights:
    """Parse the archive as data: config.json must name our registered class; nothing is deserialised."""
    if not zipfile.is_zipfile(path):
        raise bad(path, "not a zip archive", "a .keras archive (zip with config.json and model.weights.h5)")
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            for need in ("config.json", "model.weights.h5"):
                if need not in infos:
                    have = sorted(infos)[:6]
                    raise bad(path, f"archive has no {need} (has {have})", "a .keras archive from model.save")
            ci = infos["config.json"]
            if ci.file_size > MAX_JSON_BYTES:
                raise bad(path, "config.json is implausibly large", "a small model config")
            wi = infos["model.weights.h5"]
            if wi.compress_type != zipfile.ZIP_STORED or wi.file_size > size:
                raise bad(
                    path,
                    "model.weights.h5 is compressed or larger than the archive",
                    "an uncompressed h5 member, as Keras writes it",
                )
            try:
                cfg = json.loads(zf.read("config.json").decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise bad(path, f"config.json is not valid JSON ({type(e).__name__})", "a Keras model config") from None
            inner = cfg.get("config") if isinstance(cfg, dict) else None
            if not isinstance(inner, dict) or cfg.get("registered_name") != REGISTERED_NAME:
                got = cfg.get("registered_name", cfg.get("class_name")) if isinstance(cfg, dict) else type(cfg).__name__
                raise bad(
                    path,
                    f"archive holds {got!r}, not a bertcnn model",
                    f"a model saved from bertcnn_tf.BertCNN ({REGISTERED_NAME})",
                )
            config = BertCnnConfig.from_dict(inner.get("config"))
            dtype = inner.get("dtype")
            if dtype not in FLOAT_DTYPES:
                raise bad(path, f"model dtype {dtype!r}", f"one of {FLOAT_DTYPES}")
            with zf.open("model.weights.h5") as member:
                tensors = read_keras_h5(member, config, path, expect_for(config))
            stored = {dtype_name(t) for t in tensors.values()}
            if stored != {dtype}:
                raise bad(
                    path,
                    f"config says dtype {dtype!r} but the weights are {sorted(stored)}",
                    "weights in the model's dtype",
                )
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as e:
        raise bad(path, f"damaged zip archive ({type(e).__name__}: {str(e)[:200]})", "a .keras archive") from None
    return Weights(config, tensors)
