"""Shared fixtures and hypothesis strategies.

Sizes are odd and distinct (batch 3, seq 7, hidden 12, heads 3, intermediate 37,
vocab 99) so a wrong transpose or reshape cannot pass by symmetry.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from parity.config import BertCnnConfig
from parity.inputs import random_batch
from parity.layout import rows

settings.register_profile(
    "default", deadline=None, max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

TINY = dict(
    vocab_size=99,
    hidden_size=12,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=23,
    type_vocab_size=2,
    kernel_sizes=(2, 3, 5),
    num_filters=5,
    num_labels=3,
)


@pytest.fixture
def tiny_config() -> BertCnnConfig:
    return BertCnnConfig(**TINY)


@pytest.fixture(params=[None, 7], ids=["seed-head", "keras-head"])
def head_config(request) -> BertCnnConfig:
    """Both seed heads: dropout->linear, and dense(ReLU)->linear."""
    return BertCnnConfig(**TINY, head_hidden_size=request.param)


def random_tensors(config: BertCnnConfig, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Canonical tensors with distinct random values: any mix-up changes the output."""
    rng = np.random.default_rng(seed)
    return {r.torch_name: (rng.standard_normal(r.torch_shape) * 0.2).astype(dtype) for r in rows(config)}


random_inputs = random_batch  # right-padded ids/mask/token types for given real lengths


@pytest.fixture
def tiny_inputs(tiny_config) -> dict[str, np.ndarray]:
    """Batch 3, seq 7: one full row, one padded, one shorter than the widest kernel."""
    return random_inputs(tiny_config, [7, 4, 2])


@st.composite
def configs(draw, max_layers: int = 2) -> BertCnnConfig:
    """Small random configs: heads divide hidden, kernel widths include 1 and even widths."""
    heads = draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 5))
    kernels = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True))
    return BertCnnConfig(
        vocab_size=draw(st.integers(5, 60)),
        hidden_size=heads * head_dim,
        num_hidden_layers=draw(st.integers(1, max_layers)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(1, 19)),
        max_position_embeddings=draw(st.integers(8, 16)),
        type_vocab_size=draw(st.integers(1, 3)),
        hidden_act=draw(st.sampled_from(["gelu", "relu", "gelu_new"])),
        kernel_sizes=tuple(kernels),
        num_filters=draw(st.integers(1, 6)),
        num_labels=draw(st.integers(1, 4)),
        head_hidden_size=draw(st.one_of(st.none(), st.integers(1, 6))),
        mask_padding=draw(st.booleans()),
    )


@st.composite
def config_and_inputs(draw, max_layers: int = 2):
    """A config and a batch for it: lengths 1..max_pos, some rows padded, token types."""
    config = draw(configs(max_layers=max_layers))
    batch = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, config.max_position_embeddings), min_size=batch, max_size=batch))
    return config, random_inputs(config, lengths, seed=draw(st.integers(0, 2**16)))


@pytest.fixture(scope="session")
def embedded_dir():
    from parity.io.backbone import embedded_backbone_dir

    return embedded_backbone_dir()


def worst_gap(config, tensors, runner, tmp_path) -> float:
    """An export's runner on every artifact-check case vs the PyTorch build: the worst logits gap."""
    from bertcnn_torch.runtime import logits as torch_logits
    from parity.serving.check import check_cases

    cases = [b for _, b in check_cases(config, tmp_path)]
    worst = 0.0
    for batch, ref in zip(cases, torch_logits(config, tensors, cases), strict=True):
        got = runner(batch)
        assert got.dtype == np.float32 and got.shape == ref.shape
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst
