"""`from_pretrained` / `save_pretrained` / `push_to_hub` take Hugging Face's standard keywords: each used to be
`TypeError: unexpected keyword argument`. What cannot be done here is refused in one line, before any write."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from parity.config import BertCnnConfig
from parity.io.checkpoint import load_checkpoint
from parity.io.shards import INDEX_NAME
from tests.helpers import MINILM_VOCAB, hub_cache, tiny_checkpoint

torch = pytest.importorskip("torch", reason="the torch extra is not installed")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    config = BertCnnConfig(**MINILM_VOCAB, label_names=("neg", "mid", "pos"))
    return tiny_checkpoint(tmp_path_factory.mktemp("kw") / "ck", config, seed=2, tokenizer=embedded_dir)


@pytest.mark.parametrize(
    ("keywords", "dtype"),
    [
        ({"dtype": "bfloat16"}, "bfloat16"),
        ({"dtype": "auto"}, "float32"),
        ({"torch_dtype": "float16"}, "float16"),
        ({"dtype": torch.float64}, "float64"),
        ({"torch_dtype": torch.bfloat16, "dtype": torch.bfloat16}, "bfloat16"),
    ],
)
def test_dtype_and_torch_dtype(ck, keywords, dtype):
    from bertcnn_torch import BertCNN

    model = BertCNN.from_pretrained(ck, **keywords)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}


@pytest.mark.parametrize("device_map", ["cpu", {"": "cpu"}, torch.device("cpu"), "auto", None])
def test_device_map_puts_the_model_on_one_device(ck, device_map):
    from bertcnn_torch import BertCNN

    expected = "cuda" if device_map == "auto" and torch.cuda.is_available() else "cpu"
    model = BertCNN.from_pretrained(ck, device_map=device_map)
    assert {p.device.type for p in model.parameters()} == {expected}


@pytest.mark.parametrize(
    ("keywords", "fragment"),
    [
        ({"device_map": {"bert": "cpu", "fc": "cuda:0"}}, "one device"),
        ({"device_map": "tpu:7"}, "device_map must be"),
        ({"dtype": "int8"}, "dtype must be"),
        ({"dtype": "float16", "torch_dtype": "bfloat16"}, "not both"),
    ],
)
def test_what_from_pretrained_cannot_do_is_one_line(ck, keywords, fragment):
    from bertcnn_torch import BertCNN

    with pytest.raises(ValueError, match=fragment) as e:
        BertCNN.from_pretrained(ck, **keywords)
    assert "\n" not in str(e.value) and "Received: " in str(e.value)


def test_revision_cache_dir_and_local_files_only_read_the_hub_cache(ck, tmp_path):
    from bertcnn_torch import BertCNN

    cache = hub_cache(tmp_path / "cache", "acme/tiny-bertcnn", ck, refs={"main": "1" * 40, "v1": "2" * 40})
    for revision in (None, "v1"):
        model = BertCNN.from_pretrained("acme/tiny-bertcnn", cache_dir=cache, local_files_only=True, revision=revision)
        assert model.config.label_names == ("neg", "mid", "pos")
    with pytest.raises(ValueError, match="local_files_only=True") as e:
        BertCNN.from_pretrained("acme/elsewhere", cache_dir=cache, local_files_only=True)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="revision= pins a Hugging Face hub id"):
        BertCNN.from_pretrained(ck, revision="v1")


def test_max_shard_size_writes_shards_and_an_index_both_sides_read(ck, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from bertcnn_torch import BertCNN

    model = BertCNN.from_pretrained(ck)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="5KB")  # 1.48 MB, 1.47 MB of it word embeddings
    index = json.loads((tmp_path / "sharded" / INDEX_NAME).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3 and not (tmp_path / "sharded" / "model.safetensors").exists()
    for shard in shards:  # at most 5 kB of tensors, or one tensor larger than that alone (as transformers does)
        names = [k for k, v in index["weight_map"].items() if v == shard]
        assert len(names) == 1 or (tmp_path / "sharded" / shard).stat().st_size <= 5_000 + 4_096  # + the header
    (_, before), (_, after) = load_checkpoint(ck), load_checkpoint(tmp_path / "sharded")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    ids = {"input_ids": torch.tensor([[101, 7592, 2088, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "sharded").eval()
    with torch.inference_mode():
        assert torch.equal(hf(**ids).logits, model(**ids))


@pytest.mark.parametrize(
    ("keywords", "fragment"),
    [
        ({"safe_serialization": False}, "safetensors only"),
        ({"max_shard_size": "lots"}, "max_shard_size must be"),
        ({"max_shard_size": 0}, "max_shard_size must be"),
        ({"push_to_hub": True, "repo_id": "acme/x"}, "HF_HUB_OFFLINE"),
    ],
)
def test_what_save_pretrained_cannot_do_is_one_line_and_writes_nothing(ck, tmp_path, monkeypatch, keywords, fragment):
    from bertcnn_torch import BertCNN

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=fragment) as e:
        BertCNN.from_pretrained(ck).save_pretrained(tmp_path / "out", **keywords)
    assert "\n" not in str(e.value) and "Received: " in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_push_to_hub_offline_or_unreachable_is_one_line(tmp_path):
    """Offline (bertcnn's default) and with the hub unreachable (a closed local port as HF_ENDPOINT): one line each,
    nothing written. huggingface_hub reads its endpoint at import, hence the child."""
    code = (
        "import sys, numpy as np\n"
        "from bertcnn_torch import BertCNN\n"
        "from parity.config import BertCnnConfig\n"
        "from tests.helpers import TINY, random_tensors\n"
        "c = BertCnnConfig(**TINY)\n"
        "m = BertCNN._from_tensors(c, random_tensors(c))\n"
        "for call in (lambda: m.push_to_hub('acme/x'), lambda: m.save_pretrained('out', push_to_hub=True)):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
    )
    for offline, endpoint, fragment in (("1", None, "HF_HUB_OFFLINE"), ("0", "http://127.0.0.1:9", "did not take")):
        env = dict(os.environ, HF_HUB_OFFLINE=offline, PYTHONPATH=REPO)
        if endpoint:
            env["HF_ENDPOINT"], env["HF_TOKEN"] = endpoint, "hf_x"
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        lines = proc.stdout.splitlines()
        assert len(lines) == 2 and all(fragment in line and "Received: " in line for line in lines), proc.stdout
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_keras_takes_auto_too(ck):
    keras_build = pytest.importorskip("bertcnn_tf", reason="the tf extra is not installed")

    assert keras_build.BertCNN.from_pretrained(ck, dtype="auto").dtype_policy.name == "float32"
