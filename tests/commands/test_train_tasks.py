"""The command line for issue 30: a multi-label run that tunes, saves and uses its thresholds; class weights and
windows recorded and held on --resume; every misuse refused before any work with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from tests.helpers import TINY, cli, tiny_checkpoint, tiny_hf_bert, write_jsonl

NAMES = ("art", "law", "war")
RUN = ["--framework", "torch", "--epochs", "2", "--batch-size", "4", "--lr", "1e-2", "--seed", "3", "--threads", "1"]
TASKS = ["--class-weights", "balanced", "--tune-thresholds", "--long-text", "windows", "--stride", "3",
         "--max-length", "10", "--max-windows", "4"]  # fmt: skip


def _multi_jsonl(path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(rows):
        words = " ".join(f"w{j}" for j in rng.integers(4, 99, size=rng.integers(1, 30)))
        labels = [n for n in NAMES if rng.random() < 0.45] if i else list(NAMES)  # every label on some row
        lines.append(json.dumps({"text": words, "labels": labels}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tasks")
    config = BertCnnConfig(**TINY, head_hidden_size=7, problem_type="multi_label_classification", label_names=NAMES)
    tiny_checkpoint(d / "ml", config, tokenizer="words")
    _multi_jsonl(d / "train.jsonl", 21, seed=1)
    _multi_jsonl(d / "eval.jsonl", 11, seed=2)
    write_jsonl(d / "single.jsonl", 9, seed=3)
    (d / "w.json").write_text(json.dumps({"art": 1.0, "law": 2.0, "war": 0.5}))
    return d


def _train(data, out, *extra):
    return ["train", "--checkpoint", str(data / "ml"), "--train", str(data / "train.jsonl"), "--eval",
            str(data / "eval.jsonl"), "--out", str(out), *RUN, *TASKS, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ml"
    assert main(_train(data, out)) == 0
    return out


def assert_thresholds_travel(out, data, capsys):
    """DIR's config.json holds the tuned thresholds, and predict and evaluate decide with them."""
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    thresholds = config.get("thresholds")
    assert thresholds is not None and thresholds != [0.5, 0.5, 0.5], thresholds
    texts = [json.loads(x)["text"] for x in (data / "eval.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out), "--framework", "torch", "--json", "--long-text", "windows",
                 "--stride", "3", "--max-windows", "4", *texts]) == 0  # fmt: skip
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert all(r["thresholds"] == thresholds for r in rows)
    for r in rows:
        assert r["label_ids"] == [j for j, p in enumerate(r["probabilities"]) if p >= thresholds[j]]
        assert r["labels"] == [NAMES[j] for j in r["label_ids"]]
    return rows, thresholds


