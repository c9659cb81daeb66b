"""Keras files (`.keras` archives, `.weights.h5`) read and written as data, never deserialised.

Keras decides where each variable lands in its h5 file. Reading uses that layout written
down (`h5_datasets`: Keras 3's naming of this model's containers and variables), so reading
a Keras file needs h5py but not Keras, and `predict --framework torch` on a `.keras` file
never starts TensorFlow; the tests check it against Keras itself (the probe). Writing a
Keras file needs the full template Keras makes (group attributes, the archive's config and
metadata), learned by the Keras build's probe (`bertcnn_tf.h5_layout.keras_template`) and
passed in as `template_of`. Datasets map to variables by name, never by position.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.io.files import MAX_JSON_BYTES
from parity.io.formats import (
    FLOAT_DTYPES,
    KERAS,
    REGISTERED_NAME,
    Weights,
    bad,
    config_from,
    dtype_name,
    first_line,
    is_zip,
    np_dtype,
    read_member,
)
from parity.jsonfile import parse_json
from parity.layout import rows


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


TemplateOf = Callable[[BertCnnConfig], KerasTemplate]  # config -> its h5 layout (the Keras build's probe)


def structure(config: BertCnnConfig) -> BertCnnConfig:
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


def keras_layout(config: BertCnnConfig, template_of: TemplateOf | None) -> tuple[KerasTemplate, dict[str, tuple]]:
    """The template plus, per h5 dataset, the weight-table row it holds."""
    if template_of is None:
        raise ValueError(
            "Reading or writing Keras files (.keras, .weights.h5) needs the Keras build, which knows Keras' h5 "
            "layout; install it with `pip install 'bertcnn[tf]'`. Received: no Keras layout"
        )
    t = template_of(config)
    by_path = {r.keras_path: r for r in rows(config)}
    return t, {ds: by_path[kp] for ds, kp in t.datasets.items()}


def write_keras_h5(
    target,
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    progress: Callable[[int], None],
    template_of: TemplateOf | None,
) -> None:
    """Write Keras' h5 layout directly: each tensor transposed once, straight into its dataset."""
    Path(target).write_bytes(_h5_image(config, tensors, progress, template_of))


def _h5_image(config, tensors, progress, template_of) -> bytes:
    """The h5 file, built in memory: HDF5 never writes the disk itself, so a full disk is Python's OSError
    (HDF5 on ENOSPC raises RuntimeError and can crash the process when its objects are collected)."""
    import h5py

    template, table = keras_layout(config, template_of)
    # driver="core" without a backing store: the file lives in memory only; the name is never created.
    with h5py.File(f"bertcnn-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False) as f:
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
        f.flush()
        return f.id.get_file_image()


# Keras 3 saves a layer's variables as `<layer>/vars/<index>` in creation order, and a list of layers
# as `<list>/items/<snake_case(class)>[_<n>]`; the encoder's sub-layers under their Python attribute names.
_VAR_INDEX = {"kernel": 0, "gamma": 0, "embeddings": 0, "bias": 1, "beta": 1}
_ENCODER_PARTS = (  # keras path inside layer {i} -> h5 path inside its item
    ("attention/self/", "attention/self_attention/"),
    ("attention/output/", "attention/self_output/"),
    ("intermediate/", "intermediate/"),
    ("output/", "layer_output/"),
)


def _item(class_name: str, i: int) -> str:
    return class_name if i == 0 else f"{class_name}_{i}"


def _h5_path(keras_path: str) -> str:
    """The h5 dataset of one weight-table Keras variable path."""
    *layer, var = keras_path.split("/")
    where = "/".join(layer)
    if where.startswith("bert/encoder/layer/"):
        i, inner = where.removeprefix("bert/encoder/layer/").split("/", 1)
        inner += "/"
        for ours, theirs in _ENCODER_PARTS:
            if inner.startswith(ours):
                inner = theirs + inner.removeprefix(ours)
                break
        where = f"bert/encoder/layer/items/{_item('bert_layer', int(i))}/{inner.rstrip('/')}"
    elif where.startswith("convs/"):
        where = f"convs/items/{_item('conv1d', int(where.removeprefix('convs/')))}"
    return f"{where}/vars/{_VAR_INDEX[var]}"


def h5_datasets(config: BertCnnConfig) -> dict[str, str]:
    """h5 dataset path -> weight-table Keras path, as Keras 3 lays out `bertcnn_tf.BertCNN` for `config`."""
    return {_h5_path(r.keras_path): r.keras_path for r in rows(config)}


def _check_storage(found: Mapping[str, object], table: Mapping[str, object], where: Path, size: int) -> None:
    """Every dataset to be read holds its bytes, in the file: what a dataset declares is allocated before it is read.

    HDF5 returns its fill value for storage that was never written, so a small file can declare gigabytes;
    chunked (compressed) data can inflate past any bound, and external or virtual storage reads other files.
    Keras writes each variable as one contiguous, uncompressed dataset, and only that is read.
    """
    import h5py

    total = 0
    for ds in table:
        d = found[ds]
        plist = d.id.get_create_plist()
        layout, external = plist.get_layout(), plist.get_external_count()
        declared, stored = int(np.prod(d.shape or (), dtype=object)) * d.dtype.itemsize, d.id.get_storage_size()
        if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT) or external or plist.get_nfilters():
            kind = "external" if external else {h5py.h5d.CHUNKED: "chunked"}.get(layout, f"layout {layout}")
            raise bad(where, f"dataset {ds} uses {kind} storage", "contiguous, uncompressed datasets, as Keras writes")
        if stored != declared:
            raise bad(
                where,
                f"dataset {ds} declares {declared} bytes of data but stores {stored} (never written, or damaged)",
                "every weight written whole, as Keras writes it",
            )
        total += stored
    if total > size:
        raise bad(where, f"its datasets claim {total} bytes but the file has {size}", "a complete Keras weights file")


