"""BERT tokenization as an ONNX graph (onnxruntime-extensions' string ops), equal to `tokenizers`.

The same steps as the TensorFlow graph (`bertcnn_tf.text`), from the same `TextSpec`, in
onnxruntime-extensions' custom ops (domain `ai.onnx.contrib`) and standard ONNX:

1. U+0000 becomes U+0001 (the extensions' ops stop reading at a NUL byte; BertNormalizer deletes
   both), a space goes in front (so every text yields a piece), and special tokens are split out of
   the raw text (`StringRegexSplitWithOffsets`);
2. RE2 replacements delete `removed`, make `spaces` a space, space out `isolated` characters;
   every other changed character is mapped one code point at a time (`StringMapping` over the
   pieces split into characters, joined back with `Gather` + `StringJoin`);
3. `punctuation` gets spaces around it; special pieces are kept whole (`Where`);
4. `WordpieceTokenizer` splits on spaces and runs WordPiece (characters counted as `tokenizers`
   counts them, `max_input_chars_per_word`), `LabelEncoder` gives the ids;
5. cut at `max_length - 2`, [CLS] ... [SEP], right-padded: standard ops.

`tokenizer_model(spec)` is that graph alone (input `text`, outputs the three model inputs);
`text_model(spec, model, ...)` puts it in front of an exported classifier.
"""

from __future__ import annotations

import json

import numpy as np

from parity.serving.text_spec import TextSpec, char_class, special_pattern

CONTRIB = "ai.onnx.contrib"
ML = "ai.onnx.ml"
TOKEN_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 20  # StringConcat and StringSplit, the standard string ops that read past a NUL byte


class _Graph:
    """A node list with fresh names and constants."""

    def __init__(self, prefix: str):
        self.nodes, self.inits, self.prefix, self._n = [], [], prefix, 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        arr = np.array(value, dtype=object) if isinstance(value, (str, list)) and _strings(value) else np.array(value)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs) -> list[str] | str:
        from onnx import helper

        outs = [self.name(op_type) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=outs[0], domain=domain or None, **attrs))
        return outs if n_out > 1 else outs[0]

    def replace(self, x: str, pattern: str, rewrite: str) -> str:
        return self.op("StringRegexReplace", [x, self.const([pattern]), self.const([rewrite])], domain=CONTRIB,
                       global_replace=1)  # fmt: skip


