"""Sharded safetensors, as Hugging Face lays them out: `model-0000i-of-0000n.safetensors` + an index.

`save_pretrained(max_shard_size=...)` writes them; every reader of a checkpoint directory takes
them (`parity.io.checkpoint.read_dir`), and so does `transformers`' `from_pretrained`. The index is
`{"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}`. Shards are read
as untrusted data like any safetensors file: each header is checked against its file, the index
must name exactly the tensors the shards hold, and a shard name is a plain file name in the folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from parity.io.formats import SAFETENSORS, Weights, bad
from parity.io.safetensors import read_safetensors, write_safetensors

INDEX_NAME = "model.safetensors.index.json"
SHARD_PATTERN = "model-*-of-*.safetensors"
_SHARD = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
# Hugging Face's units for max_shard_size: decimal (KB, MB, GB) and binary (KiB, MiB, GiB).
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)\s*$", re.IGNORECASE)


def shard_bytes(size: int | str) -> int:
    """`max_shard_size` in bytes: an int, or a string such as "5GB", "200MB", "1GiB" (Hugging Face's rule)."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    m = _SIZE.match(size) if isinstance(size, str) else None
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(
            'max_shard_size must be a positive number of bytes or a size such as "5GB", "200MB" or "1GiB". '
            f"Received: {size!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def plan_shards(ordered: Sequence[tuple[str, np.ndarray]], limit: int) -> list[list[tuple[str, np.ndarray]]]:
    """Tensors in order, cut into shards of at most `limit` bytes (a tensor larger than that alone), as HF does."""
    shards: list[list[tuple[str, np.ndarray]]] = [[]]
    size = 0
    for name, a in ordered:
        if shards[-1] and size + a.nbytes > limit:
            shards.append([])
            size = 0
        shards[-1].append((name, a))
        size += a.nbytes
    return shards


def write_shards(
    directory: Path,
    ordered: Sequence[tuple[str, np.ndarray]],
    limit: int,
    metadata: dict[str, str],
    single: str,
) -> list[str]:
    """`ordered` as one file named `single` when it fits in `limit`, else shards + the index; returns the names."""
    shards = plan_shards(ordered, limit)
    if len(shards) == 1:
        write_safetensors(directory / single, ordered, metadata)
        return [single]
    names = [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    weight_map = {}
    for name, shard in zip(names, shards, strict=True):
        write_safetensors(directory / name, shard, metadata)
        weight_map.update({t: name for t, _ in shard})
    total = sum(int(a.nbytes) for _, a in ordered)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return [*names, INDEX_NAME]


def read_shards(index: Path, expect: Callable[[Mapping[str, tuple]], None] | None = None) -> Weights:
    """The tensors of every shard an index names, memory-mapped; names and shapes vetted before any data is used."""
    from parity.io.files import read_json

    raw = read_json(index, what="a sharded checkpoint's index (model.safetensors.index.json)")
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise bad(index, "no `weight_map` of tensor names to shard files", '{"weight_map": {"name": "file"}}')
    files = sorted(set(weight_map.values()))
    outside = [f for f in files if not _SHARD.match(f)]
    if outside:
        raise bad(index, f"it names shard files {outside[:3]}", "shards named model-0000i-of-0000n.safetensors")
    missing = [f for f in files if not (index.parent / f).is_file()]
    if missing:
        raise bad(index, f"shards {missing[:3]} are missing", "every shard the index names, beside it")
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        w = read_safetensors(index.parent / f)
        listed = sorted(k for k, v in weight_map.items() if v == f)
        if sorted(w.tensors) != listed:
            raise bad(index.parent / f, "its tensors are not the ones the index puts in it", f"exactly {listed[:3]}...")
        tensors.update(w.tensors)
    if expect is not None:
        expect({k: tuple(v.shape) for k, v in tensors.items()})
    return Weights(None, tensors, format=SAFETENSORS, weights_file=index)
