"""Porting a model trained with the seeds' class: `bertcnn port seed.pt ck/ --backbone HF_BERT_DIR`.

The BERT sizes come from the backbone's config.json, the head from the tensors, the tokenizer
from the backbone, and pooling is the seeds' (mask_padding=False) unless asked otherwise.
"""

import json

import numpy as np
import pytest
import torch

from parity.commands import main
from parity.config import BertCnnConfig
from parity.tokenize import Tokenizer
from tests.helpers import TINY, random_tensors, seed_model, tiny_hf_bert


@pytest.fixture(scope="module")
def seed_saved(tmp_path_factory):
    """A seed-class model whose BERT was 'fine-tuned' away from the backbone, saved as its state_dict."""
    d = tmp_path_factory.mktemp("seed")
    bert = tiny_hf_bert(d / "hf")
    torch.manual_seed(0)
    seed = seed_model(bert.replace(num_filters=4, kernel_sizes=(2, 3), num_labels=5)).eval()
    torch.save(seed.state_dict(), d / "seed.pt")
    return d, seed


def test_backbone_gives_config_tokenizer_and_the_seeds_logits(seed_saved, tmp_path, capsys):
    d, seed = seed_saved
    assert main(["port", str(d / "seed.pt"), str(tmp_path / "ck"), "--backbone", str(d / "hf")]) == 0
    err = capsys.readouterr().err
    assert "note: mask_padding=False: the seeds' pooling" in err and "tokenizer carried from the backbone" in err
    config = BertCnnConfig.from_json_file(tmp_path / "ck" / "config.json")
    assert config == BertCnnConfig(**{**TINY, "kernel_sizes": (2, 3), "num_filters": 4, "num_labels": 5}).replace(
        mask_padding=False
    )
    assert {"tokenizer.json", "vocab.txt"} <= {p.name for p in (tmp_path / "ck").iterdir()}

    from bertcnn_torch import BertCNN

    batch = Tokenizer(tmp_path / "ck")(["Call me Ishmael.", "Hi", "it was the best of times"])
    with torch.no_grad():
        want = seed(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])).numpy()
        got = BertCNN.from_pretrained(tmp_path / "ck").eval()(**{k: torch.from_numpy(v) for k, v in batch.items()})
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)  # same function: padding counts in the max


def test_mask_padding_is_a_choice_and_a_hf_config_json_is_understood(seed_saved, tmp_path, capsys):
    d, _ = seed_saved
    argv = ["port", str(d / "seed.pt"), str(tmp_path / "ck"), "--config", str(d / "hf" / "config.json")]
    assert main([*argv, "--mask-padding"]) == 0
    err = capsys.readouterr().err
    assert "mask_padding=False" not in err and "has no tokenizer" in err and "--tokenizer HF_BERT_DIR" in err
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["mask_padding"] is True
    assert not (tmp_path / "ck" / "tokenizer.json").exists()
    # attach one afterwards
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "ck2"), "--tokenizer", str(d / "hf")]) == 0
    assert Tokenizer(tmp_path / "ck2")(["hi"])["input_ids"].tolist() == [[2, 10, 3]]


def test_keras_seed_head_read_off_the_tensors(tmp_path, capsys):
    tiny_hf_bert(tmp_path / "hf")
    want = BertCnnConfig(**TINY, head_hidden_size=7, mask_padding=False)
    sd = {k: torch.from_numpy(v) for k, v in random_tensors(want).items()}
    sd["bert.embeddings.position_ids"] = torch.arange(TINY["max_position_embeddings"])[None]  # old transformers
    torch.save(sd, tmp_path / "seed.pt")
    assert (
        main(["port", str(tmp_path / "seed.pt"), str(tmp_path / "m.safetensors"), "--backbone", str(tmp_path / "hf")])
        == 0
    )
    assert "bert.embeddings.position_ids (an index buffer" in capsys.readouterr().err
    assert main(["port", str(tmp_path / "m.safetensors"), str(tmp_path / "ck")]) == 0
    assert BertCnnConfig.from_json_file(tmp_path / "ck" / "config.json") == want


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--no-mask-padding"], "--mask-padding/--no-mask-padding only apply when the config is built from"),
        (["--tokenizer", "."], "--tokenizer must be a folder with tokenizer.json"),
    ],
)
def test_refusals_are_one_line_exit_2(tmp_path, capsys, extra, fragment):
    ck = BertCnnConfig(**TINY)
    (tmp_path / "c.json").write_text(ck.to_json())
    sd = {k: torch.from_numpy(v) for k, v in random_tensors(ck).items()}
    torch.save(sd, tmp_path / "w.pt")
    assert (
        main(["port", str(tmp_path / "w.pt"), str(tmp_path / "out"), "--config", str(tmp_path / "c.json"), *extra]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Received: " in err
    assert not (tmp_path / "out").exists()


def test_hf_config_keys_are_listed_once():
    hf = {"_name_or_path": "x", "architectures": ["BertModel"], "hidden_size": 12}
    with pytest.raises(ValueError, match="Unknown BertCnnConfig keys") as e:
        BertCnnConfig.from_dict(hf)
    assert str(e.value).count("_name_or_path") == 1 and str(e.value).endswith("Received: 2 unknown keys")
