"""SavedModel, LiteRT and ONNX (tf2onnx) from the Keras build (TensorFlow backend).

All three start from one `tf.function` with an explicit, named input signature:
three (None, None) int64 tensors. Without it, Keras' own export records float32
inputs with the build-time length fixed. LiteRT is converted with builtin ops only
(no Flex / Select TF ops, which need a bigger runtime) and its op list is checked
after conversion; the model's variables are frozen first, because the converter
otherwise keeps them as resource variables that the interpreter never initialises
(every output NaN).
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from pathlib import Path

import tensorflow as tf

from bertcnn_tf.model import BertCNN
from parity.serving.manifest import INPUT_NAMES, OUTPUT_NAME, SIGNATURE, SIGNATURE_INT32, TEXT_SIGNATURE
from parity.serving.text_spec import TextSpec


def _require_tensorflow_backend() -> None:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "SavedModel, LiteRT and Keras ONNX exports need Keras on TensorFlow; unset KERAS_BACKEND or set it to "
            f"tensorflow. Received: KERAS_BACKEND={keras.backend.backend()}"
        )


def _specs(dtype: tf.DType = tf.int64) -> list[tf.TensorSpec]:
    return [tf.TensorSpec((None, None), dtype, name=name) for name in INPUT_NAMES]


def serving_function(model: BertCNN) -> tf.types.experimental.GenericFunction:
    """inputs by name -> {"logits": (batch, num_labels) float32}, for any batch and length."""
    _require_tensorflow_backend()
    if model.compute_dtype != "float32":
        raise ValueError(f"exports are float32; load the checkpoint as float32. Received: {model.compute_dtype}")

    def serve(input_ids, attention_mask, token_type_ids):
        return {OUTPUT_NAME: model(input_ids, attention_mask, token_type_ids, training=False)}

    return tf.function(serve, input_signature=_specs())


def export_saved_model(model: BertCNN, path: str | os.PathLike, *, text: TextSpec | None = None) -> dict:
    """A SavedModel with signatures `serving_default` (int64) and `serving_int32`, loadable by both loaders.

    With `text` (a `--text` export), also `serving_text`: (batch,) strings -> logits, probabilities, label
    (multi-label: selected) and the in-graph ids, the tokenizer in the graph (`bertcnn_tf.text`; TF Text
    ops, which TF Serving links).

    The module tracks the `tf.Variable`s the serving graph reads, not the Keras model. Tracking
    the model saves each Keras variable through `keras.Variable._export_to_saved_model_graph`,
    which writes a second, new variable ("Variable_N") for the checkpoint: `tf.saved_model.load`
    binds the functions to those by object id and works, but the graph's own ops read the first
    copies, which the restore op never assigns, so a session loader (TF Serving, saved_model_cli,
    the C++/Java/Go APIs) fails with "Could not find variable fc/bias". Tracking exactly
    `concrete.variables` makes the restore op assign what the graph reads (and skips the unused
    pooler). `serving_int32` casts and calls the same function (one copy of the graph), for gRPC
    clients whose tensors are int32; JSON clients need no variant (TF Serving parses JSON numbers
    to the signature's dtype).
    """
    serve = serving_function(model)
    concrete = serve.get_concrete_function()

    def serve_int32(input_ids, attention_mask, token_type_ids):
        out = concrete(
            input_ids=tf.cast(input_ids, tf.int64),
            attention_mask=tf.cast(attention_mask, tf.int64),
            token_type_ids=tf.cast(token_type_ids, tf.int64),
        )
        return {OUTPUT_NAME: out[OUTPUT_NAME]}

    int32 = tf.function(serve_int32, input_signature=_specs(tf.int32)).get_concrete_function()
    module = tf.Module()
    module.serving_variables = list(concrete.variables)
    # Keras' TFSMLayer calls an endpoint with one positional input: the tokenizer's dict, int64 or int32.
    module.serve = module.serving_default = dict_endpoint(concrete)
    signatures = {SIGNATURE: concrete, SIGNATURE_INT32: int32}
    if text is not None:
        from bertcnn_tf.text import TextTokenizer, text_outputs

        module.text_tokenizer = TextTokenizer(text)  # tracked: its tables are saved with the model

        def logits(input_ids, attention_mask, token_type_ids):
            return concrete(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[
                OUTPUT_NAME
            ]

        serve_text = text_outputs(logits, module.text_tokenizer, model.config)
        signatures[TEXT_SIGNATURE] = serve_text.get_concrete_function()
    try:
        tf.saved_model.save(module, str(path), signatures=signatures)
    except tf.errors.OpError as e:
        raise _os_error(e) or e from None
    return {}


_DISK = {code: os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)}


def _os_error(e: Exception) -> OSError | None:
    """TensorFlow's error for a full (or read-only) disk as the OSError it is, so it is reported as one.

    TF raises ResourceExhaustedError (and others) with "<file>; No space left on device" instead of OSError.
    """
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    for code, text in _DISK.items():
        if text in message:
            where = message.split(f"; {text}")[0].strip() if f"; {text}" in message else None
            where = re.sub(r"\.tmp[0-9a-f]{32}$", "", where) if where else None  # TF's own temporary name
            return OSError(code, text, where)
    return None


def dict_endpoint(concrete) -> tf.types.experimental.GenericFunction:
    """{input name: (batch, sequence) int64 or int32} -> logits, as one positional argument.

    Signatures take keyword arguments only, and `keras.layers.TFSMLayer` calls its endpoint with the
    inputs as one positional argument; it looks for an attribute of the endpoint's name before the
    signatures, so `TFSMLayer(dir)` ("serve") and `TFSMLayer(dir, call_endpoint="serving_default")` both
    find this function, while TF Serving and `saved_model_cli` keep the `serving_default` signature.
    """

    def serve(inputs):
        return concrete(**{name: tf.cast(inputs[name], tf.int64) for name in INPUT_NAMES})[OUTPUT_NAME]

    endpoint = tf.function(serve)
    for dtype in (tf.int64, tf.int32):  # both traced now: a loaded tf.function runs only what was saved
        endpoint.get_concrete_function({name: tf.TensorSpec((None, None), dtype, name=name) for name in INPUT_NAMES})
    return endpoint


def export_litert(model: BertCNN, path: str | os.PathLike) -> dict:
    """A .tflite with builtin ops only; refuses (ValueError) a model that would need Flex ops."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(serving_function(model).get_concrete_function())

    # Freezing drops the output's name; a wrapper gives the signature its `logits` back.
    def serve(input_ids, attention_mask, token_type_ids):
        return {
            OUTPUT_NAME: frozen(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
        }

    named = tf.function(serve, input_signature=_specs()).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([named], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no SELECT_TF_OPS: no Flex
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flat = converter.convert()
    except Exception as e:  # the converter raises ConverterError with MLIR dumps: keep the line that says why
        why = next((ln.strip() for ln in str(e).splitlines() if "TF Select ops" in ln), str(e).splitlines()[0])
        raise ValueError(f"the Keras build does not convert to LiteRT with builtin ops only. Received: {why}") from None
    ops = litert_ops(flat)
    flex = sorted(op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE"))
    if flex:
        raise ValueError(f"the LiteRT model needs Flex/custom ops the builtin runtime lacks. Received: {flex}")
    Path(path).write_bytes(flat)
    return {"ops": ops}


def litert_ops(flat: bytes) -> list[str]:
    """The distinct op names in a .tflite model, from the interpreter that will run it."""
    from ai_edge_litert.interpreter import Interpreter

    return sorted({op["op_name"] for op in Interpreter(model_content=flat)._get_ops_details()})


def export_onnx(model: BertCNN, path: str | os.PathLike, *, opset: int | None = None) -> dict:
    """ONNX through tf2onnx, with the axes named batch/sequence as in the PyTorch build's export."""
    import tf2onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto, _ = tf2onnx.convert.from_function(serving_function(model), input_signature=_specs(), opset=opset)
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        if value.name in INPUT_NAMES:
            dims[1].dim_param = "sequence"
    Path(path).write_bytes(proto.SerializeToString())
    return {"opset": next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))}
