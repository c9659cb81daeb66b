"""A multi-label model's export: the manifest says how its logits are read (a sigmoid per label) and carries the
thresholds, as its config.json does; a disagreement is refused; predict on the export decides with them."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from parity.serving.directory import load_config
from parity.serving.manifest import Manifest, read_manifest, tensor_specs
from tests.helpers import TINY, minilm_vocab_checkpoint, tiny_checkpoint

CONFIG = BertCnnConfig(**TINY, problem_type="multi_label_classification", thresholds=(0.2, 0.5, 0.9))


def test_the_output_spec_names_its_activation():
    assert tensor_specs(3)[1][0]["activation"] == "softmax"
    assert tensor_specs(3, multi_label=True)[1][0]["activation"] == "sigmoid"


@pytest.mark.parametrize("edit", [{"thresholds": [0.2, 0.5, 0.8]}, {"problem_type": "single_label_classification"}])
def test_a_manifest_that_disagrees_with_config_json_is_refused(tmp_path, edit):
    (tmp_path / "model.onnx").write_bytes(b"not read here")
    (tmp_path / "config.json").write_text(CONFIG.to_json())
    fields = {"problem_type": CONFIG.problem_type, "thresholds": list(CONFIG.thresholds)}
    (tmp_path / "manifest.json").write_text(Manifest("onnx", "torch", "model.onnx", "0" * 64, "ck", **fields).to_json())
    assert load_config(tmp_path) == CONFIG
    (tmp_path / "manifest.json").write_text(
        Manifest("onnx", "torch", "model.onnx", "0" * 64, "ck", **{**fields, **edit}).to_json()
    )
    with pytest.raises(ValueError, match=r"manifest.json: problem_type and thresholds disagree with config.json"):
        load_config(tmp_path)


@pytest.mark.slow  # an ONNX export (~10 s on 2 busy cores)
def test_an_onnx_export_predicts_label_sets_at_the_saved_thresholds(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck", CONFIG, tokenizer="words")
    assert main(["export", "--checkpoint", str(tmp_path / "ck"), "--format", "onnx", str(tmp_path / "x"),
                 "--verify"]) == 0  # fmt: skip
    m = read_manifest(tmp_path / "x")
    assert (m.problem_type, m.thresholds, m.outputs[0]["activation"]) == (CONFIG.problem_type, [0.2, 0.5, 0.9],
                                                                          "sigmoid")  # fmt: skip
    capsys.readouterr()
    texts = ["w4 w5 w6", "w7", "w9 w10 w11 w12"]
    assert main(["predict", "--checkpoint", str(tmp_path / "x"), "--json", *texts]) == 0
    export_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main(["predict", "--checkpoint", str(tmp_path / "ck"), "--framework", "torch", "--json", *texts]) == 0
    ck_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    for a, b in zip(export_rows, ck_rows, strict=True):
        assert a["thresholds"] == [0.2, 0.5, 0.9] and a["label_ids"] == b["label_ids"]
        assert np.abs(np.array(a["probabilities"]) - b["probabilities"]).max() <= 1e-5
    assert main(["predict", "--checkpoint", str(tmp_path / "x"), "--long-text", "windows", "w4"]) == 2
    assert "is an export, whose graph takes (batch, tokens) inputs" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", [pytest.param("saved_model", marks=pytest.mark.slow), "onnx"])
def test_a_text_export_of_a_multi_label_model_selects_at_its_thresholds(fmt, tmp_path, embedded_dir, capsys):
    """Strings in: sigmoid probabilities and `selected` (each at or over its label's threshold) from the graph,
    checked by --verify against the PyTorch build (tap text-selected), and predict's label sets are the
    checkpoint's."""
    # found, not imported: importing onnxruntime_extensions loads its library bound to whichever RE2 is loaded
    needs = "tensorflow_text" if fmt == "saved_model" else "onnxruntime_extensions"
    if importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} not installed: pip install 'bertcnn[serving]'")
    from parity.serving.runners import open_export

    task = dict(problem_type=CONFIG.problem_type, label_names=("art", "law", "war"), thresholds=CONFIG.thresholds)
    ck = minilm_vocab_checkpoint(tmp_path / "ck", embedded_dir, num_labels=3, **task)
    out = tmp_path / "x"
    assert main(["export", "--checkpoint", str(ck), "--format", fmt, "--text", "--verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PARITY OK" in printed and "text-selected/hard-texts" in printed
    texts = ["The court ruled on the painting.", "War and peace", "ok", "A long, long sentence about nothing."]
    got = open_export(out)[0].text(texts)
    p = 1 / (1 + np.exp(-got["logits"].astype(np.float64)))
    assert np.abs(got["probabilities"] - p).max() <= 1e-6
    assert (
        got["selected"].dtype == bool
        and (got["selected"] == (got["probabilities"] >= np.float32(CONFIG.thresholds))).all()
    )
    assert main(["predict", "--checkpoint", str(out), "--json", *texts]) == 0
    export_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main(["predict", "--checkpoint", str(ck), "--framework", "torch", "--json", *texts]) == 0
    ck_rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["labels"] for r in export_rows] == [r["labels"] for r in ck_rows]
