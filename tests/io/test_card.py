"""The model card (README.md) every checkpoint writer leaves, read by the hub's own parser
(`huggingface_hub.ModelCard`): labels, backbone, the run's metrics, the parity figures; never over a
README.md of the user's."""

from __future__ import annotations

import json

import pytest

from parity.commands import main
from parity.io.backbone import EMBEDDED_ID
from parity.tolerance import tolerance_for
from tests.helpers import tiny_checkpoint, write_jsonl

hub = pytest.importorskip("huggingface_hub")


def card(directory):
    return hub.ModelCard.load(directory / "README.md")  # raises on metadata the hub cannot read


def test_init_names_the_backbone_and_the_labels(tmp_path):
    assert main(["init", str(tmp_path / "ck"), "--labels", "neg,pos", "--num-filters", "3"]) == 0
    data = card(tmp_path / "ck").data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert data.base_model == EMBEDDED_ID and "custom_code" in data.tags
    assert data.bertcnn["labels"] == ["neg", "pos"] and data.bertcnn["dtype"] == "float32"
    forward = tolerance_for("float32", "cpu", "forward")
    assert data.bertcnn["parity"]["torch_vs_keras_logits_atol"] == forward.atol


def test_train_records_the_kept_epochs_metrics(words_ck, tmp_path):
    train, held = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    write_jsonl(train, 11, seed=1)
    write_jsonl(held, 7, seed=2)
    argv = ["--train", str(train), "--eval", str(held), "--epochs", "2", "--batch-size", "4", "--keep-best", "loss"]
    assert (
        main(["train", "--checkpoint", str(words_ck), "--out", str(tmp_path / "run"), "--framework", "torch", *argv])
        == 0
    )
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "eval_accuracy" in r]
    kept = next(r for r in evaluated if r["epoch"] == evaluated[-1]["best_epoch"])
    results = {r.metric_type: r.metric_value for r in card(tmp_path / "run").data.eval_results}
    assert results["accuracy"] == pytest.approx(kept["eval_accuracy"], abs=1e-6)
    assert results["loss"] == pytest.approx(kept["eval_loss"], abs=1e-6)
    assert f"epoch {kept['epoch'] + 1}" in (tmp_path / "run" / "README.md").read_text()


def test_port_says_where_the_weights_came_from(tiny_ck, tmp_path):
    assert main(["port", str(tiny_ck), str(tmp_path / "half"), "--dtype", "bfloat16"]) == 0
    data = card(tmp_path / "half").data
    assert data.bertcnn["dtype"] == "bfloat16" and "bertcnn port" in data.bertcnn["source"]
    assert "cast from float32 to bfloat16" in data.bertcnn["source"]


def test_a_readme_of_the_users_is_kept(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "README.md").write_text("my notes\n")
    tiny_checkpoint(theirs)  # save_checkpoint into someone's folder: files one by one, as save_pretrained does
    assert (theirs / "README.md").read_text() == "my notes\n" and (theirs / "config.json").is_file()
    mine = tiny_checkpoint(tmp_path / "mine")
    assert (mine / "README.md").read_text().startswith("---\n")