def _strings(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _normalize(g: _Graph, pieces: str, spec: TextSpec) -> str:
    """Flat pieces -> their normal form with spaces between BERT words (steps 2 and 3)."""
    x = g.replace(pieces, char_class(spec.removed), "")
    x = g.replace(x, char_class(spec.spaces), " ")
    x = g.replace(x, f"({char_class(spec.isolated)})", r" \1 ")
    x = g.replace(x, "^", " ")  # at least one character per piece: the join below never sees an empty row
    chars, _, _, splits = g.op("StringRegexSplitWithOffsets", [x, g.const(["((?s).)"]), g.const(["(?s)."])], 4,
                               domain=CONTRIB)  # fmt: skip
    if spec.char_map:
        table = "\n".join(f"{k}\t{v}" for k, v in spec.char_map.items())
        chars = g.op("StringMapping", [chars], domain=CONTRIB, map=table)
    dense = _ragged_to_dense(g, chars, splits, g.const([""]))
    x = g.op("StringJoin", [dense, g.const([""]), g.const([1])], domain=CONTRIB)
    return g.replace(x, f"({char_class(spec.punctuation)})", r" \1 ")


def _ragged_to_dense(g: _Graph, flat: str, splits: str, fill: str) -> str:
    """(values, row splits) -> (rows, longest) padded with `fill` (a one-element tensor of the values' type)."""
    starts = g.op("Slice", [splits, g.const([0]), g.const([-1])])
    ends = g.op("Slice", [splits, g.const([1]), g.const([np.iinfo(np.int64).max])])
    lengths = g.op("Sub", [ends, starts])
    width = g.op("ReduceMax", [lengths], keepdims=1)
    cols = g.op("Range", [g.const(0), g.op("Squeeze", [width]), g.const(1)])
    cols_row = g.op("Unsqueeze", [cols, g.const([0])])
    index = g.op("Add", [g.op("Unsqueeze", [starts, g.const([1])]), cols_row])
    valid = g.op("Less", [cols_row, g.op("Unsqueeze", [lengths, g.const([1])])])
    size = g.op("Shape", [flat])
    index = g.op("Where", [valid, index, size])
    return g.op("Gather", [g.op("Concat", [flat, fill], axis=0), index], axis=0)


def tokenizer_nodes(g: _Graph, text: str, spec: TextSpec) -> dict[str, str]:
    """Nodes from the (batch,) string tensor `text` to the three (batch, longest) int64 model inputs."""
    # The extensions' ops read a string up to its first NUL byte; standard ONNX ops read it whole. So: a
    # space in front (every text then yields a piece: no row below is empty), split at U+0000 and joined
    # with U+0001 (BertNormalizer deletes both).
    x = g.op("StringConcat", [g.const([" "]), text])
    parts, _ = g.op("StringSplit", [x], 2, delimiter="\x00")
    x = g.op("StringJoin", [parts, g.const(["\x01"]), g.const([1])], domain=CONTRIB)
    specials = special_pattern(spec)
    if specials:
        pieces, _, _, splits = g.op("StringRegexSplitWithOffsets", [x, g.const([f"({specials})"]),
                                    g.const([specials])], 4, domain=CONTRIB)  # fmt: skip
        is_special = g.op("Cast", [g.op("LabelEncoder", [pieces], domain=ML, keys_strings=list(spec.specials),
                          values_int64s=[1] * len(spec.specials), default_int64=0)], to=9)  # fmt: skip
        words = g.op("Where", [is_special, pieces, _normalize(g, pieces, spec)])
    else:
        pieces, words = x, _normalize(g, x, spec)
        splits = g.op("Range", [g.const(0), g.op("Add", [g.op("Squeeze", [g.op("Shape", [x])]), g.const(1)]),
                                g.const(1)])  # fmt: skip
    # One row per word: the extensions' WordPiece keeps the pieces it matched before a word turns out
    # unknown and appends [UNK] ("in👈" -> in, [UNK]), where WordPiece makes the whole word [UNK].
    words, _, _, word_splits = g.op("StringRegexSplitWithOffsets", [words, g.const(["( )"]), g.const([""])], 4,
                                    domain=CONTRIB)  # fmt: skip
    text_words = g.op("Gather", [word_splits, splits], axis=0)  # (batch + 1,) word bounds of each text
    n_words = g.op("Shape", [words])
    rows = g.op("Range", [g.const(np.int64(0)), g.op("Add", [g.op("Squeeze", [n_words]), g.const(np.int64(1))]),
                          g.const(np.int64(1))])  # fmt: skip
    vocab = json.dumps({t: i for i, t in enumerate(spec.vocab)}, ensure_ascii=False)
    tokens, _, begins, limits = g.op("WordpieceTokenizer", [words, rows], 4, domain=CONTRIB, vocab=vocab,
                                     suffix_indicator=spec.prefix, unknown_token=spec.unk_token,
                                     max_input_chars_per_word=spec.max_chars)  # fmt: skip
    ids = g.op("LabelEncoder", [tokens], domain=ML, keys_strings=list(spec.vocab),
               values_int64s=list(range(len(spec.vocab))), default_int64=spec.unk_id)  # fmt: skip
    ids, text_begins, text_limits = _whole_word_unknown(g, ids, begins, limits, text_words, spec)
    return _wrap(g, ids, text_begins, text_limits, spec)


def _whole_word_unknown(g: _Graph, ids: str, begins: str, limits: str, text_words: str, spec: TextSpec):
    """A word whose pieces end in [UNK] becomes that one [UNK]; returns (ids, text begins, text limits)."""
    n = g.op("Shape", [ids])
    marks = g.op("ScatterElements", [g.op("ConstantOfShape", [n], value=_int64_tensor(0)), begins,
                                     g.op("Expand", [g.const(np.int64(1)), g.op("Shape", [begins])])])  # fmt: skip
    word_of = g.op("Sub", [g.op("CumSum", [marks, g.const(np.int64(0))]), g.const(np.int64(1))])
    unknown = g.op("Cast", [g.op("Equal", [ids, g.const(np.int64(spec.unk_id))])], to=7)
    bad = g.op("ScatterElements", [g.op("ConstantOfShape", [g.op("Shape", [begins])], value=_int64_tensor(0)),
                                   word_of, unknown], reduction="max")  # fmt: skip
    bad_bool = g.op("Cast", [bad], to=9)
    position = g.op("Range", [g.const(np.int64(0)), g.op("Squeeze", [n]), g.const(np.int64(1))])
    last = g.op("Equal", [position, g.op("Sub", [g.op("Gather", [limits, word_of], axis=0), g.const(np.int64(1))])])
    keep = g.op("Or", [g.op("Not", [g.op("Gather", [bad_bool, word_of], axis=0)]), last])
    kept = g.op("Compress", [ids, keep], axis=0)
    per_word = g.op("Where", [bad_bool, g.const(np.int64(1)), g.op("Sub", [limits, begins])])
    cum = g.op("Concat", [g.const([np.int64(0)]), g.op("CumSum", [per_word, g.const(np.int64(0))])], axis=0)
    bounds = g.op("Gather", [cum, text_words], axis=0)
    text_begins = g.op("Slice", [bounds, g.const([0]), g.const([-1])])
    text_limits = g.op("Slice", [bounds, g.const([1]), g.const([np.iinfo(np.int64).max])])
    return kept, text_begins, text_limits


def _int64_tensor(value: int):
    from onnx import helper

    return helper.make_tensor("value", 7, [1], [value])


def _wrap(g: _Graph, ids: str, begins: str, limits: str, spec: TextSpec) -> dict[str, str]:
    """Flat word-piece ids + row bounds -> [CLS] first max_length - 2 pieces [SEP], padded (step 5)."""
    lengths = g.op("Min", [g.op("Sub", [limits, begins]), g.const(np.int64(spec.max_length - 2))])
    width = g.op("Add", [g.op("ReduceMax", [lengths], keepdims=0), g.const(np.int64(2))])
    cols = g.op("Unsqueeze", [g.op("Range", [g.const(np.int64(0)), width, g.const(np.int64(1))]), g.const([0])])
    col_len = g.op("Unsqueeze", [lengths, g.const([1])])
    index = g.op("Sub", [g.op("Add", [g.op("Unsqueeze", [begins, g.const([1])]), cols]), g.const(np.int64(1))])
    inside = g.op("And", [g.op("Greater", [cols, g.const(np.int64(0))]),
                          g.op("LessOrEqual", [cols, col_len])])  # fmt: skip
    index = g.op("Where", [inside, index, g.op("Shape", [ids])])
    pieces = g.op("Gather", [g.op("Concat", [ids, g.const([np.int64(spec.pad_id)])], axis=0), index], axis=0)
    last = g.op("Add", [col_len, g.const(np.int64(1))])
    out = g.op("Where", [g.op("Equal", [cols, last]), g.const(np.int64(spec.sep_id)), pieces])
    out = g.op("Where", [g.op("Equal", [cols, g.const(np.int64(0))]), g.const(np.int64(spec.cls_id)), out])
    mask = g.op("Cast", [g.op("LessOrEqual", [cols, last])], to=7)
    # Broadcasting the (1, width) comparisons over rows: each output is (batch, width).
    return {"input_ids": out, "attention_mask": mask, "token_type_ids": g.op("Mul", [mask, g.const(np.int64(0))])}


def opset_imports(opset: int = OPSET) -> list:
    from onnx import helper

    return [helper.make_opsetid("", opset), helper.make_opsetid(CONTRIB, 1), helper.make_opsetid(ML, 2)]


def tokenizer_model(spec: TextSpec, opset: int = OPSET):
    """An ONNX model: `text` (batch,) string -> `input_ids`, `attention_mask`, `token_type_ids` (batch, n) int64."""
    from onnx import TensorProto, helper

    g = _Graph("tok/")
    out = tokenizer_nodes(g, "text", spec)
    g.nodes += [helper.make_node("Identity", [out[k]], [k]) for k in TOKEN_OUTPUTS]
    graph = helper.make_graph(
        g.nodes,
        "bertcnn_tokenizer",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info(k, TensorProto.INT64, ["batch", "sequence"]) for k in TOKEN_OUTPUTS],
        g.inits,
    )
    return helper.make_model(graph, opset_imports=opset_imports(opset), ir_version=9)


