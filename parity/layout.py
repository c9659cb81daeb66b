"""THE weight table: canonical (PyTorch state_dict) name <-> Keras variable path.

Canonical names are the PyTorch build's state_dict keys, which are the seed's
(`bert.*` from `transformers.BertModel`, `convs.{j}.*`, `fc.*`). Keras paths are
`Variable.path` below the model, i.e. the Keras layer names, which equal the torch
attribute names. Each row carries an op and its inverse; both port directions are
driven by these rows, and every port is strict (all used, all filled, shapes first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from parity.config import BertCnnConfig


@dataclass(frozen=True)
class Op:
    """A layout change torch -> keras as an axis permutation; its inverse goes back."""

    name: str
    perm: tuple[int, ...] | None  # keras axis i = torch axis perm[i]; None = identity

    @property
    def inverse(self) -> tuple[int, ...] | None:
        return None if self.perm is None else tuple(int(i) for i in np.argsort(self.perm))

    def to_keras(self, a: np.ndarray) -> np.ndarray:
        return a if self.perm is None else a.transpose(self.perm)

    def to_torch(self, a: np.ndarray) -> np.ndarray:
        return a if self.perm is None else a.transpose(self.inverse)

    def keras_shape(self, torch_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(torch_shape) if self.perm is None else tuple(torch_shape[i] for i in self.perm)

    def torch_shape(self, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(keras_shape) if self.perm is None else tuple(keras_shape[i] for i in self.inverse)


IDENTITY = Op("identity", None)
TRANSPOSE = Op("transpose", (1, 0))  # Dense: torch (out, in) <-> keras (in, out)
CONV1D = Op("conv1d", (2, 1, 0))  # Conv1D: torch (out, in, k) <-> keras (k, in, out)

# (torch name, keras path, op). `{i}` = encoder layer, `{j}` = conv branch.
_EMBEDDINGS = [
    ("bert.embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings/embeddings", IDENTITY),
    ("bert.embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings/embeddings", IDENTITY),
    ("bert.embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings/embeddings", IDENTITY),
    ("bert.embeddings.LayerNorm.weight", "bert/embeddings/LayerNorm/gamma", IDENTITY),
    ("bert.embeddings.LayerNorm.bias", "bert/embeddings/LayerNorm/beta", IDENTITY),
]


def _dense(torch_prefix: str, keras_prefix: str) -> list[tuple[str, str, Op]]:
    return [
        (f"{torch_prefix}.weight", f"{keras_prefix}/kernel", TRANSPOSE),
        (f"{torch_prefix}.bias", f"{keras_prefix}/bias", IDENTITY),
    ]


def _layer_norm(torch_prefix: str, keras_prefix: str) -> list[tuple[str, str, Op]]:
    return [
        (f"{torch_prefix}.weight", f"{keras_prefix}/gamma", IDENTITY),
        (f"{torch_prefix}.bias", f"{keras_prefix}/beta", IDENTITY),
    ]


_T, _K = "bert.encoder.layer.{i}", "bert/encoder/layer/{i}"
_ENCODER_LAYER = [
    *_dense(f"{_T}.attention.self.query", f"{_K}/attention/self/query"),
    *_dense(f"{_T}.attention.self.key", f"{_K}/attention/self/key"),
    *_dense(f"{_T}.attention.self.value", f"{_K}/attention/self/value"),
    *_dense(f"{_T}.attention.output.dense", f"{_K}/attention/output/dense"),
    *_layer_norm(f"{_T}.attention.output.LayerNorm", f"{_K}/attention/output/LayerNorm"),
    *_dense(f"{_T}.intermediate.dense", f"{_K}/intermediate/dense"),
    *_dense(f"{_T}.output.dense", f"{_K}/output/dense"),
    *_layer_norm(f"{_T}.output.LayerNorm", f"{_K}/output/LayerNorm"),
]
_POOLER = _dense("bert.pooler.dense", "bert/pooler/dense")
_CONV = [
    ("convs.{j}.weight", "convs/{j}/kernel", CONV1D),
    ("convs.{j}.bias", "convs/{j}/bias", IDENTITY),
]
_HIDDEN = _dense("hidden", "hidden")
_FC = _dense("fc", "fc")


@dataclass(frozen=True)
class Row:
    torch_name: str
    keras_path: str
    op: Op
    torch_shape: tuple[int, ...]

    @property
    def keras_shape(self) -> tuple[int, ...]:
        return self.op.keras_shape(self.torch_shape)

    @property
    def decayed(self) -> bool:
        return is_decayed(self.torch_name)


def is_decayed(torch_name: str) -> bool:
    """Whether AdamW's decoupled weight decay applies to this canonical tensor.

    Hugging Face Trainer's rule (`Trainer.get_decay_parameter_names`): no decay on biases
    nor on LayerNorm weights. Both trainers take their no-decay set from here (torch's
    param groups, the Keras optimizer's per-variable predicate), so the two cannot
    disagree; Keras' own `exclude_from_weight_decay` matches short variable names
    (`gamma`, `bias`) instead and is not used.
    """
    return not (torch_name.endswith(".bias") or ".LayerNorm." in torch_name)


def rows(config: BertCnnConfig) -> list[Row]:
    """Every tensor of the model, in forward order, with its canonical (torch) shape."""
    c = config
    h, inter = c.hidden_size, c.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "bert.embeddings.word_embeddings.weight": (c.vocab_size, h),
        "bert.embeddings.position_embeddings.weight": (c.max_position_embeddings, h),
        "bert.embeddings.token_type_embeddings.weight": (c.type_vocab_size, h),
        "bert.embeddings.LayerNorm.weight": (h,),
        "bert.embeddings.LayerNorm.bias": (h,),
    }
    out = [Row(t, k, op, shapes[t]) for t, k, op in _EMBEDDINGS]
    layer_shapes = {
        "query.weight": (h, h), "query.bias": (h,),
        "key.weight": (h, h), "key.bias": (h,),
        "value.weight": (h, h), "value.bias": (h,),
        "attention.output.dense.weight": (h, h), "attention.output.dense.bias": (h,),
        "attention.output.LayerNorm.weight": (h,), "attention.output.LayerNorm.bias": (h,),
        "intermediate.dense.weight": (inter, h), "intermediate.dense.bias": (inter,),
        "output.dense.weight": (h, inter), "output.dense.bias": (h,),
        "output.LayerNorm.weight": (h,), "output.LayerNorm.bias": (h,),
    }  # fmt: skip
    for i in range(c.num_hidden_layers):
        for t, k, op in _ENCODER_LAYER:
            name = t.format(i=i)
            suffix = next(s for s in layer_shapes if name.endswith(s))
            out.append(Row(name, k.format(i=i), op, layer_shapes[suffix]))
    out += [Row(t, k, op, s) for (t, k, op), s in zip(_POOLER, [(h, h), (h,)], strict=True)]
    for j, width in enumerate(c.kernel_sizes):
        conv_shapes = [(c.num_filters, h, width), (c.num_filters,)]
        out += [Row(t.format(j=j), k.format(j=j), op, s) for (t, k, op), s in zip(_CONV, conv_shapes, strict=True)]
    fc_in = c.pooled_size
    if c.head_hidden_size is not None:
        hh = c.head_hidden_size
        out += [Row(t, k, op, s) for (t, k, op), s in zip(_HIDDEN, [(hh, fc_in), (hh,)], strict=True)]
        fc_in = hh
    out += [Row(t, k, op, s) for (t, k, op), s in zip(_FC, [(c.num_labels, fc_in), (c.num_labels,)], strict=True)]
    return out


# Far past any BERT-CNN (BERT-large has 340 million parameters and 24 layers): a config beyond these is a typo
# or a hostile file, refused before the weight table is built or anything is allocated for it.
MAX_PARAMETERS = 2_000_000_000
MAX_TENSORS = 10_000


def size_of(config: BertCnnConfig) -> tuple[int, int]:
    """(tensors, parameters) of the model `config` describes, by arithmetic: `rows` would build every row."""
    c = config
    h, inter, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size + 2) * h
    layer = 4 * (h * h + h) + 2 * (inter * h) + inter + h + 4 * h
    convs = sum(c.num_filters * h * k + c.num_filters for k in c.kernel_sizes)
    fc_in, head, head_tensors = c.pooled_size, 0, 0
    if c.head_hidden_size is not None:
        head, head_tensors, fc_in = (fc_in + 1) * c.head_hidden_size, 2, c.head_hidden_size
    parameters = embeddings + layers * layer + h * h + h + convs + head + (fc_in + 1) * c.num_labels
    tensors = 5 + 16 * layers + 2 + 2 * len(c.kernel_sizes) + head_tensors + 2
    return tensors, parameters


def check_size(config: BertCnnConfig, where: str, keys: str = "") -> None:
    """Refuse a model past `MAX_PARAMETERS` / `MAX_TENSORS`, naming `where` (a file, or the command) and `keys`."""
    tensors, parameters = size_of(config)
    if parameters > MAX_PARAMETERS or tensors > MAX_TENSORS:
        keys_shown = ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "kernel_sizes",
                      "num_filters", "head_hidden_size", "num_labels")  # fmt: skip
        shown = ", ".join(f"{k}={getattr(config, k)}" for k in keys_shown)
        raise ValueError(
            f"{where} describes a model of {parameters:,} parameters in {tensors:,} tensors "
            f"({4 * parameters / 1e9:,.1f} GB in float32), past the {MAX_PARAMETERS:,} parameters and "
            f"{MAX_TENSORS:,} tensors bertcnn builds (BERT-large has 340 million in 391); "
            f"{keys or 'the config holds a wrong size'}. Received: {shown}"
        )


def expected_shapes(config: BertCnnConfig) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape: what a checkpoint for `config` must hold, exactly."""
    return {r.torch_name: r.torch_shape for r in rows(config)}


class PortError(ValueError):
    """A strict-port refusal: names every offending tensor and both shapes."""


def check_tensors(
    tensors: Mapping[str, tuple[int, ...]] | Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
    *,
    what: str,
) -> None:
    """Refuse unless `tensors` has exactly the expected names and shapes.

    Lists every problem at once (missing, unexpected, mis-shaped), so one run tells
    the user everything to fix.
    """
    got = {k: tuple(v) if isinstance(v, tuple) else tuple(np.shape(v)) for k, v in tensors.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    misshaped = [k for k in expected if k in got and got[k] != tuple(expected[k])]
    if not (missing or unexpected or misshaped):
        return
    # One summary line (what, how to fix, Received), then the tensors one per indented line.
    lines = [
        f"{what} does not match the model's weight layout; check that the config (layers, hidden size, vocab, "
        "kernel sizes, filters, labels, head_hidden_size) is the one the weights were trained with. "
        f"Received: {len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} mis-shaped tensors"
    ]
    lines += [f"  missing: {k} (expected shape {tuple(expected[k])})" for k in missing]
    lines += [f"  unexpected: {k} (shape {got[k]})" for k in unexpected]
    lines += [f"  wrong shape: {k}: expected {tuple(expected[k])}, got {got[k]}" for k in misshaped]
    raise PortError("\n".join(lines))


def torch_to_keras(tensors: Mapping[str, np.ndarray], config: BertCnnConfig) -> dict[str, np.ndarray]:
    """Canonical (torch-layout) arrays -> {keras path: array}, strict."""
    table = rows(config)
    check_tensors(tensors, {r.torch_name: r.torch_shape for r in table}, what="Canonical checkpoint")
    return {r.keras_path: np.ascontiguousarray(r.op.to_keras(np.asarray(tensors[r.torch_name]))) for r in table}


def keras_to_torch(arrays: Mapping[str, np.ndarray], config: BertCnnConfig) -> dict[str, np.ndarray]:
    """{keras path: array} -> canonical (torch-layout) arrays, strict."""
    table = rows(config)
    check_tensors(arrays, {r.keras_path: r.keras_shape for r in table}, what="Keras weights")
    return {r.torch_name: np.ascontiguousarray(r.op.to_torch(np.asarray(arrays[r.keras_path]))) for r in table}


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
