"""benchmarks/gpu.py's models and how each is called: the sizes, their weights, the builds on a device.

The PyTorch build comes from `bertcnn_torch.runtime` (`build`, `predictor`), the Keras build
from `bertcnn_tf.runtime.build` on JAX, under one `jax.jit` of `stateless_call` (as
`bertcnn_tf.runtime.taps` runs it there), and transformers' BertForSequenceClassification
as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import _util as U
import numpy as np

SIZES = ("minilm", "base", "tiny")
# Small on purpose, for the CPU run the test suite makes: the tests' sizes, but the vocabulary of
# MiniLM/BERT so the corpus tokenises, and room for its 32-token inputs.
TINY = {**U.TINY, "vocab_size": 30522, "hidden_size": 24, "max_position_embeddings": 48}


def random_tensors(config) -> dict[str, np.ndarray]:
    """BERT's own initialisation, seeded (as benchmarks/forward_throughput.py): speed and parity do not
    depend on the values, but these have the scale of a real checkpoint."""
    import torch

    from bertcnn_torch import BertCNN

    torch.manual_seed(0)
    return {k: v.numpy() for k, v in BertCNN(config).state_dict().items()}


def load_model(size: str, backbone: Path):
    """(config, canonical float32 tensors, description) for one model size."""
    from parity.config import BertCnnConfig
    from parity.io.backbone import backbone_checkpoint

    if size == "minilm":
        config, tensors, _ = backbone_checkpoint(backbone, seed=0)
        return config, tensors, "all-MiniLM-L6-v2 + head(seed=0)"
    config = BertCnnConfig() if size == "base" else BertCnnConfig(**TINY)
    return config, random_tensors(config), f"{size} size, random weights (torch.manual_seed(0), BERT init)"


def full_batch(config, rows: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded ids above BERT's special tokens, every token real (so the FLOP count is exact), one segment."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(1000, config.vocab_size, (rows, seq)).astype(np.int64),
        "attention_mask": np.ones((rows, seq), np.int64),
        "token_type_ids": np.zeros((rows, seq), np.int64),
    }


def hf_model(config, tensors, device: str, dtype):
    """transformers' BertForSequenceClassification (SDPA) holding the BERT tensors, in eval mode on `device`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    hf = BertForSequenceClassification(
        BertConfig(**config.to_hf_dict(), num_labels=config.num_labels, attn_implementation="sdpa")
    )
    hf.bert.load_state_dict(
        {k.removeprefix("bert."): torch.from_numpy(v) for k, v in tensors.items() if k.startswith("bert.")}
    )
    return hf.to(device=device, dtype=dtype).eval()


_KERAS: dict = {}


def keras_bf16_model(config, tensors, device: str):
    """The Keras build in bf16 on `device`, built once per model: on JAX every initializer shape
    compiles once, which is most of a small model's build time."""
    from bertcnn_tf.runtime import _keras_device
    from bertcnn_tf.runtime import build as build_keras

    key = (id(tensors), device)
    if key not in _KERAS:
        with _keras_device(device):
            _KERAS[key] = build_keras(config, tensors, "bfloat16")
    return _KERAS[key]


@dataclass
class JaxCall:
    """The Keras build under one `jax.jit` of `stateless_call`, its variables resident on one JAX device."""

    fn: object  # the jitted (trainable, non_trainable, inputs) -> logits
    variables: tuple[list, list]
    device: object

    def inputs(self, x: dict[str, np.ndarray]) -> dict:
        """int32 inputs on the device (the Keras build's ids)."""
        import jax

        return {k: jax.device_put(np.asarray(v, np.int32), self.device) for k, v in x.items()}

    def __call__(self, x: dict) -> object:
        return self.fn(*self.variables, x)


def keras_jit(model, device: str) -> JaxCall:
    """`model` ready to call under one `jax.jit` on `device` ("cuda": the first GPU JAX sees)."""
    import jax

    jdev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    put = lambda vs: [jax.device_put(v.value, jdev) for v in vs]  # noqa: E731
    fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, **x, training=False)[0])
    return JaxCall(fn, (put(model.trainable_variables), put(model.non_trainable_variables)), jdev)


def jax_forward(model, config, device: str):
    """numpy in, float32 numpy logits out, through `keras_jit` (inputs checked here: a traced call cannot)."""
    from parity.inputs import check_inputs

    call = keras_jit(model, device)

    def forward(x: dict[str, np.ndarray]) -> np.ndarray:
        check_inputs(x["input_ids"], x.get("attention_mask"), x.get("token_type_ids"), config)
        return np.asarray(call(call.inputs(x))).astype(np.float32)

    return forward