def add_text(path, spec: TextSpec, labels: tuple[str, ...], thresholds: tuple[float, ...] | None = None) -> dict:
    """Rewrite the ids-in ONNX model at `path` to take strings: the tokenizer in front, label names after.

    Inputs: `text` (batch,) string. Outputs: `logits`, `probabilities` (softmax), `label` (class name),
    `input_ids` and `attention_mask` (the in-graph ids). With `thresholds` (a multi-label model's, one per
    label): `probabilities` are a sigmoid per label and `selected` (bool) replaces `label`. The model's opset
    is raised to 20 when lower (StringConcat/StringSplit). Returns {"opset": the model's opset}.
    """
    import onnx
    from onnx import TensorProto, helper, version_converter

    model = onnx.load(str(path))
    opset = next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < OPSET:
        model = version_converter.convert_version(model, OPSET)
        opset = OPSET
    graph = model.graph
    ids_in = [i.name for i in graph.input]
    if sorted(ids_in) != sorted(TOKEN_OUTPUTS) or [o.name for o in graph.output] != ["logits"]:
        raise ValueError(f"{path}: not a bertcnn ids-in ONNX model. Received: inputs {ids_in}")
    g = _Graph("text/")
    out = tokenizer_nodes(g, "text", spec)
    feeds = [helper.make_node("Identity", [out[k]], [k]) for k in TOKEN_OUTPUTS]
    width = graph.output[0].type.tensor_type.shape.dim[1]
    wide = ["batch", width.dim_value or "labels"]
    if thresholds is None:
        probs = helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)
        names = g.const(list(labels), "label_names")
        top = g.op("ArgMax", ["logits"], axis=-1, keepdims=0)
        decided = helper.make_node("Gather", [names, top], ["label"], axis=0)
        decision = helper.make_tensor_value_info("label", TensorProto.STRING, ["batch"])
    else:
        probs = helper.make_node("Sigmoid", ["logits"], ["probabilities"])
        cut = g.const(np.asarray(thresholds, np.float32), "thresholds")
        decided = helper.make_node("GreaterOrEqual", ["probabilities", cut], ["selected"])
        decision = helper.make_tensor_value_info("selected", TensorProto.BOOL, wide)
    nodes = [*g.nodes, *feeds, *graph.node, probs, decided]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, wide),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, wide),
        decision,
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    new_graph = helper.make_graph(
        nodes,
        graph.name,
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        outputs,
        [*graph.initializer, *g.inits],
    )
    imports = {(o.domain or ""): o.version for o in model.opset_import}
    imports.update({(o.domain or ""): o.version for o in opset_imports(opset)})
    combined = helper.make_model(
        new_graph, opset_imports=[helper.make_opsetid(d, v) for d, v in imports.items()], ir_version=model.ir_version
    )
    combined.functions.extend(model.functions)
    onnx.save(combined, str(path))
    return {"opset": opset}