def test_a_multi_label_run_tunes_saves_and_uses_its_thresholds(trained, data, capsys):
    from sklearn import metrics as M

    recipe = json.loads((trained / "recipe.json").read_text())
    assert recipe["long_text"] == "windows" and recipe["stride"] == 3 and recipe["max_windows"] == 4
    assert recipe["tune_thresholds"] and len(recipe["class_weights"]) == 3  # balanced pos_weight, as numbers
    rows, thresholds = assert_thresholds_travel(trained, data, capsys)
    truth = np.array([[int(n in json.loads(x)["labels"]) for n in NAMES]
                      for x in (data / "eval.jsonl").read_text().splitlines()])  # fmt: skip
    pred = np.array([[int(j in r["label_ids"]) for j in range(3)] for r in rows])
    assert main(["evaluate", "--checkpoint", str(trained), "--framework", "torch", "--eval", str(data / "eval.jsonl"),
                 "--json", "--long-text", "windows", "--stride", "3", "--max-windows", "4"]) == 0  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert r["thresholds"] == thresholds
    assert r["micro_f1"] == pytest.approx(M.f1_score(truth, pred, average="micro", zero_division=0), abs=1e-12)
    assert r["macro_f1"] == pytest.approx(M.f1_score(truth, pred, average="macro", zero_division=0), abs=1e-12)
    assert r["hamming_loss"] == pytest.approx(M.hamming_loss(truth, pred), abs=1e-12)
    assert r["subset_accuracy"] == pytest.approx(M.accuracy_score(truth, pred), abs=1e-12)
    assert main(["evaluate", "--checkpoint", str(trained), "--framework", "torch", "--eval",
                 str(data / "eval.jsonl"), "--long-text", "windows", "--stride", "3"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "micro-F1" in table and "Hamming loss" in table and "read as windows of 10 tokens (stride 3)" in table


def test_a_threshold_not_saved_is_caught(data, tmp_path, capsys, monkeypatch):
    """The pitfall put back: thresholds chosen but left out of the save; predict would decide at 0.5."""
    from parity.training import loop

    real = loop.Run.stamp

    def forgets(self, snap):
        out = real(self, snap)
        out.config = out.config.replace(thresholds=None)
        return out

    monkeypatch.setattr(loop.Run, "stamp", forgets)
    assert main(_train(data, tmp_path / "run")) == 0
    with pytest.raises(AssertionError):
        assert_thresholds_travel(tmp_path / "run", data, capsys)


def test_resume_holds_the_saved_weights_and_windows(trained, data, capsys):
    resume = ["train", "--resume", "--out", str(trained), "--train", str(data / "train.jsonl"), "--eval",
              str(data / "eval.jsonl"), "--framework", "torch"]  # fmt: skip
    assert main([*resume, "--class-weights", "balanced", "--stride", "3"]) == 0  # the same numbers: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    for extra, fragment in ((["--class-weights", str(data / "w.json")], "class_weights: saved ["),
                            (["--stride", "5"], "stride: saved 3, given 5")):  # fmt: skip
        assert main([*resume, *extra]) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1 and "Received:" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--train", "{d}/single.jsonl"], "single.jsonl:1: missing field 'labels'"),
        (["--train", "{d}/single.jsonl", "--label-column", "label"], "single.jsonl:1: one label where a list is"),
        (["--class-weights", "{d}/missing.json"], "--class-weights takes balanced or a JSON file"),
        (["--tune-thresholds"], "--tune-thresholds chooses each label's threshold on held-out rows: add --eval"),
        (["--stride", "3"], "--stride shapes the windows of --long-text windows"),
        (["--long-text", "windows", "--stride", "9", "--max-length", "10"], "`stride` must leave each window"),
    ],
)
def test_misuse_is_refused_with_one_line(data, tmp_path, capsys, argv, fragment):
    args = ["train", "--checkpoint", str(data / "ml"), "--train", str(data / "train.jsonl"), "--out",
            str(tmp_path / "o"), *RUN, *(a.format(d=data) for a in argv)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Received:" in err, err
    assert not (tmp_path / "o").exists()


def test_single_label_refusals(words_ck, data, tmp_path, capsys):
    """A label list for a single-label head, thresholds for an argmax model: refused by line, before any work."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "w4", "label": "neg"}\n{"text": "w5", "label": ["neg", "pos"]}\n{"text": "w6", '
                   '"label": []}\n')  # fmt: skip
    base = ["train", "--checkpoint", str(words_ck), "--out", str(tmp_path / "o"), *RUN]
    assert main([*base, "--train", str(bad)]) == 2
    assert f"{bad}:2: a label list where one label is expected" in capsys.readouterr().err
    bad.write_text('{"text": "w6", "label": []}\n')
    assert main([*base, "--train", str(bad)]) == 2
    assert f"{bad}:1: an empty label list where one label is expected" in capsys.readouterr().err
    assert main([*base, "--train", str(data / "single.jsonl"), "--eval", str(data / "single.jsonl"),
                 "--tune-thresholds"]) == 2  # fmt: skip
    assert "--tune-thresholds chooses per-label thresholds of a multi-label model" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(words_ck), "--framework", "torch", "--threshold", "0.3", "w4"]) == 2
    assert "--threshold applies to a multi-label model" in capsys.readouterr().err


def test_init_multi_label_writes_hugging_faces_problem_type(tmp_path, capsys):
    tiny_hf_bert(tmp_path / "hf")
    assert main(["init", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"), "--multi-label",
                 "--labels", "solo"]) == 0  # fmt: skip
    assert "1 labels (multi-label)" in capsys.readouterr().out
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["id2label"] == {"0": "solo"}


@pytest.mark.slow  # two training children and a kill
def test_a_killed_multi_label_windows_run_resumes_bit_identical(data, tmp_path):
    from tests.commands.test_train import _kill_after_a_save, _tensors, _without_checkpoint

    base = ["train", "--checkpoint", str(data / "ml"), "--train", str(data / "train.jsonl"), "--framework", "torch",
            "--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--seed", "7", "--save-every", "1", "--threads", "1",
            "--class-weights", str(data / "w.json"), "--long-text", "windows", "--stride", "3",
            "--max-length", "10"]  # fmt: skip
    killed = tmp_path / "killed"
    _kill_after_a_save(base, killed)
    resumed = cli([*_without_checkpoint(base), "--out", str(killed), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert cli([*base, "--out", str(tmp_path / "whole")]).returncode == 0
    a, b = _tensors(killed), _tensors(tmp_path / "whole")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), [k for k in a if a[k] != b.get(k)]
    assert (killed / "metrics.jsonl").read_text() == (tmp_path / "whole" / "metrics.jsonl").read_text()


def _predict_json(ck, texts, capsys, *flags):
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(ck), "--framework", "torch", "--json", *flags, *texts]) == 0
    return [json.loads(x)["logits"] for x in capsys.readouterr().out.splitlines()]


def _long_texts(data):
    texts = [json.loads(x)["text"] for x in (data / "eval.jsonl").read_text().splitlines()]
    return [t for t in texts if len(t.split()) > 12]  # longer than one window of 10 tokens


def test_a_windows_run_is_read_as_windows_by_every_reader(trained, data, tmp_path, capsys):
    """How a model reads long texts is part of the model (as its length): recorded in config.json by train, read
    so by predict, evaluate, a ported copy; an export cannot hold windows and says so unless told to cut."""
    config = json.loads((trained / "config.json").read_text())
    assert (config["max_seq_length"], config["window_stride"], config["max_windows"]) == (10, 3, 4)
    texts = _long_texts(data)
    assert len(texts) >= 3
    as_trained = _predict_json(trained, texts, capsys, "--long-text", "windows", "--stride", "3", "--max-windows", "4")
    assert _predict_json(trained, texts, capsys) == as_trained
    cut = _predict_json(trained, texts, capsys, "--long-text", "truncate")
    assert np.abs(np.subtract(as_trained, cut)).max() > 1e-4  # the reading matters
    assert main(["port", str(trained), str(tmp_path / "ported.safetensors")]) == 0
    assert _predict_json(tmp_path / "ported.safetensors", texts, capsys, "--tokenizer", str(trained)) == as_trained
    assert main(["evaluate", "--checkpoint", str(trained), "--framework", "torch", "--eval",
                 str(data / "eval.jsonl")]) == 0  # fmt: skip
    assert "read as windows of 10 tokens (stride 3)" in capsys.readouterr().out
    assert main(["predict", "--checkpoint", str(trained), "--framework", "torch", "--long-text", "truncate",
                 "--stride", "2", "w4"]) == 2  # fmt: skip
    assert "--stride shapes the windows of --long-text windows" in capsys.readouterr().err


def test_a_windows_model_is_exported_only_when_told_to_cut(trained, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    assert main(["export", "--checkpoint", str(trained), "--format", "onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert "as windows" in err and "pass --long-text truncate" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["export", "--checkpoint", str(trained), "--format", "onnx", str(out), "--long-text", "truncate",
                 "--verify"]) == 0  # fmt: skip
    assert "PARITY OK" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert "window_stride" not in config and config["max_seq_length"] == 10


def test_a_run_that_forgets_its_windows_is_read_otherwise(data, tmp_path, capsys, monkeypatch):
    """The pitfall put back: windows left out of the saved config; a reader without flags then cuts the texts."""
    from dataclasses import replace

    from parity.commands import train

    real = train.initial_snapshot

    def forgets(config, tensors, recipe, **kw):
        snap = real(config, tensors, recipe, **kw)
        return replace(snap, config=snap.config.replace(window_stride=None, max_windows=None))

    monkeypatch.setattr(train, "initial_snapshot", forgets)
    out = tmp_path / "run"
    assert main(_train(data, out)) == 0
    texts = _long_texts(data)
    as_trained = _predict_json(out, texts, capsys, "--long-text", "windows", "--stride", "3", "--max-windows", "4")
    assert _predict_json(out, texts, capsys) != as_trained
