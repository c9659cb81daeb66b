"""Canonical checkpoints: a bit-exact round trip, a config that disagrees with the tensors refused, no half saves."""

import json
from pathlib import Path

import pytest

from parity.io.checkpoint import copy_tokenizer, load_checkpoint, save_checkpoint
from parity.io.reader import read_weights
from parity.layout import PortError
from tests.helpers import minilm_vocab_checkpoint, random_tensors


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


# -- the length the model reads, in the checkpoint's files ---------------------------------------------------------
LONG = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness."


def test_the_tokenizer_files_truncate_at_the_models_length_for_every_reader(tmp_path, embedded_dir):
    """tokenizer.json (the `tokenizers` library) and tokenizer_config.json (Hugging Face's AutoTokenizer) cut at 11."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer as RustTokenizer

    from parity.tokenize import Tokenizer

    ck = minilm_vocab_checkpoint(tmp_path / "ck", embedded_dir, max_seq_length=11)
    ours = [int(i) for i in Tokenizer(ck, max_length=11).encode([LONG])[0][0]]
    assert len(ours) == 11 and ours[-1] == 102  # [SEP] kept
    raw = RustTokenizer.from_file(str(ck / "tokenizer.json"))
    raw.no_padding()  # MiniLM's file pads to 128 (sentence-transformers); truncation is the point here
    assert raw.encode(LONG).ids == ours
    hf = transformers.AutoTokenizer.from_pretrained(ck)
    assert hf.model_max_length == 11 and hf(LONG, truncation=True)["input_ids"] == ours
    # Nothing else in the files changed.
    for name, key in (("tokenizer.json", "truncation"), ("tokenizer_config.json", "model_max_length")):
        source, copy = (json.loads((d / name).read_text(encoding="utf-8")) for d in (embedded_dir, ck))
        assert {k: v for k, v in copy.items() if k != key} == {k: v for k, v in source.items() if k != key}


def test_tokenizer_files_are_copied_as_they_are_without_a_length_or_when_not_json(tmp_path, embedded_dir):
    copy_tokenizer(embedded_dir, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (embedded_dir / name).read_bytes()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tokenizer_config.json").write_bytes(b"\xff not json")
    (tmp_path / "dst").mkdir()
    copy_tokenizer(tmp_path / "src", tmp_path / "dst", max_length=9)
    assert (tmp_path / "dst" / "tokenizer_config.json").read_bytes() == b"\xff not json"


def recipe_dir(tiny_config, tmp_path, recipe) -> Path:
    d = save_checkpoint(tmp_path / "run", tiny_config, random_tensors(tiny_config))
    (d / "recipe.json").write_text(recipe if isinstance(recipe, str) else json.dumps(recipe), encoding="utf-8")
    return d


def test_a_training_directory_without_a_recorded_length_reads_its_recipes(tiny_config, tmp_path):
    """Saved before config.json recorded it: the run's recipe.json max_length (the position table at most)."""
    assert read_weights(recipe_dir(tiny_config, tmp_path / "a", {"max_length": 9})).config.max_seq_length == 9
    assert read_weights(recipe_dir(tiny_config, tmp_path / "b", {"max_length": 128})).config.max_seq_length == 23
    recorded = recipe_dir(tiny_config.replace(max_seq_length=7), tmp_path / "c", {"max_length": 9})
    assert read_weights(recorded).config.max_seq_length == 7  # config.json wins


@pytest.mark.parametrize("recipe", ['{"max_length": 0}', '{"max_length": true}', '{"max_length": 1}', "[1"])
def test_a_broken_recipe_is_one_line_naming_it(tiny_config, tmp_path, recipe):
    d = recipe_dir(tiny_config, tmp_path, recipe)
    with pytest.raises(ValueError) as e:
        read_weights(d)
    assert str(e.value).startswith(str(d / "recipe.json")) and "\n" not in str(e.value)
    assert "Received:" in str(e.value)
