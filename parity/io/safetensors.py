"""safetensors, read as untrusted data and written by streaming; no library in between.

The header is validated against the real file size before anything is mapped, so a
hostile header cannot make us allocate or read past the end; tensors are then
memory-mapped (zero copy). A bare `.safetensors` written by `bertcnn port` carries
its config in the metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

import numpy as np

from parity.io.formats import (
    _ST_CODES,
    _ST_DTYPES,
    CONFIG_METADATA_KEY,
    MAX_HEADER_BYTES,
    SAFETENSORS,
    Weights,
    bad,
    config_from,
    dtype_name,
    np_dtype,
)
from parity.jsonfile import parse_json

# Integer tensors are index buffers, never weights: allowed only under names a caller lists.
_ST_INTS = {"I64": "int64", "I32": "int32"}


def _dtype_of(entry: dict, name: str, index_buffers: Collection[str]) -> str | None:
    if entry["dtype"] in _ST_DTYPES:
        return _ST_DTYPES[entry["dtype"]]
    return _ST_INTS.get(entry["dtype"]) if name in index_buffers else None


def read_safetensors_header(path: Path, index_buffers: Collection[str] = ()) -> tuple[dict, dict[str, dict], int]:
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
    header = parse_json(raw, path, "a safetensors file (its header is JSON)")
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
        dtype = _dtype_of(e, name, index_buffers)
        if dtype is None:
            raise bad(path, f"tensor {name!r} has dtype {e['dtype']!r}", f"a floating dtype in {sorted(_ST_DTYPES)}")
        begin, end = offs
        nbytes = int(np.prod(shape, dtype=object)) * np_dtype(dtype).itemsize
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


def read_safetensors(
    path: Path, expect: Callable[[Mapping[str, tuple]], None] | None = None, *, index_buffers: Collection[str] = ()
) -> Weights:
    """Memory-map the tensors (zero copy); `expect` vets names and shapes before any data is touched."""
    metadata, entries, offset = read_safetensors_header(path, index_buffers)
    config = None
    if CONFIG_METADATA_KEY in metadata:
        where = f"{path} (metadata {CONFIG_METADATA_KEY})"
        config = config_from(parse_json(metadata[CONFIG_METADATA_KEY], where, "a model config"), where)
    if expect is not None:
        expect({k: tuple(e["shape"]) for k, e in entries.items()})
    data_len = path.stat().st_size - offset
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(data_len,)) if data_len else None
    tensors = {}
    for name, e in entries.items():
        begin, end = e["data_offsets"]
        dt = np_dtype(_dtype_of(e, name, index_buffers))
        buf = mm[begin:end] if mm is not None else np.empty(0, np.uint8)
        tensors[name] = buf.view(dt).reshape(e["shape"])
    return Weights(config, tensors, format=SAFETENSORS, weights_file=path)


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
