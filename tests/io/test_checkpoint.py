"""Canonical checkpoints: a bit-exact round trip, a config that disagrees with the tensors refused, no half saves."""

import pytest

from parity.io.checkpoint import load_checkpoint, save_checkpoint
from parity.layout import PortError
from tests.helpers import random_tensors


def test_checkpoint_round_trip_and_config_disagreement(tiny_config, tmp_path):
    tensors = random_tensors(tiny_config)
    save_checkpoint(tmp_path / "ck", tiny_config, tensors)
    config, back = load_checkpoint(tmp_path / "ck")
    assert config == tiny_config
    assert all(back[k].tobytes() == v.tobytes() for k, v in tensors.items())
    (tmp_path / "ck" / "config.json").write_text(tiny_config.replace(num_filters=6).to_json())
    with pytest.raises(PortError, match=r"wrong shape: convs\.0\.weight"):
        load_checkpoint(tmp_path / "ck")


def test_failed_save_leaves_nothing(tiny_config, tmp_path):
    tensors = random_tensors(tiny_config)
    del tensors["fc.weight"]
    with pytest.raises(PortError):
        save_checkpoint(tmp_path / "ck", tiny_config, tensors)
    assert list(tmp_path.iterdir()) == []
