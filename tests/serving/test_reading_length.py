"""An export's reading length: manifest.json and config.json carry it and must agree; the check reads there.

No export is made here: the manifest, the config and the check's cases are read as data (a
model file that exists is all `read_manifest` asks of it).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.config import BertCnnConfig
from parity.serving.check import check_cases
from parity.serving.directory import load_config
from parity.serving.manifest import Manifest, read_manifest
from tests.helpers import TINY, tiny_checkpoint

CONFIG = BertCnnConfig(**TINY, max_seq_length=6)


def fake_export(where, *, config: BertCnnConfig = CONFIG, length="same"):
    where.mkdir(parents=True, exist_ok=True)
    (where / "model.onnx").write_bytes(b"not read here")
    (where / "config.json").write_text(config.to_json())
    n = config.max_seq_length if length == "same" else length
    manifest = Manifest("onnx", "torch", "model.onnx", "0" * 64, "ck", max_seq_length=n)
    (where / "manifest.json").write_text(manifest.to_json())
    return where


def test_manifest_and_config_carry_one_length(tmp_path):
    d = fake_export(tmp_path / "x")
    assert read_manifest(d).max_seq_length == 6 and load_config(d).max_seq_length == 6
    old = fake_export(tmp_path / "old", config=BertCnnConfig(**TINY))  # an export from before: neither records it
    assert json.loads((old / "manifest.json").read_text())["max_seq_length"] is None
    assert load_config(old).reading_length == TINY["max_position_embeddings"]


@given(length=st.one_of(st.none(), st.integers(1, 30)))
def test_a_manifest_that_disagrees_with_config_json_is_refused(tmp_path_factory, length):
    d = fake_export(tmp_path_factory.mktemp("e"), length=length)
    if length == 6:
        assert load_config(d) == CONFIG
        return
    with pytest.raises(ValueError, match=r"max_seq_length .* disagrees with config\.json.s 6") as e:
        load_config(d)
    assert str(e.value).startswith(str(d / "manifest.json")) and "Re-export the model" in str(e.value)


@pytest.mark.parametrize("bad", [0, -3, True, "6", 6.0])
def test_a_manifest_length_that_is_not_a_positive_integer_is_refused(tmp_path, bad):
    d = fake_export(tmp_path, length=bad)
    with pytest.raises(ValueError, match="max_seq_length must be null or a positive integer") as e:
        read_manifest(d)
    assert str(e.value).endswith(f"Received: max_seq_length={bad!r}")


def test_the_artifact_check_reads_text_where_the_model_does(tmp_path):
    ck = tiny_checkpoint(tmp_path / "ck", CONFIG, tokenizer="words")
    notes: list[str] = []
    cases = dict(check_cases(CONFIG, ck, notes=notes))
    widths = {name: batch["input_ids"].shape[1] for name, batch in cases.items()}
    assert widths["sentences"] == 6 and "length-6" in widths and max(widths.values()) == 6
    assert notes and "longer than 6 tokens (max_seq_length" in notes[0]
    unrecorded = dict(check_cases(CONFIG.replace(max_seq_length=None), ck))
    assert unrecorded["length-23"]["input_ids"].shape[1] == 23  # the position table when nothing is recorded
