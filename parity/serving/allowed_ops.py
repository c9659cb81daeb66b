"""The ops `bertcnn export` writes into an export, by role: all an export may run (`parity.serving.graph_check`).

Data, not guesswork: these are the ops found in `bertcnn export --format saved_model` of a tiny
checkpoint of every supported shape of the model (both heads, padding masks on and off, every
activation in `parity.config.SUPPORTED_ACTIVATIONS`, kernels of width 1 and wider), with
TensorFlow `TENSORFLOW`. `tests/serving/test_allowed_ops.py::test_the_allowed_ops_are_what_the_exporter_writes`
(slow) exports them again and compares; when TensorFlow or the model changes, it fails printing
the new lists to put here.
"""

from __future__ import annotations

TENSORFLOW = "2.21.0"

SAVED_MODEL_OPS: dict[str, frozenset[str]] = {
    "serve": frozenset({
        "AddV2", "BatchMatMulV2", "BiasAdd", "Cast", "ConcatV2", "Const", "Conv2D", "Equal", "Erf", "ExpandDims",
        "GatherV2", "Identity", "Less", "MatMul", "Max", "Maximum", "Mean", "Mul", "NoOp", "Pack", "Pad",
        "Placeholder", "Pow", "Prod", "Range", "ReadVariableOp", "Relu", "Reshape", "Rsqrt", "SelectV2", "Shape",
        "Softmax", "Square", "Squeeze", "StatefulPartitionedCall", "StopGradient", "StridedSlice", "Sub", "Tanh",
        "Transpose", "VarHandleOp",
    }),
    "restore": frozenset({"AssignVariableOp", "Const", "Identity", "NoOp", "RestoreV2", "StatefulPartitionedCall"}),
    "save": frozenset({
        "Const", "DisableCopyOnRead", "Identity", "MergeV2Checkpoints", "NoOp", "Pack", "ReadVariableOp", "SaveV2",
        "Select", "ShardedFilename", "StatefulPartitionedCall", "StaticRegexFullMatch", "StringJoin",
    }),
}  # fmt: skip

# bertcnn's SavedModels before issue 21 tracked the Keras model itself, whose variables initialise in the serving
# graph; they are still ours (the check then says what is wrong with them). Found, like the lists above, by the
# same test: exports made the old way (`tests.helpers.saved_model_before_issue_21`) hold these ops beyond them.
EARLIER_EXPORTS: dict[str, frozenset[str]] = {"serve": frozenset({"AssignVariableOp", "VarIsInitializedOp"})}


# `bertcnn export --format saved_model --text` adds the tokenizer (`bertcnn_tf.text`): these ops beyond the lists
# above, found by the same test on `--text` exports of the same grid and a multi-label model. Allowed only where
# the manifest says --text.
TEXT_OPS: dict[str, frozenset[str]] = {
    "serve": frozenset({
        "All", "ArgMax", "Assert", "BroadcastTo", "FastWordpieceTokenizeWithOffsets", "Fill", "Greater",
        "GreaterEqual", "HashTableV2", "If", "LessEqual", "LookupTableFindV2", "LookupTableImportV2", "Minimum",
        "OnesLike", "RaggedGather", "RaggedRange", "RaggedTensorToTensor", "RegexSplitWithOffsets", "Sigmoid",
        "StaticRegexFullMatch", "StaticRegexReplace", "StringLength", "Tile", "UnicodeDecode", "UnicodeEncode",
        "UnicodeTranscode", "UnsortedSegmentJoin", "Where", "ZerosLike",
    }),
}  # fmt: skip


def allowed(role: str, *, text: bool = False) -> frozenset[str]:
    """Every op an export written by bertcnn, now or before, holds in `role` (`text`: a `--text` export's too)."""
    extra = TEXT_OPS.get(role, frozenset()) if text else frozenset()
    return SAVED_MODEL_OPS[role] | EARLIER_EXPORTS.get(role, frozenset()) | extra
