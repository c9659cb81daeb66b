"""int8 ONNX exports: ONNX Runtime's dynamic quantization of the float32 export's matmul weights.

`int8`: the weights of the encoder's dense MatMuls (almost all the FLOPs) become int8, per
output channel, with activations quantized per batch at run time (uint8), which ONNX Runtime
runs on the CPU's integer dot-product units (VNNI where present) — what ONNX Runtime's and
Optimum's dynamic quantization do by default. Embeddings (Gather), LayerNorm, the convolutions
and the classifier stay float32: quantizing the embedding table or the small head costs
accuracy and buys no time.

`int8-ffn-out-fp32`: the same, but the feed-forward output matmuls (GELU's output times a
weight of shape (intermediate_size, hidden_size)) stay float32: their inputs carry the
encoder's activation outliers, which one per-batch uint8 scale flattens. On a fine-tuned
MiniLM-CNN and 1201 held-out tweets (`benchmarks/precision_accuracy.py`): `int8` moved 24
argmaxes against float32 (agreement 0.980, logits up to 0.20), this mode 10 (0.992, 0.14), for
a slower artifact (docs/serving.md). Either is judged by the int8 tier of the tolerance table
(a logits bound and argmax agreement), never the float32 bound.
"""

from __future__ import annotations

import contextlib
import logging
import os

MODES = ("int8", "int8-ffn-out-fp32")  # `bertcnn export --quantize MODE`; both judged by the int8 tier


def quantize_onnx(
    source: str | os.PathLike, dest: str | os.PathLike, mode: str = "int8", *, intermediate_size: int, hidden_size: int
) -> dict:
    """Write `dest`, the int8 quantization of the float32 `source` (dynamic, per-channel, MatMul weights).

    `mode="int8-ffn-out-fp32"` keeps the MatMuls whose constant weight is (intermediate_size,
    hidden_size), the feed-forward outputs, in float32 (with intermediate_size == hidden_size
    that keeps every square dense layer too).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if mode not in MODES:
        raise ValueError(f"quantize must be one of {list(MODES)}. Received: {mode!r}")
    keep = []
    if mode == "int8-ffn-out-fp32":
        keep = feed_forward_outputs(onnx.load(str(source), load_external_data=False), intermediate_size, hidden_size)
    with _quiet_root_logger():  # ORT logs "consider pre-processing" on the root logger: advice for static quantization
        quantize_dynamic(
            str(source),
            str(dest),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            nodes_to_exclude=keep,
        )
    return {"quantize": mode}


def feed_forward_outputs(model, intermediate_size: int, hidden_size: int) -> list[str]:
    """Names of the MatMul nodes whose second input is a constant of shape (intermediate_size, hidden_size)."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    want = (intermediate_size, hidden_size)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and shapes.get(n.input[1]) == want]


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
