"""A Keras 3 BERT encoder that is `transformers.BertModel`, op for op.

Transformers v5 has no TensorFlow models, and KerasHub's BERT uses the tanh GELU
where HF BERT uses the exact erf form (a ~1e-3 difference), so we mirror HF here:
same sum order in the embeddings, additive mask with the dtype minimum, exact GELU,
LayerNorm in torch's formula with eps from the config. Layer `name=`s equal the torch attribute names, so
variable paths are the weight table's Keras paths. Keras reserves `.output`, so
the Python attributes for HF's `output` submodules are `*_output`; the names match.
"""

from __future__ import annotations

import math
import warnings

import keras
import ml_dtypes
from keras import ops

from parity.config import BertCnnConfig

# A one-token input gives a size-1 softmax over keys, which is correct; Keras warns about it.
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1", category=UserWarning)


def activation(name: str, x):
    """HF ACT2FN, written out: keras.ops.gelu defaults to the tanh approximation."""
    if name == "gelu":  # exact, as torch.nn.functional.gelu
        return x * 0.5 * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * ops.power(x, 3.0))))
    if name == "relu":
        return ops.relu(x)
    raise ValueError(f"Unsupported hidden_act. Received: {name!r}")


class LayerNorm(keras.layers.Layer):
    """torch's layer_norm formula, `(x - mean) * rsqrt(var + eps) * gamma + beta`.

    keras.layers.LayerNormalization computes `x * inv + (beta - mean * inv)`, which
    cancels catastrophically when |mean| >> std (with hidden_size 1 it turns 1e-8 of
    rounding into 1e-2 at eps 1e-12); centring first keeps the builds the same function.
    """

    def __init__(self, epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

    def call(self, x):
        centred = x - ops.mean(x, axis=-1, keepdims=True)
        variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
        return centred * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta


class BertEmbeddings(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        c, dt = config, self.dtype_policy
        self.word_embeddings = keras.layers.Embedding(c.vocab_size, c.hidden_size, name="word_embeddings", dtype=dt)
        self.position_embeddings = keras.layers.Embedding(
            c.max_position_embeddings, c.hidden_size, name="position_embeddings", dtype=dt
        )
        self.token_type_embeddings = keras.layers.Embedding(
            c.type_vocab_size, c.hidden_size, name="token_type_embeddings", dtype=dt
        )
        self.LayerNorm = LayerNorm(c.layer_norm_eps, name="LayerNorm", dtype=dt)
        self.dropout = keras.layers.Dropout(c.hidden_dropout_prob, name="dropout", dtype=dt)
        self.hidden_size, self.pad_token_id = c.hidden_size, c.pad_token_id

    def build(self, input_shape=None):
        for emb in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            emb.build()
        self.LayerNorm.build((None, None, self.hidden_size))

    def call(self, input_ids, token_type_ids, training=None):
        positions = ops.arange(ops.shape(input_ids)[1], dtype="int32")  # (T,)
        # Same sum order as HF: (word + token_type) + position.
        words = self.word_embeddings(input_ids)
        # HF's nn.Embedding(padding_idx=pad_token_id): the pad row never gets a gradient.
        pad = ops.expand_dims(ops.equal(input_ids, self.pad_token_id), -1)
        words = ops.where(pad, ops.stop_gradient(words), words)
        x = words + self.token_type_embeddings(token_type_ids)  # (B, T, H)
        x = x + self.position_embeddings(positions)[None]
        return self.dropout(self.LayerNorm(x), training=training)


class BertSelfAttention(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        c, dt = config, self.dtype_policy
        self.num_heads, self.head_dim, self.hidden_size = c.num_attention_heads, c.head_dim, c.hidden_size
        self.query = keras.layers.Dense(c.hidden_size, name="query", dtype=dt)
        self.key = keras.layers.Dense(c.hidden_size, name="key", dtype=dt)
        self.value = keras.layers.Dense(c.hidden_size, name="value", dtype=dt)
        self.dropout = keras.layers.Dropout(c.attention_probs_dropout_prob, name="dropout", dtype=dt)

    def build(self, input_shape=None):
        for dense in (self.query, self.key, self.value):
            dense.build((None, None, self.hidden_size))

    def _heads(self, x, seq_len):
        x = ops.reshape(x, (-1, seq_len, self.num_heads, self.head_dim))  # (B, T, nh, hd)
        return ops.transpose(x, (0, 2, 1, 3))  # (B, nh, T, hd)

    def call(self, hidden, additive_mask, training=None):
        seq_len = ops.shape(hidden)[1]
        q = self._heads(self.query(hidden), seq_len)
        k = self._heads(self.key(hidden), seq_len)
        v = self._heads(self.value(hidden), seq_len)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (self.head_dim**-0.5)  # (B, nh, T, T)
        probs = ops.softmax(scores + additive_mask, axis=-1)
        probs = self.dropout(probs, training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))  # (B, T, nh, hd)
        return ops.reshape(context, (-1, seq_len, self.hidden_size))  # (B, T, H)


class BertSelfOutput(keras.layers.Layer):
    """dense -> dropout -> LayerNorm(x + residual); HF's BertSelfOutput and BertOutput."""

    def __init__(self, config: BertCnnConfig, in_size: int, **kwargs):
        super().__init__(**kwargs)
        c, dt = config, self.dtype_policy
        self.in_size, self.hidden_size = in_size, c.hidden_size
        self.dense = keras.layers.Dense(c.hidden_size, name="dense", dtype=dt)
        self.LayerNorm = LayerNorm(c.layer_norm_eps, name="LayerNorm", dtype=dt)
        self.dropout = keras.layers.Dropout(c.hidden_dropout_prob, name="dropout", dtype=dt)

    def build(self, input_shape=None):
        self.dense.build((None, None, self.in_size))
        self.LayerNorm.build((None, None, self.hidden_size))

    def call(self, x, residual, training=None):
        return self.LayerNorm(self.dropout(self.dense(x), training=training) + residual)


class BertAttention(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        self.self_attention = BertSelfAttention(config, name="self", dtype=self.dtype_policy)
        self.self_output = BertSelfOutput(config, config.hidden_size, name="output", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.self_attention.build()
        self.self_output.build()

    def call(self, hidden, additive_mask, training=None):
        return self.self_output(
            self.self_attention(hidden, additive_mask, training=training), hidden, training=training
        )


class BertIntermediate(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        self.act, self.hidden_size = config.hidden_act, config.hidden_size
        self.dense = keras.layers.Dense(config.intermediate_size, name="dense", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.dense.build((None, None, self.hidden_size))

    def call(self, x):
        return activation(self.act, self.dense(x))  # (B, T, intermediate)


class BertLayer(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        dt = self.dtype_policy
        self.attention = BertAttention(config, name="attention", dtype=dt)
        self.intermediate = BertIntermediate(config, name="intermediate", dtype=dt)
        self.layer_output = BertSelfOutput(config, config.intermediate_size, name="output", dtype=dt)

    def build(self, input_shape=None):
        self.attention.build()
        self.intermediate.build()
        self.layer_output.build()

    def call(self, hidden, additive_mask, training=None):
        attended = self.attention(hidden, additive_mask, training=training)  # (B, T, H)
        return self.layer_output(self.intermediate(attended), attended, training=training)


class LayerList(keras.layers.Layer):
    """torch's nn.ModuleList: children named "0", "1", ... inside a layer of their own.

    Variable paths then read `encoder/layer/3/...` like torch's `encoder.layer.3...`,
    with no '.' in any name (Keras's torch backend refuses '.' in parameter names).
    """

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.items = list(layers)

    def build(self, input_shape=None):
        for item in self.items:
            item.build(input_shape)

    def compute_output_shape(self, input_shape):
        return [item.compute_output_shape(input_shape) for item in self.items]

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


class BertEncoder(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        dt = self.dtype_policy
        layers = [BertLayer(config, name=str(i), dtype=dt) for i in range(config.num_hidden_layers)]
        self.layer = LayerList(layers, name="layer", dtype=dt)

    def build(self, input_shape=None):
        self.layer.build()

    def call(self, hidden, additive_mask, training=None):
        """Returns the output of every layer (the last is the encoder's output)."""
        states = []
        for layer in self.layer:
            hidden = layer(hidden, additive_mask, training=training)
            states.append(hidden)
        return states


class BertPooler(keras.layers.Layer):
    """Kept for weight parity with `BertModel` (the seed's state_dict has it); unused by the head.

    Not trainable: no loss reaches it (torch's optimisers skip it for the same reason),
    and `fit` would otherwise warn that it has no gradients.
    """

    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = config.hidden_size
        self.dense = keras.layers.Dense(config.hidden_size, activation="tanh", name="dense", dtype=self.dtype_policy)
        self.trainable = False  # after the sublayer exists, so it propagates

    def build(self, input_shape=None):
        self.dense.build((None, self.hidden_size))

    def call(self, hidden):
        return self.dense(hidden[:, 0])  # (B, H) from [CLS]


class BertModel(keras.layers.Layer):
    def __init__(self, config: BertCnnConfig, **kwargs):
        super().__init__(**kwargs)
        dt = self.dtype_policy
        self.embeddings = BertEmbeddings(config, name="embeddings", dtype=dt)
        self.encoder = BertEncoder(config, name="encoder", dtype=dt)
        self.pooler = BertPooler(config, name="pooler", dtype=dt)

    def build(self, input_shape=None):
        self.embeddings.build()
        self.encoder.build()
        self.pooler.build()

    def compute_output_shape(self, input_shape):
        """(embeddings, [each encoder layer's output]): (batch, sequence, hidden) each, for `summary`."""
        batch, length = tuple(input_shape or (None, None))[:2]
        hidden = (batch, length, self.embeddings.hidden_size)
        return hidden, [hidden] * len(self.encoder.layer)

    def call(self, input_ids, attention_mask, token_type_ids, training=None):
        """Returns (embeddings, [each encoder layer's output]); the pooler is not computed."""
        embedded = self.embeddings(input_ids, token_type_ids, training=training)  # (B, T, H)
        # HF's extended mask: 0 for tokens, the dtype's minimum for padding keys. np.finfo knows no bfloat16;
        # a Python float (exact for every float dtype's minimum) mixes with every backend's tensors.
        neg = float(ml_dtypes.finfo(self.compute_dtype).min)
        additive = (1.0 - ops.cast(attention_mask, self.compute_dtype)) * neg
        # expand_dims, not `[:, None, None, :]`: LiteRT has no builtin for that strided slice (it needs Flex ops).
        additive = ops.expand_dims(ops.expand_dims(additive, 1), 1)  # (B, 1, 1, T)
        return embedded, self.encoder(embedded, additive, training=training)
