"""Matmul FLOPs of the model from its config alone, and model FLOP utilisation (MFU), as nanoGPT's `estimate_mfu`.

Framework-neutral arithmetic on a `BertCnnConfig` (no numpy, no framework): what the
benchmarks divide by a device's measured matmul rate. `tests/core/test_flops.py` checks
every term against torch's own FLOP counter on the PyTorch build.

The derivation. A matmul of an (m x k) by a (k x n) matrix is m*n*k multiply-adds, counted
as 2*m*n*k FLOPs. One sequence of T real tokens, hidden size H, intermediate size I,
A heads of d = H/A, N encoder layers:

- each encoder layer: the Q, K and V projections 3 * 2*T*H*H; the scores Q.K^T, per head
  (T x d).(d x T), 2*T*T*d * A = 2*T*T*H; the weighted values probs.V, 2*T*T*H as well; the
  attention output projection 2*T*H*H; the feed-forward network 2*T*H*I + 2*T*I*H;
- the pooler (BERT's dense layer on the first token): 2*H*H. The PyTorch build and
  transformers compute it (the PyTorch build does not use it); the Keras build skips it;
- the CNN head: the PyTorch build right-pads every sequence by K - 1 positions (K the widest
  kernel: a constant pad keeps traced graphs free of a length guard) and zeroes the windows past
  max(T, K), so a width-k convolution slides over L = T + K - 1 positions: L - k + 1 windows of
  k*H inputs and F filters, 2*(L-k+1)*k*H*F (the Keras build pads only to max(T, K): K - 1
  windows fewer per width: 0.12 % of MiniLM's forward FLOPs at 128 tokens); then the classifier on
  the n_widths*F pooled features,
  2*(n_widths*F)*C for C labels (with `head_hidden_size` D: 2*(n_widths*F)*D + 2*D*C);
- transformers' `BertForSequenceClassification` head ("hf"): its classifier on the pooled
  token, 2*H*C.

Not counted, as in the usual MFU: embedding lookups (gathers), bias additions, softmax,
LayerNorm, GELU/ReLU, masks and the max-pooling (no matmul; a small share of the time on a
GPU). Training counts 3x the forward: the backward pass computes, for every matmul, the
gradient of its input and of its weight, each a matmul of the same size (so the count is
exact but for the weights the loss never reaches: BERT's pooler has no backward).
"""

from __future__ import annotations

from typing import NamedTuple

from parity.config import BertCnnConfig

HEADS = ("cnn", "hf")
TRAINING_FACTOR = 3  # forward + backward (2x forward): the usual convention


def encoder_flops(config: BertCnnConfig, seq_len: int, *, pooler: bool = True) -> dict[str, int]:
    """The encoder's matmul FLOPs for one sequence of `seq_len` real tokens: dense layers, attention, pooler."""
    t = _length(seq_len)
    h, i = config.hidden_size, config.intermediate_size
    dense = 3 * 2 * t * h * h + 2 * t * h * h + 2 * t * h * i + 2 * t * i * h  # QKV, attention output, FFN
    attention = 2 * t * t * h + 2 * t * t * h  # scores and probs.V, all heads
    return {
        "encoder_dense": config.num_hidden_layers * dense,
        "encoder_attention": config.num_hidden_layers * attention,
        "pooler": 2 * h * h if pooler else 0,
    }


def head_flops(config: BertCnnConfig, seq_len: int, head: str = "cnn") -> dict[str, int]:
    """The classification head's matmul FLOPs: the CNN head (`conv`, `classifier`) or transformers' ("hf")."""
    t = _length(seq_len)
    if head == "hf":
        return {"classifier": 2 * config.hidden_size * config.num_labels}
    if head != "cnn":
        raise ValueError(f"head must be one of {list(HEADS)}. Received: {head!r}")
    positions = t + config.max_kernel_size - 1  # the PyTorch build's constant pad (see the module's docstring)
    conv = sum(2 * (positions - k + 1) * k * config.hidden_size * config.num_filters for k in config.kernel_sizes)
    d, c = config.head_hidden_size, config.num_labels
    classifier = 2 * config.pooled_size * d + 2 * d * c if d else 2 * config.pooled_size * c
    return {"conv": conv, "classifier": classifier}


def forward_flops(config: BertCnnConfig, seq_len: int, head: str = "cnn", *, pooler: bool = True) -> dict[str, int]:
    """Matmul FLOPs of one forward of one sequence, by part, with their `total` (see the module's derivation).

    `pooler=False` for the Keras build, which does not compute BERT's pooler; `head="hf"`
    for transformers' BertForSequenceClassification.
    """
    parts = {**encoder_flops(config, seq_len, pooler=pooler), **head_flops(config, seq_len, head)}
    parts["total"] = sum(parts.values())
    return parts


def training_flops(config: BertCnnConfig, seq_len: int, head: str = "cnn", *, pooler: bool = True) -> int:
    """Matmul FLOPs of one training step per sequence: 3x the forward (backward ~ 2x forward)."""
    return TRAINING_FACTOR * forward_flops(config, seq_len, head, pooler=pooler)["total"]


class Utilisation(NamedTuple):
    flops_per_s: float  # achieved
    mfu: float  # achieved / peak


def mfu(flops_per_item: float, items_per_s: float, peak_flops_per_s: float) -> Utilisation:
    """Achieved FLOP/s (`flops_per_item` x `items_per_s`) and its fraction of a (measured) peak FLOP/s."""
    if not peak_flops_per_s > 0:
        raise ValueError(f"peak_flops_per_s must be a positive number. Received: {peak_flops_per_s!r}")
    achieved = flops_per_item * items_per_s
    return Utilisation(achieved, achieved / peak_flops_per_s)


def _length(seq_len: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer. Received: {seq_len!r}")
    return seq_len
