"""Keras 3 build: own BERT encoder -> Conv1D per width -> ReLU -> max -> linear.

`keras.layers.Conv1D` is channels-last, so BERT's (B, T, H) output goes in as is:
no permute. Model code uses `keras.layers`/`keras.ops` only, so it runs on the
TensorFlow (default), JAX and torch backends.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from bertcnn_tf.bert import BertModel, LayerList
from parity import taps as T
from parity.config import BertCnnConfig
from parity.inputs import check_inputs
from parity.io.formats import floating_dtype
from parity.layout import check_tensors, keras_to_torch, rows, torch_to_keras
from parity.pretrained import PretrainedMixin
from parity.serving.manifest import INPUT_NAMES

INPUT_SHAPES = ((None, None),) * len(INPUT_NAMES)  # (batch, sequence): any size


@keras.saving.register_keras_serializable(package="bertcnn")
class BertCNN(PretrainedMixin, keras.Model):
    def __init__(self, config: BertCnnConfig, **kwargs):
        if isinstance(config, dict):  # from_config / .keras archives
            config = BertCnnConfig.from_dict(config)
        if not isinstance(config, BertCnnConfig):
            raise ValueError(f"BertCNN takes a parity.BertCnnConfig. Received: {type(config).__name__}")
        kwargs.setdefault("name", "bert_cnn")
        super().__init__(**kwargs)
        self.config = config
        dt = self.dtype_policy
        self.bert = BertModel(config, name="bert", dtype=dt)
        convs = [
            keras.layers.Conv1D(config.num_filters, k, name=str(j), dtype=dt) for j, k in enumerate(config.kernel_sizes)
        ]
        self.convs = LayerList(convs, name="convs", dtype=dt)
        self.dropout = keras.layers.Dropout(config.classifier_dropout, name="dropout", dtype=dt)
        fc_in = config.pooled_size
        self.hidden = None
        if config.head_hidden_size is not None:
            self.hidden = keras.layers.Dense(config.head_hidden_size, activation="relu", name="hidden", dtype=dt)
            self.hidden.build((None, fc_in))
            fc_in = config.head_hidden_size
        self.fc = keras.layers.Dense(config.num_labels, name="fc", dtype=dt)
        self.fc.build((None, fc_in))
        # Every shape is known from the config: build now, so weights exist before any call. Built through
        # Keras' own `build`, which records the input structure (three (batch, sequence) inputs) as a first
        # call would: `summary` shows each layer's output shape from it.
        self.build(*INPUT_SHAPES)

    def build(self, input_ids_shape=None, attention_mask_shape=None, token_type_ids_shape=None):
        self.bert.build(input_ids_shape)
        self.convs.build((None, None, self.config.hidden_size))
        self.dropout.build((None, self.config.pooled_size))

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras' `Model.export`; without `input_signature`, the model's own: three (batch, sequence) int64 inputs
        named `input_ids`, `attention_mask`, `token_type_ids`, every batch size and length (`input_signature()`).

        A subclassed model is exported from the structure of its first call, which this model, built
        at construction, never records; Keras then refused it (`The model provided has never called`).
        """
        if input_signature is None:
            input_signature = self.input_signature()
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

    def text_model(self, tokenizer_dir, *, max_length: int | None = None):
        """This model with the tokenizer in the graph: `text_model(dir)(["a text", ...])["logits"]`.

        `tokenizer_dir` holds the checkpoint's tokenizer.json (a BERT WordPiece tokenizer); texts are cut at
        `max_length` tokens (default: the length the model was trained to read). The ids are those of the
        `tokenizers` library (docs/serving.md, "Strings in"); TensorFlow backend and TensorFlow Text needed.
        """
        from bertcnn_tf.text import TextBertCNN
        from parity.serving.text_spec import read_text_spec

        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "the tokenizer in the graph is TensorFlow's (TF Text); unset KERAS_BACKEND or set it to tensorflow. "
                f"Received: KERAS_BACKEND={keras.backend.backend()}"
            )
        spec = read_text_spec(tokenizer_dir, max_length or self.config.reading_length, self.config.pad_token_id)
        return TextBertCNN(self, spec)

    @staticmethod
    def input_signature() -> list:
        """The inputs as `keras.InputSpec`s: int64 (batch, sequence), named as every exporter names them."""
        return [keras.InputSpec(shape=(None, None), dtype="int64", name=name) for name in INPUT_NAMES]

    def call(self, input_ids, attention_mask=None, token_type_ids=None, training=None, return_taps=False):
        """Logits (B, num_labels); with `return_taps`, every tap of `parity.taps` by name."""
        if isinstance(input_ids, dict):  # fit/predict pass one dict of inputs
            attention_mask = input_ids.get("attention_mask")
            token_type_ids = input_ids.get("token_type_ids")
            input_ids = input_ids["input_ids"]
        concrete = _concrete(input_ids)
        if concrete is not None:  # eager: check values; traced calls were checked by their caller
            check_inputs(concrete, _concrete(attention_mask), _concrete(token_type_ids), self.config)
        if attention_mask is None:
            attention_mask = ops.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = ops.zeros_like(input_ids)
        taps = {}
        # A long document read as windows: (B, M, T) inputs, each window through BERT and the CNN on its own, the
        # max over time over the whole document (see `bertcnn_torch.modeling_bertcnn.bert_cnn_forward`).
        documents = len(input_ids.shape) == 3
        encoder_mask = attention_mask
        if documents:
            windows = ops.shape(input_ids)[1]
            input_ids, attention_mask, token_type_ids = (
                ops.reshape(x, (-1, ops.shape(x)[2])) for x in (input_ids, attention_mask, token_type_ids)
            )
            # An all-padding window attends to its first position, never to nothing.
            encoder_mask = ops.concatenate([ops.ones_like(attention_mask[:, :1]), attention_mask[:, 1:]], axis=1)

        # Embeddings + encoder.
        embedded, states = self.bert(input_ids, encoder_mask, token_type_ids, training=training)
        hidden = states[-1]  # (B, T, H)
        if return_taps:
            taps[T.EMBEDDINGS] = embedded
            for i, h in enumerate(states):
                taps[T.encoder_layer(i)] = h
            taps[T.LAST_HIDDEN_STATE] = hidden

        # CNN head. Inputs shorter than the widest kernel are right-padded (as padding).
        seq_len, widest = hidden.shape[1], self.config.max_kernel_size
        if seq_len is None or seq_len < widest:
            # Unknown length while tracing: pad by a tensor amount (0 when long enough).
            short = ops.maximum(widest - ops.shape(hidden)[1], 0) if seq_len is None else widest - seq_len
            hidden = ops.pad(hidden, [[0, 0], [0, short], [0, 0]])  # (B, >=K, H)
            # A pad by a tensor amount forgets H; LiteRT's conv needs it static (else a Flex Conv2D).
            hidden = ops.reshape(hidden, (-1, ops.shape(hidden)[1], self.config.hidden_size))
            attention_mask = ops.pad(attention_mask, [[0, 0], [0, short]])
        mask = ops.cast(attention_mask, self.compute_dtype)
        pooled = []
        for j, (conv, k) in enumerate(zip(self.convs, self.config.kernel_sizes, strict=True)):
            c = ops.relu(conv(hidden))  # (B, L, F) channels-last: no permute
            if self.config.mask_padding:
                # ReLU output is >= 0, so zeroing windows that touch padding leaves the
                # max over valid windows unchanged, and gives 0 if there is none.
                c = c * ops.expand_dims(valid_windows(mask, k), -1)  # not [:, :, None]: a Flex op in LiteRT
            if return_taps:
                taps[T.conv(j)] = c
            pooled.append(ops.max(c, axis=1))  # (B, F) max over time
        features = ops.concatenate(pooled, axis=1)  # (B, n_widths * F)
        if documents:  # (B * M, P) -> (B, P): the max over every window of each document
            present = ops.cast(ops.sum(attention_mask, axis=1) > 0, features.dtype)
            features = ops.max(ops.reshape(features * ops.expand_dims(present, -1), (-1, windows, features.shape[-1])),
                               axis=1)  # fmt: skip
        if return_taps:
            taps[T.POOLED] = features

        # Classifier.
        features = self.dropout(features, training=training)
        if self.hidden is not None:
            features = self.hidden(features)  # (B, head_hidden_size), ReLU
            if return_taps:
                taps[T.HIDDEN] = features
        logits = self.fc(features)  # (B, num_labels)
        if return_taps:
            taps[T.LOGITS] = logits
            return taps
        return logits

    # -- serialisation -----------------------------------------------------------
    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "dtype": self.dtype_policy.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config.pop("config"), **config)

    # -- canonical weights (the checkpoint API comes from PretrainedMixin) --------------
    def get_canonical_weights(self) -> dict[str, np.ndarray]:
        """All weights as canonical (torch-layout) arrays, through the weight table."""
        return keras_to_torch(keras_weights(self), self.config)

    def set_canonical_weights(self, tensors: dict[str, np.ndarray]) -> None:
        """Strictly load canonical (torch-layout) arrays through the weight table."""
        variables = _variables_by_path(self)
        for path, value in torch_to_keras(tensors, self.config).items():
            variables[path].assign(value.astype(variables[path].dtype, copy=False))

    @classmethod
    def _from_tensors(cls, config: BertCnnConfig, tensors: dict[str, np.ndarray], **kwargs) -> BertCNN:
        if kwargs.get("dtype") in (None, "auto"):  # the checkpoint's own dtype ("auto": transformers' word for it)
            kwargs["dtype"] = str(floating_dtype(tensors.values()))
        model = cls(config, **kwargs)
        model.set_canonical_weights(tensors)
        return model


def valid_windows(mask, k: int):
    """(B, T) 0/1 mask -> (B, T - k + 1): 1 where a width-k window covers only real tokens."""
    length = ops.shape(mask)[1] - k + 1
    valid = mask[:, :length]
    for s in range(1, k):
        valid = valid * mask[:, s : s + length]
    return valid


def keras_weights(model: BertCNN) -> dict[str, np.ndarray]:
    """{weight-table Keras path: array} for every variable of the model."""
    return {path: ops.convert_to_numpy(v.value) for path, v in _variables_by_path(model).items()}


def _variables_by_path(model: BertCNN) -> dict:
    """Variables keyed by path below the model; strict against the weight table."""
    prefix = model.name + "/"
    found = {v.path.removeprefix(prefix): v for v in model.weights}
    check_tensors(
        {p: tuple(v.shape) for p, v in found.items()},
        {r.keras_path: r.keras_shape for r in rows(model.config)},
        what="Keras model variables",
    )
    return found


def _concrete(x) -> np.ndarray | None:
    """The value of `x` as numpy, or None while tracing (symbolic tensors have no value)."""
    if x is None:
        return None
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:
        return None
