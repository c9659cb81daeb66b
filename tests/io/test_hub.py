"""Hugging Face model ids resolve through the hub's own cache (offline here), as `from_pretrained` users expect.

The network is unreachable, so the tests build a cache in the hub's own layout
(`models--ORG--NAME/snapshots/<commit>/...`, `refs/<branch>`): what huggingface_hub reads offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import hub_cache

pytest.importorskip("huggingface_hub")

REPO = Path(__file__).resolve().parents[2]
COMMIT, TAGGED = "1" * 40, "2" * 40


def run(cache: Path, *argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "parity", *argv]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cache.parent)


@pytest.fixture
def cached(tmp_path):
    from tests.helpers import tiny_hf_bert

    tiny_hf_bert(tmp_path / "hf")
    return hub_cache(tmp_path / "cache", "acme/tiny-bert", tmp_path / "hf", refs={"main": COMMIT, "v1": TAGGED})


def test_init_takes_a_hub_id_from_the_cache_offline(cached, tmp_path):
    proc = run(cached, "init", str(tmp_path / "ck"), "--backbone", "acme/tiny-bert", "--num-filters", "5")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ck" / "tokenizer.json").is_file()  # carried from the snapshot
    pinned = run(cached, "init", str(tmp_path / "ck1"), "--backbone", "acme/tiny-bert", "--revision", "v1")
    assert pinned.returncode == 0, pinned.stderr


def test_from_backbone_and_from_pretrained_take_hub_ids(cached, tmp_path):
    code = (
        "from bertcnn_torch import BertCNN\n"
        "m = BertCNN.from_backbone('acme/tiny-bert', seed=0, num_filters=5)\n"
        f"m.save_pretrained({str(tmp_path / 'saved')!r})\n"
        "print(m.name_or_path)\n"
    )
    proc = run(cached, code=code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert COMMIT in proc.stdout and (tmp_path / "saved" / "tokenizer.json").is_file()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["--backbone", "acme/not-cached"],
            "'acme/not-cached' is not a local path, and as a hub id it is not in the local",
        ),
        (["--backbone", "acme/tiny-bert", "--revision", "v9"], "acme/tiny-bert"),
    ],
)
def test_an_id_that_is_not_cached_offline_is_one_line_and_nothing_written(cached, tmp_path, argv, said):
    proc = run(cached, "init", str(tmp_path / "ck"), *argv)
    assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "HF_HUB_OFFLINE=0" in proc.stderr
    assert not (tmp_path / "ck").exists()


def test_a_local_directory_still_wins_and_revision_on_it_is_refused(cached, tmp_path):
    proc = run(cached, "init", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"), "--revision", "v1")
    assert proc.returncode == 2 and "--revision pins a Hugging Face hub id" in proc.stderr
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "bert"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("runs/ck2", ""),  # runs/ exists: a path, never a hub id
        ("runs/chekpoint", " (did you mean 'runs/checkpoint'?)"),
        ("chekpoint", " (did you mean 'checkpoint'?)"),  # not on the hub either: the near miss is named
    ],
)
def test_a_mistyped_local_path_is_not_found_locally_not_a_hub_matter(tmp_path, name, hint):
    (tmp_path / "runs" / "checkpoint").mkdir(parents=True)
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "cache").mkdir()
    proc = run(tmp_path / "cache", "predict", "--checkpoint", name, "--framework", "torch", "hi")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        f"bertcnn predict: error: --checkpoint {name!r} not found locally{hint}: no such file or folder; expected "
        f"an existing local path (check it; a Hugging Face hub id has the form org/name). Received: {name!r}\n"
    )
    assert "HF_HUB_OFFLINE" not in proc.stderr


def test_a_hub_id_is_still_a_hub_id_when_no_local_path_is_meant(cached, tmp_path):
    (tmp_path / "acme-tiny-bert").mkdir()  # not close enough to shadow the cached id, which resolves
    proc = run(cached, "init", str(tmp_path / "ck"), "--backbone", "acme/tiny-bert", "--num-filters", "5")
    assert proc.returncode == 0, proc.stderr
