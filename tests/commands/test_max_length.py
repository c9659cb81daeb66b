"""The length a model was trained to read travels with its weights (DESIGN decision 19).

A run trained at `--max-length 6` is read at 6 from its training directory, from every port
(`.keras`, `.safetensors`, a checkpoint directory, `.pt` with the run's config.json), from an
export, and from a training directory saved before config.json recorded the length (its
recipe.json says it): the same logits everywhere, on texts longer than 6 tokens, where reading
at the position table (23) gives others. Before `max_seq_length`, every port and export was
read at 23.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import zipfile

import numpy as np
import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.reader import read_weights
from tests.helpers import TINY, tiny_checkpoint, write_jsonl

LENGTH = 6  # tokens the run trains at, [CLS] and [SEP] included; TINY's position table is 23
# Longer than LENGTH (cut), and one shorter than the widest kernel; words of the word-level tokenizer.
TEXTS = [" ".join(f"w{i}" for i in range(10, 27)), " ".join(f"w{i}" for i in range(60, 40, -1)), "w7 w8"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, words_ck):
    """`run`: trained at --max-length 6 (torch, one epoch); module-shared, read only."""
    d = tmp_path_factory.mktemp("maxlen")
    write_jsonl(d / "train.jsonl", 23, seed=1)
    write_jsonl(d / "eval.jsonl", 13, seed=2)
    argv = ["train", "--checkpoint", str(words_ck), "--train", str(d / "train.jsonl"), "--out", str(d / "run"),
            "--framework", "torch", "--epochs", "1", "--batch-size", "8", "--lr", "1e-2",
            "--max-length", str(LENGTH)]  # fmt: skip
    assert main(argv) == 0
    return d


def predicted(capsys, source, *extra) -> tuple[np.ndarray, str]:
    """(logits of TEXTS, stderr) from `predict --json`."""
    code = main(["predict", "--checkpoint", str(source), "--json", *extra, *TEXTS])
    out = capsys.readouterr()
    assert code == 0, out.err
    return np.array([json.loads(line)["logits"] for line in out.out.splitlines()]), out.err


def evaluated(capsys, run, source, *extra) -> dict:
    code = main(["evaluate", "--checkpoint", str(source), "--eval", str(run / "eval.jsonl"), "--json", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


TORCH = ("--framework", "torch")


def test_a_run_records_its_length_and_is_read_there(run, capsys):
    d = run / "run"
    assert json.loads((d / "config.json").read_text())["max_seq_length"] == LENGTH
    assert json.loads((d / "tokenizer.json").read_text())["truncation"]["max_length"] == LENGTH
    at_length, err = predicted(capsys, d, *TORCH)
    assert "2 of 3 texts were longer than 6 tokens (max_seq_length, the length the model was trained to read)" in err
    # Read at the position table (what a port was read at before), the same weights answer otherwise.
    at_table, err = predicted(capsys, d, *TORCH, "--max-length", "23")
    assert np.abs(at_table - at_length).max() > 1e-4
    assert (
        err.count("note: the model was trained to read 6 tokens (max_seq_length in its config); --max-length 23") == 1
    )
    assert evaluated(capsys, run, d, *TORCH)["max_length"] == LENGTH


def ported(run, dest: str):
    """`run` ported to `dest` (once per module)."""
    out = run / dest
    if not out.exists():
        assert main(["port", str(run / "run"), str(out)]) == 0
    return out


def carried(path) -> int | None:
    """max_seq_length as the file itself stores it (not through the reader)."""
    if path.is_dir():
        return json.loads((path / "config.json").read_text()).get("max_seq_length")
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))["config"]["config"].get("max_seq_length")
    from safetensors import safe_open

    with safe_open(path, "np") as f:
        return json.loads(f.metadata()["bertcnn.config"]).get("max_seq_length")


@pytest.mark.parametrize("dest", ["run.safetensors", "run-ported", "run.keras"])
def test_every_port_carries_the_length_and_answers_as_the_run(run, dest, capsys):
    d, fresh = run / "run", not (run / dest).exists()
    out = ported(run, dest)
    assert not fresh or f"max_seq_length {LENGTH}" in capsys.readouterr().out  # the port's line says it
    assert carried(out) == LENGTH and read_weights(out).config.max_seq_length == LENGTH
    tok = () if out.is_dir() else ("--tokenizer", str(d))
    expected, _ = predicted(capsys, d, *TORCH)
    got, err = predicted(capsys, out, *TORCH, *tok)
    np.testing.assert_array_equal(got, expected)
    assert "2 of 3 texts were longer than 6 tokens (max_seq_length" in err
    assert evaluated(capsys, run, out, *TORCH, *tok) == evaluated(capsys, run, d, *TORCH)


def test_report_compares_on_texts_cut_where_the_model_reads(run):
    """`report` tokenises its texts (and draws its random ids) at the model's length, from the run and a port."""
    from parity.commands.report import describe_inputs, load_subject

    for source in (run / "run", ported(run, "run.safetensors")):
        w = load_subject(str(source), texts=TEXTS, tokenizer=str(run / "run"))
        assert w.inputs["input_ids"].shape[1] == LENGTH and "padded to 6 tokens" in describe_inputs(w, yours=True)
    bare = load_subject(str(ported(run, "run.safetensors")))  # no tokenizer: seeded random ids, as long as it reads
    assert bare.inputs["attention_mask"].sum(1).max() == LENGTH


