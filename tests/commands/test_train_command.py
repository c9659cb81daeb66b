"""`bertcnn train` as a product: output paths checked before any work, conflicting options refused,
missing packages named before anything is written, every weight source, one vocabulary of options,
honest summaries, and no framework chatter on stderr."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import parity.commands.common as common
from parity.commands import builds, main
from parity.io.reader import read_weights
from tests.helpers import REPO, env, files, tree_bytes, write_jsonl

FAST = ["--epochs", "1", "--batch-size", "8", "--lr", "1e-2", "--max-length", "20"]


def _train(*argv: str) -> list[str]:
    return ["train", "--framework", "torch", *FAST, *argv]


def _one_line(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Received:" in lines[0], lines[0]
    return lines[0]


# -- 0: --out is checked before any work; --force replaces only what this project wrote ------------------------
@pytest.fixture
def inputs(tmp_path):
    ck, train = files(tmp_path)
    return tmp_path, ck, train


@pytest.mark.parametrize("where", ["train", "checkpoint", "inside-checkpoint", "cwd", "parent", "holds-train"])
def test_an_out_that_is_an_input_or_holds_the_work_is_refused_even_with_force(inputs, capsys, monkeypatch, where):
    d, ck, train = inputs
    work = d / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    if where == "holds-train":
        train = work / "train.jsonl"
        train.write_text((d / "train.jsonl").read_text())
    out = {"train": str(train), "checkpoint": str(ck), "inside-checkpoint": str(ck / "run"), "cwd": ".",
           "parent": "..", "holds-train": str(work)}[where]  # fmt: skip
    before = tree_bytes(d)
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", out, "--force")) == 2
    _one_line(capsys, "--out")
    assert tree_bytes(d) == before  # nothing deleted, nothing written


def test_force_refuses_a_folder_this_project_did_not_write(inputs, capsys):
    d, ck, train = inputs
    mine = d / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(mine), "--force")) == 2
    _one_line(capsys, "did not write", "thesis.tex")
    assert (mine / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("what", ["training directory", "checkpoint", "empty folder"])
def test_force_replaces_what_the_project_wrote(inputs, capsys, what):
    d, ck, train = inputs
    out = d / "out"
    if what == "training directory":
        assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(out))) == 0
    elif what == "checkpoint":
        files(out.parent / "other")
        os.rename(out.parent / "other" / "ck", out)
    else:
        out.mkdir()
    force = [] if what == "empty folder" else ["--force"]  # an empty folder needs no --force
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(out), "--seed", "3", *force)) == 0
    capsys.readouterr()
    assert json.loads((out / "recipe.json").read_text())["seed"] == 3
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == []


def test_an_existing_training_directory_without_force_names_resume_and_force(inputs, capsys):
    d, ck, train = inputs
    out = d / "run"
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(out))) == 0
    capsys.readouterr()
    before = tree_bytes(out)
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(out))) == 2
    _one_line(capsys, "pass --resume to continue it or --force to replace it")
    assert tree_bytes(out) == before


# -- 5: honesty and conflicting options --------------------------------------------------------------------------
def test_resuming_a_finished_run_says_there_is_nothing_to_do_and_rewrites_nothing(inputs, capsys):
    d, ck, train = inputs
    out = d / "run"
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(out))) == 0
    capsys.readouterr()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert main(_train("--resume", "--train", str(train), "--out", str(out))) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"nothing to do: {out} is finished at 3 updates (1 epoch); nothing was rewritten"
    assert "trained" not in captured.out + captured.err
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()} == before


@pytest.mark.parametrize(
    ("extra", "says"),
    [(["--resume", "--force"], "--resume and --force conflict"),
     (["--resume", "--checkpoint", "CK"], "--checkpoint would be ignored"),
     (["--no-clip", "--max-grad-norm", "2"], "--no-clip and --max-grad-norm conflict")],
)  # fmt: skip
def test_conflicting_options_are_refused(inputs, capsys, extra, says):
    d, ck, train = inputs
    out = d / "run"
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(out))) == 0
    capsys.readouterr()
    before = tree_bytes(out)
    extra = [str(ck) if x == "CK" else x for x in extra]
    start = [] if "--resume" in extra else ["--checkpoint", str(ck)]
    assert main(_train(*start, "--train", str(train), "--out", str(out), *extra)) == 2
    _one_line(capsys, says)
    assert tree_bytes(out) == before


# -- 6: missing packages and misplaced options: refused before anything is written ------------------------------
@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize(
    ("drop", "add", "says"),
    [
        ("--checkpoint", [], "--checkpoint CK is required to start training"),
        (None, ["--train", "nope.jsonl"], "--train 'nope.jsonl': not found"),
        (None, ["--eval", "nope.jsonl"], "--eval 'nope.jsonl': not found"),
        (None, ["--checkpoint", "./nope"], "--checkpoint './nope' not found"),
        (None, ["--tokenizer", "."], "--tokenizer must be a folder with a tokenizer.json"),
    ],
)
def test_every_argument_is_checked_before_the_frameworks_are_imported(inputs, framework, drop, add, says):
    """A bad argument is refused in a blink: no torch, TensorFlow or Keras imported first (seconds)."""
    d, ck, train = inputs
    argv = ["train", "--framework", framework, "--checkpoint", str(ck), "--train", str(train), "--out", str(d / "r")]
    if drop:
        i = argv.index(drop)
        del argv[i : i + 2]
    argv += add  # given twice: the later one counts, as argparse does
    code = ("import sys\nfrom parity.commands import main\n"
            f"code = main({argv!r})\n"
            "print(code, sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=120,
                          cwd=d)  # fmt: skip
    assert proc.stdout == "2 []\n", proc.stdout + proc.stderr[-2000:]
    assert says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (d / "r").exists()


def test_a_missing_framework_package_is_named_before_anything_is_written(inputs, capsys, monkeypatch):
    d, ck, train = inputs
    monkeypatch.setattr(common, "installed", lambda module: module not in ("torch", "transformers"))
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(d / "run"))) == 2
    _one_line(capsys, "needs packages that are not installed: torch", "pip install 'bertcnn[torch]'")
    assert not (d / "run").exists() and not (d / ".run.lock").exists()


def test_a_keras_file_needs_its_reader_h5py_not_keras(inputs, capsys, monkeypatch):
    """Reading a .keras file needs h5py (the layout is written down in parity.io), not the Keras build."""
    d, ck, train = inputs
    (d / "w.keras").write_bytes(b"never read")
    monkeypatch.setattr(common, "installed", lambda module: module != "h5py")
    argv = _train(
        "--checkpoint", str(d / "w.keras"), "--tokenizer", str(ck), "--train", str(train), "--out", str(d / "r")
    )
    assert main(argv) == 2
    _one_line(capsys, "h5py (for --checkpoint)")
    assert not (d / "r").exists()


def test_data_parallel_without_jax_is_refused_before_anything_is_written(inputs, capsys, monkeypatch):
    d, ck, train = inputs
    argv = ["train", "--framework", "keras", "--data-parallel", *FAST, "--checkpoint", str(ck), "--train", str(train),
            "--out", str(d / "run")]  # fmt: skip
    monkeypatch.setattr(builds, "current_backend", lambda: "tensorflow")
    assert main(argv) == 2
    _one_line(capsys, "KERAS_BACKEND=jax")
    monkeypatch.setattr(builds, "current_backend", lambda: "jax")
    monkeypatch.setattr(common, "installed", lambda module: module != "jax")
    assert main(argv) == 2
    _one_line(capsys, "jax (for --data-parallel)")
    assert not (d / "run").exists()


# -- 7: every source, through the one reader ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["w.safetensors", "w.pt", "w.keras", "w.weights.h5"])
def test_train_starts_from_every_weight_format_like_from_the_directory(inputs, capsys, name):
    from tests.helpers import state_tensors

    d, ck, train = inputs
    assert main(["port", str(ck), str(d / name)]) == 0
    config = ["--config", str(ck / "config.json")] if name.endswith((".pt", ".weights.h5")) else []
    assert main(_train("--checkpoint", str(d / name), *config, "--tokenizer", str(ck), "--train", str(train),
                       "--out", str(d / "from-file"))) == 0  # fmt: skip
    assert main(_train("--checkpoint", str(ck), "--train", str(train), "--out", str(d / "from-dir"))) == 0
    capsys.readouterr()
    assert state_tensors(d / "from-file") == state_tensors(d / "from-dir")
    assert (d / "from-file" / "tokenizer.json").read_bytes() == (d / "from-dir" / "tokenizer.json").read_bytes()
    carried, own = (json.loads((x / "tokenizer.json").read_text()) for x in (d / "from-file", ck))
    assert carried.pop("truncation")["max_length"] == read_weights(d / "from-file").config.max_seq_length
    assert {k: v for k, v in own.items() if k != "truncation"} == carried  # ck's tokenizer, cut at the run's length


def test_a_weight_file_without_a_tokenizer_asks_for_one(inputs, capsys):
    d, ck, train = inputs
    assert main(["port", str(ck), str(d / "w.safetensors")]) == 0
    capsys.readouterr()
    assert main(_train("--checkpoint", str(d / "w.safetensors"), "--train", str(train), "--out", str(d / "r"))) == 2
    _one_line(capsys, "carries no tokenizer.json; pass --tokenizer DIR")
    assert not (d / "r").exists()


@pytest.mark.parametrize("names", [("bad", "good"), ("a", "b", "c", "d")])
def test_another_number_of_classes_than_the_head_gets_advice_that_works(inputs, capsys, names):
    """The 3-class unnamed head cannot be named into 2 or 4 classes (`port --labels` refuses that): the advice
    is a new head on its encoder, and following it, then training, works."""
    d, ck, _ = inputs
    data = d / "data.jsonl"
    write_jsonl(data, 17, seed=3, names=names)
    assert main(_train("--checkpoint", str(ck), "--train", str(data), "--out", str(d / "r"))) == 2
    line = _one_line(capsys, "the checkpoint's head has 3 classes", f"--labels {','.join(names)}`")
    advice = shlex.split(re.search(r"`bertcnn (init [^`]*)`", line).group(1))
    advice = [{"CK": str(ck), "NEW_CK": str(d / "new")}.get(w, w) for w in advice]
    assert main(advice) == 0
    assert main(_train("--checkpoint", str(d / "new"), "--train", str(data), "--out", str(d / "r"))) == 0
    assert json.loads((d / "r" / "config.json").read_text())["id2label"] == {str(i): n for i, n in enumerate(names)}


# -- 8: one vocabulary -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--batch-size", "0", "expected a positive integer. Received: '0'"),
     ("--epochs", "-1", "expected a positive integer. Received: '-1'"),
     ("--max-length", "x", "expected a positive integer. Received: 'x'"),
     ("--save-every", "0", "expected a positive integer. Received: '0'"),
     ("--warmup-steps", "-2", "expected an integer >= 0. Received: '-2'"),
     ("--seed", "-1", "expected an integer >= 0. Received: '-1'"),
     ("--lr", "0", "expected a positive number. Received: '0'"),
     ("--warmup-ratio", "1.5", "expected a number in [0, 1]. Received: '1.5'"),
     ("--adam-beta2", "1", "expected a number in [0, 1). Received: '1'"),
     ("--threads", "0", "expected a positive integer. Received: '0'")],
)  # fmt: skip
def test_numbers_are_checked_at_parse_time_like_predict(inputs, capsys, option, value, says):
    d, ck, train = inputs
    with pytest.raises(SystemExit) as e:
        main(["train", "--framework", "torch", "--checkpoint", str(ck), "--train", str(train), "--out", str(d / "r"),
              option, value])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Invalid TrainingRecipe" not in err, err
    assert not (d / "r").exists()


def test_help_has_metavars_framework_help_and_the_run_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for placeholder in ("EPOCHS", "BATCH_SIZE", "MAX_LENGTH", "WARMUP_STEPS", "SEED", "THREADS", "SAVE_EVERY"):
        assert placeholder not in text, placeholder
    assert "--checkpoint CK" in text and "--threads N" in text and "--no-progress" in text
    assert re.search(r"--framework \{torch,keras\}\s+which build runs the model", text), text


def test_one_update_one_line_and_a_loss_in_four_decimals(inputs, capsys, request):
    import torch

    threads = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(threads))  # --threads 1 sets this process's torch
    d, ck, train = inputs
    rc = main(["train", "--framework", "torch", "--epochs", "1", "--batch-size", "32", "--checkpoint", str(ck),
               "--train", str(train), "--out", str(d / "r"), "--threads", "1", "--no-progress"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out.strip()
    said = rf"trained 1 update \(torch, float32\) in \d+\.\ds; last update's loss \d\.\d{{4}}; wrote {d / 'r'}"
    assert re.fullmatch(said, out), out


# -- 9: quiet ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_keras_training_prints_only_our_lines_on_stderr(inputs):
    d, ck, train = inputs
    proc = subprocess.run([sys.executable, "-m", "parity", "train", "--framework", "keras", *FAST, "--checkpoint",
                           str(ck), "--train", str(train), "--out", str(d / "k")], env=env(), capture_output=True,
                          text=True, timeout=600, cwd=REPO, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines and all(x.startswith(("train: ", "epoch ")) for x in lines), lines


def test_the_chatter_filter_drops_tensorflow_start_up_lines_and_keeps_everything_else(capfd):
    from parity.stderr import quiet_native_stderr

    chatter = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
               "I0000 00:00:1796231348.253831   26894 port.cc:153] oneDNN custom operations are on. You may see\n"
               "I0000 00:00:1796231335.222106   26735 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
               "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
               "appropriate compiler flags.\n")  # fmt: skip
    real = "E0000 00:00:1.0   1 op.cc:1] a real error\nWARNING: something else\n"
    with quiet_native_stderr():
        os.write(2, (chatter + real).encode())
    assert capfd.readouterr().err == real


# -- 10: size ----------------------------------------------------------------------------------------------------
MODULES = ["parity/commands/train.py", "parity/commands/train_ui.py", "parity/training/state.py",
           "parity/training/statefiles.py", "parity/io/swap.py", "parity/training/loop.py",
           "parity/training/recipe.py", "parity/training/plan.py", "parity/training/data.py", "bertcnn_torch/train.py",
           "bertcnn_torch/distributed.py", "bertcnn_tf/train.py", "bertcnn_tf/distributed.py",
           "parity/commands/train_checks.py", "parity/training/tensorboard.py"]  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_train_modules_stay_small(module):
    source = (REPO / module).read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 400, module
    functions = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in functions if n.end_lineno - n.lineno + 1 > 100]
    assert not long, long


def test_run_is_plan_execute_finish():
    from parity.commands import train

    assert all(callable(getattr(train, f)) for f in ("prepare", "execute", "finish"))
    assert Path(train.__file__).resolve() == (REPO / "parity/commands/train.py").resolve()
