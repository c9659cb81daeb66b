"""predict and evaluate: missing packages refused before any work, one vocabulary, one --max-length rule.

Missing packages are simulated by patching `parity.commands.common.installed`; before the
check, both commands went on and died with a ModuleNotFoundError traceback where a package
really was missing (here, with every package present, they ran to the end: exit 0).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.commands import main
from parity.commands.port import port
from parity.training.recipe import TrainingRecipe
from tests.helpers import REPO, sentences
from tests.helpers import minilm_vocab_checkpoint as tiny_checkpoint

VOCABULARY = ("--checkpoint CK", "--framework {torch,keras}", "--config FILE", "--tokenizer DIR", "--threads N")
VOCABULARY += ("--no-progress", "--max-length N truncate texts to N tokens")
RULE = "the length the model was trained to read, max_seq_length in its config"


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", embedded_dir, label_names=("a", "b", "c"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "eval.jsonl"
    rows = [{"text": t, "label": "abc"[i % 3]} for i, t in enumerate(sentences(12))]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f


def cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def without(monkeypatch, *modules):
    import parity.commands.common as common

    real = common.installed
    monkeypatch.setattr(common, "installed", lambda m: m not in modules and real(m))


def refused_for_packages(code, out, err, command: str, *missing: str) -> None:
    assert (code, out) == (2, ""), err
    assert err.startswith(f"bertcnn {command}: error: bertcnn {command} needs packages that are not installed: ")
    assert err.count("\n") == 1 and err.rstrip().endswith(f"Received: {len(missing)} missing")
    for fragment in missing:
        assert fragment in err


@pytest.mark.parametrize(
    ("framework", "module", "fragment"),
    [
        ("torch", "torch", "torch (for --framework torch)"),
        ("torch", "transformers", "pip install 'bertcnn[torch]'"),
        ("keras", "keras", "keras (for --framework keras)"),
        ("keras", "tensorflow", "tensorflow (for --framework keras)"),
    ],
)
def test_predict_without_its_framework_is_refused_before_any_work(ck, capsys, monkeypatch, framework, module, fragment):
    without(monkeypatch, module)
    # --file names a file that does not exist: the package check comes first, before any input is read.
    argv = ["predict", "--checkpoint", str(ck), "--framework", framework, "--file", "/nonexistent", "Hi"]
    refused_for_packages(*cli(capsys, *argv), "predict", fragment)


def test_evaluate_without_its_framework_is_refused_before_reading_the_data(ck, capsys, monkeypatch, tmp_path):
    without(monkeypatch, "torch")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": ""}\n', encoding="utf-8")
    argv = ["evaluate", "--checkpoint", str(ck), "--framework", "torch", "--eval", str(bad)]
    refused_for_packages(*cli(capsys, *argv), "evaluate", "torch (for --framework torch)")


@pytest.mark.parametrize(
    ("name", "framework", "module", "fragment"),
    [
        ("m.pt", "keras", "torch", "torch (for reading m.pt)"),
        ("m.keras", "torch", "h5py", "h5py (for reading m.keras)"),
    ],
)
def test_reading_a_weight_file_needs_its_reader(ck, tmp_path, capsys, monkeypatch, name, framework, module, fragment):
    f = tmp_path / name
    port(ck, f, progress=False)
    without(monkeypatch, module)
    argv = ["predict", "--checkpoint", str(f), "--framework", framework, "--tokenizer", str(ck)]
    argv += ["--config", str(ck / "config.json")] if name.endswith(".pt") else []
    refused_for_packages(*cli(capsys, *argv, "Hi"), "predict", fragment)


def test_a_keras_file_predicts_with_torch_where_keras_cannot_be_imported(ck, tmp_path):
    """Reading a .keras file needs h5py, not Keras: parity.io has Keras 3's h5 layout written down."""
    import subprocess
    import sys

    f = tmp_path / "m.keras"
    port(ck, f, progress=False)
    argv = ["predict", "--checkpoint", str(f), "--framework", "torch", "--tokenizer", str(ck), "Hi"]
    code = (
        "import sys\n"
        "sys.modules.update(keras=None, tensorflow=None, jax=None)  # any import of them fails\n"
        "from parity.commands import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1, proc.stderr[-2000:]


def test_both_commands_speak_one_vocabulary(capsys):
    helps = {}
    for command in ("predict", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    for text in helps.values():
        for fragment in (*VOCABULARY, RULE):
            assert fragment in text
    assert "--eval FILE labelled data, as `bertcnn train --eval` takes" in helps["evaluate"]
    assert RULE in (REPO / "docs" / "commands.md").read_text(encoding="utf-8")


def test_evaluate_takes_eval_not_file(ck, data, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(ck), "--framework", "torch", "--file", str(data)])
    assert exit_info.value.code == 2
    assert "unknown option --file" in capsys.readouterr().err


def training_dir(ck: Path, where: Path, recipe: str) -> Path:
    import shutil

    shutil.copytree(ck, where)
    (where / "recipe.json").write_text(recipe, encoding="utf-8")
    return where


def test_a_training_directory_saved_before_max_seq_length_is_read_at_its_runs_max_length(ck, data, tmp_path, capsys):
    run = training_dir(ck, tmp_path / "run", TrainingRecipe(max_length=9).to_json())
    argv = ["evaluate", "--checkpoint", str(run), "--framework", "torch", "--eval", str(data), "--json"]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    r = json.loads(out)
    assert r["max_length"] == 9 and r["truncated"] == 12
    code, out, err = cli(capsys, "predict", "--checkpoint", str(run), "--framework", "torch", sentences(1)[0])
    assert code == 0, err
    assert err == (
        "note: 1 of 1 texts were longer than 9 tokens (max_seq_length, the length the model was trained to read) "
        "and were cut to 9, keeping [CLS] and [SEP] (the tokenizer's own truncation, as Hugging Face)\n"
    )
    code, out, err = cli(capsys, *argv, "--max-length", "11")
    assert json.loads(out)["max_length"] == 11  # the option wins, said once on stderr: longer than trained
    assert err == (
        "note: the model was trained to read 9 tokens (max_seq_length in its config); --max-length 11 gives it "
        "longer texts than it was trained on, so its answers on them may differ\n"
    )
    code, out, err = cli(capsys, *argv, "--max-length", "7")
    assert (json.loads(out)["max_length"], err) == (7, "")  # shorter: no note


def test_otherwise_both_default_to_the_position_table(tmp_path, embedded_dir, data, capsys):
    wide = tiny_checkpoint(tmp_path / "wide", embedded_dir, label_names=("a", "b", "c"), max_position_embeddings=200)
    code, out, err = cli(capsys, "evaluate", "--checkpoint", str(wide), "--framework", "torch", "--eval", str(data),
                         "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["max_length"] == 200  # was 128, a default of its own


def test_a_broken_recipe_is_one_line_naming_it(ck, data, tmp_path, capsys):
    run = training_dir(ck, tmp_path / "run", '{"max_length": 0}')
    code, out, err = cli(capsys, "evaluate", "--checkpoint", str(run), "--framework", "torch", "--eval", str(data))
    assert (code, out) == (2, "")
    assert err.startswith(f"bertcnn evaluate: error: {run / 'recipe.json'}: Invalid TrainingRecipe: `max_length`")
    assert err.count("\n") == 1
