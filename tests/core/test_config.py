"""BertCnnConfig: validation with clear errors, JSON round trip, HF import."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.config import BertCnnConfig
from tests.helpers import configs


@given(configs())
def test_json_round_trip(config):
    assert BertCnnConfig.from_dict(json.loads(config.to_json())) == config


def test_frozen_and_hashable(tiny_config):
    with pytest.raises(AttributeError):
        tiny_config.num_labels = 5
    assert hash(tiny_config) == hash(BertCnnConfig.from_dict(tiny_config.to_dict()))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"hidden_size": 13, "num_attention_heads": 3}, "divisible"),
        ({"kernel_sizes": ()}, "kernel_sizes"),
        ({"kernel_sizes": (3, 0)}, "kernel_sizes"),
        ({"num_filters": 0}, "num_filters"),
        ({"classifier_dropout": 1.0}, "classifier_dropout"),
        ({"hidden_act": "swish"}, "hidden_act"),
        ({"head_hidden_size": 0}, "head_hidden_size"),
        ({"mask_padding": 1}, "mask_padding"),
        ({"num_labels": True}, "num_labels"),
        ({"kernel_sizes": (30,), "max_position_embeddings": 20}, "max_position_embeddings"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(change, fragment):
    with pytest.raises(ValueError, match=fragment) as e:
        BertCnnConfig(**{"hidden_size": 12, "num_attention_heads": 3, **change})
    assert "Received:" in str(e.value)


def test_unknown_key_is_refused():
    with pytest.raises(ValueError, match="Unknown BertCnnConfig keys") as e:
        BertCnnConfig.from_dict({"num_filter": 3})
    assert "num_filter" in str(e.value)


def test_from_hf_config_takes_bert_part_and_head(embedded_dir):
    c = BertCnnConfig.from_hf_config(embedded_dir, num_labels=4, head_hidden_size=8)
    hf = json.loads((embedded_dir / "config.json").read_text())
    assert (c.hidden_size, c.num_hidden_layers, c.vocab_size) == (hf["hidden_size"], hf["num_hidden_layers"], 30522)
    assert (c.num_labels, c.head_hidden_size) == (4, 8)


def test_from_hf_config_refuses_other_models():
    with pytest.raises(ValueError, match="Only BERT"):
        BertCnnConfig.from_hf_config({"model_type": "roberta"})
    with pytest.raises(ValueError, match="absolute"):
        BertCnnConfig.from_hf_config({"model_type": "bert", "position_embedding_type": "relative_key"})


def test_missing_config_file_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="Received"):
        BertCnnConfig.from_json_file(tmp_path / "config.json")


def test_label_names_travel_as_hf_id2label_and_label2id(tiny_config):
    c = tiny_config.replace(label_names=("neg", "neu", "pos"))
    d = json.loads(c.to_json())
    assert d["id2label"] == {"0": "neg", "1": "neu", "2": "pos"} and d["label2id"] == {"neg": 0, "neu": 1, "pos": 2}
    assert "label_names" not in d and BertCnnConfig.from_dict(d) == c
    assert c.labels == ("neg", "neu", "pos") and tiny_config.labels == ("0", "1", "2")  # ids stand in


@pytest.mark.parametrize(
    "bad",
    [
        {"id2label": {"0": "a", "1": "b"}},  # 2 names for 3 labels
        {"id2label": {"0": "a", "2": "b", "1": "c"}, "label2id": {"a": 0, "b": 1, "c": 2}},  # not inverse
        {"id2label": {"0": "a", "1": "a", "2": "b"}},  # not distinct
        {"id2label": {"1": "a", "2": "b", "3": "c"}},  # ids not 0..n-1
    ],
)
def test_inconsistent_label_names_are_refused(tiny_config, bad):
    with pytest.raises(ValueError, match="Received"):
        BertCnnConfig.from_dict({**tiny_config.to_dict(), **bad})


def test_hf_config_keys_are_listed_once():
    hf = {"_name_or_path": "x", "architectures": ["BertModel"], "hidden_size": 12}
    with pytest.raises(ValueError, match="Unknown BertCnnConfig keys") as e:
        BertCnnConfig.from_dict(hf)
    assert str(e.value).count("_name_or_path") == 1 and str(e.value).endswith("Received: 2 unknown keys")


@given(configs(), st.integers(-3, 40))
def test_max_seq_length_is_null_or_fits_the_position_table(config, n):
    """The length the model was trained to read: [CLS] + [SEP] at least, the position table at most."""
    if 2 <= n <= config.max_position_embeddings:
        c = config.replace(max_seq_length=n)
        assert json.loads(c.to_json())["max_seq_length"] == n and c.reading_length == n
        assert BertCnnConfig.from_dict(json.loads(c.to_json())) == c
    else:
        with pytest.raises(ValueError, match=r"`max_seq_length` .* must be null or an integer from 2") as e:
            config.replace(max_seq_length=n)
        assert str(e.value).endswith(f"Received: {n!r}")


@pytest.mark.parametrize("bad", [True, 7.0, "7", [7]])
def test_max_seq_length_must_be_an_integer(tiny_config, bad):
    with pytest.raises(ValueError, match="max_seq_length"):
        BertCnnConfig.from_dict({**tiny_config.to_dict(), "max_seq_length": bad})


def test_an_unrecorded_length_stays_out_of_the_json_and_reads_the_position_table(tiny_config):
    assert tiny_config.max_seq_length is None and "max_seq_length" not in tiny_config.to_dict()
    assert tiny_config.reading_length == tiny_config.max_position_embeddings
    assert BertCnnConfig.from_dict({**tiny_config.to_dict(), "max_seq_length": None}) == tiny_config


def test_hugging_face_keeps_the_length_under_its_json_name(tiny_config, tmp_path):
    """`max_length` would be dropped by PretrainedConfig (a generation setting); `max_seq_length` survives."""
    transformers = pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text(tiny_config.replace(max_seq_length=9).to_json())
    assert transformers.PretrainedConfig.from_pretrained(tmp_path).max_seq_length == 9
    (tmp_path / "config.json").write_text(json.dumps({**tiny_config.to_dict(), "max_length": 9}))
    assert transformers.PretrainedConfig.from_pretrained(tmp_path).to_dict().get("max_length") != 9