def read_keras_h5(
    source,
    config: BertCnnConfig,
    where: Path,
    expect: Callable[[Mapping[str, tuple]], None],
    size: int | None = None,
) -> dict[str, np.ndarray]:
    """Strict read: every dataset Keras would write is present, nothing else, shapes and storage checked first.

    `size`: the bytes of `source` (a zip member's); read from the file when `source` is a path.
    """
    import h5py

    size = Path(source).stat().st_size if size is None else size

    by_path = {r.keras_path: r for r in rows(config)}
    table = {ds: by_path[kp] for ds, kp in h5_datasets(config).items()}
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
            _check_storage(found, table, where, size)
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
        first = first_line(e)
        raise bad(
            where,
            f"not a readable Keras weights file ({type(e).__name__}: {first})",
            "an HDF5 file written by Keras model.save_weights or `bertcnn port`",
        ) from None


def write_keras_archive(
    path: Path,
    config: BertCnnConfig,
    dtype: str,
    tensors: Mapping[str, np.ndarray],
    progress: Callable[[int], None],
    template_of: TemplateOf | None,
) -> None:
    """A .keras zip exactly as `model.save` lays it out; the h5 is streamed in, never held whole."""
    template, _ = keras_layout(config, template_of)
    cfg = json.loads(json.dumps(template.archive_config))
    cfg["config"]["config"] = config.to_dict()
    cfg["config"]["dtype"] = dtype
    image = _h5_image(config, tensors, progress, template_of)
    with zipfile.ZipFile(path, "w") as zf:  # stored, like Keras: the h5 is read in place
        zf.writestr("metadata.json", template.archive_metadata)
        zf.writestr("config.json", json.dumps(cfg))
        with zf.open("model.weights.h5", "w", force_zip64=True) as dst:
            for i in range(0, len(image), 16 * 1024 * 1024):
                dst.write(image[i : i + 16 * 1024 * 1024])


def read_keras_archive(path: Path, expect_for: Callable[[BertCnnConfig], Callable]) -> Weights:
    """Parse the archive as data: config.json must name our registered class; nothing is deserialised."""
    if not is_zip(path):
        raise bad(path, "not a zip archive", "a .keras archive (zip with config.json and model.weights.h5)")
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            for need in ("config.json", "model.weights.h5"):
                if need not in infos:
                    have = sorted(infos)[:6]
                    raise bad(path, f"archive has no {need} (has {have})", "a .keras archive from model.save")
            raw = read_member(zf, infos["config.json"], MAX_JSON_BYTES, path)
            wi = infos["model.weights.h5"]
            if wi.compress_type != zipfile.ZIP_STORED or wi.file_size > size:
                raise bad(
                    path,
                    "model.weights.h5 is compressed or larger than the archive",
                    "an uncompressed h5 member, as Keras writes it",
                )
            cfg = parse_json(raw, f"{path} (config.json)", "a Keras model config")
            inner = cfg.get("config") if isinstance(cfg, dict) else None
            if not isinstance(inner, dict) or cfg.get("registered_name") != REGISTERED_NAME:
                got = cfg.get("registered_name", cfg.get("class_name")) if isinstance(cfg, dict) else type(cfg).__name__
                raise bad(
                    path,
                    f"archive holds {got!r}, not a bertcnn model",
                    f"a model saved from bertcnn_tf.BertCNN ({REGISTERED_NAME})",
                )
            config = config_from(inner.get("config"), f"{path} (config.json: config.config)")
            dtype = inner.get("dtype")
            if dtype not in FLOAT_DTYPES:
                raise bad(path, f"model dtype {dtype!r}", f"one of {FLOAT_DTYPES}")
            with zf.open("model.weights.h5") as member:
                tensors = read_keras_h5(member, config, path, expect_for(config), wi.file_size)
            stored = {dtype_name(t) for t in tensors.values()}
            if stored != {dtype}:
                raise bad(
                    path,
                    f"config says dtype {dtype!r} but the weights are {sorted(stored)}",
                    "weights in the model's dtype",
                )
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as e:
        raise bad(path, f"damaged zip archive ({type(e).__name__}: {str(e)[:200]})", "a .keras archive") from None
    return Weights(config, tensors, format=KERAS, weights_file=path)
