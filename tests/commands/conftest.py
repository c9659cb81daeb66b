"""Fixtures of the command-line tests."""

import pytest

from parity.commands import main


@pytest.fixture(scope="session")
def minilm_ck(tmp_path_factory, embedded_dir):
    """The embedded MiniLM with a seeded head of 3 labels and kernels 2, 3, as `bertcnn init` makes it; read only."""
    d = tmp_path_factory.mktemp("ck") / "ck"
    assert main(["init", str(d), "--backbone", str(embedded_dir), "--num-labels", "3", "--kernel-sizes", "2,3"]) == 0
    return d
