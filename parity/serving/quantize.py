"""int8 ONNX exports: ONNX Runtime's dynamic quantization of the float32 export's matmul weights.

Weights of every MatMul (the encoder's dense layers: almost all the FLOPs) become int8, per
output channel, with activations quantized per batch at run time (uint8), which ONNX Runtime
runs on the CPU's integer dot-product units (VNNI where present). Embeddings (Gather),
LayerNorm, the convolutions and the classifier stay float32: quantizing the embedding table
or the small head costs accuracy and buys no time. The result is judged by its own tier of
the tolerance table (a logits bound and argmax agreement), never the float32 bound.
"""

from __future__ import annotations

import contextlib
import logging
import os


def quantize_onnx(source: str | os.PathLike, dest: str | os.PathLike) -> dict:
    """Write `dest`, the int8 (dynamic, per-channel, MatMul weights) quantization of the float32 `source`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():  # ORT logs "consider pre-processing" on the root logger: advice for static quantization
        quantize_dynamic(
            str(source), str(dest), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True
        )
    return {"quantize": "int8"}


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