def test_a_pt_file_reads_the_length_from_its_config(run, capsys):
    d, pt = run / "run", run / "run.pt"
    assert main(["port", str(d), str(pt)]) == 0
    err = capsys.readouterr().err
    assert f"the model reads {LENGTH} tokens per text (max_seq_length in its config)" in err
    expected, _ = predicted(capsys, d, *TORCH)
    got, _ = predicted(capsys, pt, *TORCH, "--config", str(d / "config.json"), "--tokenizer", str(d))
    np.testing.assert_array_equal(got, expected)


def legacy(run, tmp_path):
    """A copy of `run` as a run saved before config.json recorded its length: recipe.json alone says 6."""
    old = shutil.copytree(run / "run", tmp_path / "old-run")
    raw = json.loads((old / "config.json").read_text())
    del raw["max_seq_length"]
    (old / "config.json").write_text(json.dumps(raw))
    assert json.loads((old / "recipe.json").read_text())["max_length"] == LENGTH
    return old


def test_a_run_saved_before_the_length_was_recorded_keeps_its_recipes_length(run, tmp_path, capsys):
    old = legacy(run, tmp_path)
    expected, _ = predicted(capsys, run / "run", *TORCH)
    got, _ = predicted(capsys, old, *TORCH)
    np.testing.assert_array_equal(got, expected)
    for dest in ("old.safetensors", "old-ported"):  # a port of it records the length
        assert main(["port", str(old), str(tmp_path / dest)]) == 0
        assert carried(tmp_path / dest) == LENGTH
    capsys.readouterr()
    got, _ = predicted(capsys, tmp_path / "old.safetensors", *TORCH, "--tokenizer", str(old))
    np.testing.assert_array_equal(got, expected)


onnx_needs = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="the onnx extra is not installed: pip install 'bertcnn[onnx]'",
)


@onnx_needs
def test_an_export_carries_the_length_and_answers_as_the_run(run, capsys):
    d, out = run / "run", run / "run-onnx"
    assert main(["export", "--checkpoint", str(d), "--format", "onnx", str(out)]) == 0
    assert f"max_seq_length {LENGTH}" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["max_seq_length"] == LENGTH
    assert json.loads((out / "manifest.json").read_text())["max_seq_length"] == LENGTH
    assert json.loads((out / "tokenizer.json").read_text())["truncation"]["max_length"] == LENGTH
    expected, _ = predicted(capsys, d, *TORCH)
    served, err = predicted(capsys, out)
    assert np.abs(served - expected).max() <= 1e-5 and "longer than 6 tokens (max_seq_length" in err
    assert evaluated(capsys, run, out)["accuracy"] == evaluated(capsys, run, d, *TORCH)["accuracy"]


@onnx_needs
@pytest.mark.slow  # an export and its check in a child process: ~15 s
def test_export_verify_of_a_run_saved_before_the_length_was_recorded_checks_at_it(run, tmp_path, capsys):
    old = legacy(run, tmp_path)
    assert main(["export", "--checkpoint", str(old), "--format", "onnx", str(tmp_path / "onnx"), "--verify"]) == 0
    stdout = capsys.readouterr().out
    assert json.loads((tmp_path / "onnx" / "manifest.json").read_text())["max_seq_length"] == LENGTH
    # The check tokenises at 6 and checks the length-6 shape, not the position table's 23.
    assert "PARITY OK" in stdout and f"logits/length-{LENGTH} " in stdout and "logits/length-23" not in stdout
    assert f"texts were longer than {LENGTH} tokens (max_seq_length" in stdout


def test_training_from_a_model_with_a_length_keeps_it_unless_told(tmp_path, capsys):
    ck = tiny_checkpoint(tmp_path / "ck", BertCnnConfig(**TINY, max_seq_length=9), tokenizer="words")
    write_jsonl(tmp_path / "train.jsonl", 7, seed=3)
    base = ["train", "--checkpoint", str(ck), "--train", str(tmp_path / "train.jsonl"), "--framework", "torch",
            "--epochs", "1", "--batch-size", "7"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert "truncated to 9 tokens" in capsys.readouterr().err
    assert json.loads((tmp_path / "a" / "recipe.json").read_text())["max_length"] == 9
    assert read_weights(tmp_path / "a").config.max_seq_length == 9
    assert main([*base, "--out", str(tmp_path / "b"), "--max-length", "5"]) == 0
    assert read_weights(tmp_path / "b").config.max_seq_length == 5
