"""Shared fixtures and the hypothesis profile. Fixtures only: what tests import is in `tests.helpers`."""

from __future__ import annotations

import os
import subprocess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from parity.config import BertCnnConfig
from tests.helpers import TINY, random_inputs, tiny_checkpoint

settings.register_profile(
    "default", deadline=None, max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def tiny_config() -> BertCnnConfig:
    return BertCnnConfig(**TINY)


@pytest.fixture(params=[None, 7], ids=["seed-head", "keras-head"])
def head_config(request) -> BertCnnConfig:
    """Both seed heads: dropout->linear, and dense(ReLU)->linear."""
    return BertCnnConfig(**TINY, head_hidden_size=request.param)


@pytest.fixture
def tiny_inputs(tiny_config) -> dict[str, np.ndarray]:
    """Batch 3, seq 7: one full row, one padded, one shorter than the widest kernel."""
    return random_inputs(tiny_config, [7, 4, 2])


@pytest.fixture(scope="session")
def embedded_dir():
    from parity.io.backbone import embedded_backbone_dir

    return embedded_backbone_dir()


@pytest.fixture
def tiny_ck(tmp_path):
    """`tmp_path/ck`: the tiny checkpoint (the `TINY` config, seed 0, no tokenizer), this test's own to change."""
    return tiny_checkpoint(tmp_path / "ck")


@pytest.fixture(scope="session")
def words_ck(tmp_path_factory):
    """The tiny checkpoint with the Keras head (7) and the word-level tokenizer `write_jsonl`'s words fit; read only."""
    return tiny_checkpoint(tmp_path_factory.mktemp("words") / "ck", BertCnnConfig(**TINY, head_hidden_size=7),
                           tokenizer="words")  # fmt: skip


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
