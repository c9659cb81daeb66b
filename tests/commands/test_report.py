"""`bertcnn report`: the two builds compared tap by tap, as users run it.

As a localiser: each case perturbs one tensor of the Keras side's checkpoint; the report must pass
every tap before the one that tensor feeds and name that tap as the first divergence. The float64
cases inject structural bugs too small for float32 to see. For a newcomer: missing packages refused
up front, a crashed backend keeps what finished, the user's own texts, weight differences named.
`--plot` draws a PNG per report; `--train-steps N` runs the two real trainers and compares weights
and AdamW moments.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from parity.commands import main
from parity.commands.builds import gpu_unavailable
from parity.compare import diagnose
from parity.config import BertCnnConfig
from parity.io.checkpoint import load_checkpoint, save_checkpoint
from parity.suite import Subject
from parity.tolerance import tolerance_for
from tests.helpers import TINY, random_inputs, random_tensors, run_parity, tiny_checkpoint, tiny_hf_bert


def test_report_on_the_embedded_model_as_users_run_it(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "parity", "report", "--dtype", "float32", "--json-out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PARITY OK" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["passed"] is True
    run = doc["results"][0]
    assert (run["dtype"], run["device"], run["first_divergence"]) == ("float32", "cpu", None)
    taps = {t["name"]: t for t in run["taps"]}
    assert taps["logits"]["max_abs"] <= 1e-5
    assert {"embeddings", "encoder.layer.5", "last_hidden_state", "convs.2", "pooled"} <= taps.keys()
    assert set(taps["logits"]) == {"name", "shape", "max_abs", "max_rel", "atol", "passed"}


# -- a localiser: the first tap that differs ---------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny checkpoint A and a factory of copies with one tensor perturbed."""
    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config, seed=3)
    root = tmp_path_factory.mktemp("ckpt")
    tiny_checkpoint(root / "a", config, seed=3)

    def perturbed(name: str, how: str = "add"):
        t = dict(tensors)
        t[name] = t[name].T.copy() if how == "transpose" else t[name] + np.float32(0.05)
        d = root / f"b-{name}-{how}"
        save_checkpoint(d, config, t)
        return d

    return root / "a", perturbed, config


@pytest.mark.parametrize(
    ("tensor", "how", "first"),
    [
        ("bert.embeddings.LayerNorm.bias", "add", "embeddings"),
        ("bert.encoder.layer.1.output.dense.weight", "add", "encoder.layer.1"),
        ("bert.encoder.layer.0.attention.self.query.weight", "transpose", "encoder.layer.0"),
        ("convs.1.weight", "add", "convs.1"),
        ("fc.bias", "add", "logits"),
    ],
)
def test_keras_checkpoint_localises_the_first_divergence(checkpoints, tensor, how, first, tmp_path, capsys):
    a, perturbed, _ = checkpoints
    out = tmp_path / "r.json"
    code = main(
        ["report", "--checkpoint", str(a), "--keras-checkpoint", str(perturbed(tensor, how)), "--dtype", "float64",
         "--json-out", str(out)]
    )  # fmt: skip
    assert code == 1
    doc = json.loads(out.read_text())
    (run,) = doc["results"]
    assert not doc["passed"] and run["first_divergence"] == first
    names = [t["name"] for t in run["taps"]]
    assert all(t["passed"] for t in run["taps"][: names.index(first)])  # forward order: all before pass
    marked = [line for line in capsys.readouterr().out.splitlines() if "<- first divergence" in line]
    assert len(marked) == 1 and marked[0].startswith(first + " ")


def test_same_checkpoint_passes_with_the_documented_schema(checkpoints, tmp_path):
    a, _, _ = checkpoints
    out = tmp_path / "r.json"
    assert main(["report", "--checkpoint", str(a), "--keras-checkpoint", str(a), "--json-out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["passed"] is True and isinstance(doc["source"], str)
    assert [r["dtype"] for r in doc["results"]] == ["float32", "float64"]
    for r in doc["results"]:
        assert {"dtype", "device", "backend", "passed", "first_divergence", "taps"} <= set(r)
        assert r["first_divergence"] is None and r["backend"] == "tensorflow" and r["device"] == "cpu"
        for t in r["taps"]:
            assert set(t) == {"name", "shape", "max_abs", "max_rel", "atol", "passed"}


def test_mismatched_configs_are_refused(checkpoints, tmp_path, capsys):
    a, _, config = checkpoints
    other = config.replace(num_labels=4)
    tiny_checkpoint(tmp_path / "c", other)
    assert main(["report", "--checkpoint", str(a), "--keras-checkpoint", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "num_labels" in err and "Received:" in err


# -- float64 as the structural tier -------------------------------------------------------
def _weights(config, dtype_seed=5):
    return Subject(config, random_tensors(config, seed=dtype_seed), random_inputs(config, [7, 4, 2]), "tiny")


def test_float64_catches_an_epsilon_that_float32_cannot_see():
    """LayerNorm eps 1e-12 vs 1e-9 moves outputs by ~1e-9 relative: below float32's
    rounding, so float32 passes; float64 names the first LayerNorm (the embeddings)."""
    config = BertCnnConfig(**TINY)
    w = _weights(config)
    kw = Subject(config.replace(layer_norm_eps=1e-9), w.tensors, w.inputs, "eps 1e-9")
    f32 = run_parity(w, dtype="float32", keras_w=kw)
    f64 = run_parity(w, dtype="float64", keras_w=kw)
    assert f32.passed
    assert not f64.passed and f64.first_divergence == "embeddings"
    assert any("STRUCTURAL" in line and "embeddings" in line for line in diagnose([f32, f64]))


def test_float64_names_a_wrong_gelu_form(monkeypatch):
    """The tanh GELU where HF uses erf: first visible in the first encoder layer."""
    import bertcnn_tf.bert as kb

    real = kb.activation
    monkeypatch.setattr(kb, "activation", lambda name, x: real("gelu_new" if name == "gelu" else name, x))
    config = BertCnnConfig(**TINY)
    run = run_parity(_weights(config), dtype="float64")
    assert run.first_divergence == "encoder.layer.0"
    assert all(t.passed for t in run.taps[:1])


def test_bad_arguments_say_what_was_received(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--backend", "theano"])
    assert "Received: 'theano'" in capsys.readouterr().err
    assert main(["report", "--checkpoint", "/nonexistent", "--train-steps", "-1"]) == 2


# -- for a newcomer: a checkpoint made the way users make one ----------------------------------------
@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """A tiny checkpoint with a tokenizer, made the way users make one."""
    d = tmp_path_factory.mktemp("report")
    tiny_hf_bert(d / "hf")
    assert main(["init", str(d / "ck"), "--backbone", str(d / "hf"), "--kernel-sizes", "2,3"]) == 0
    return d


def _python(code: str, *argv, env=None, timeout=300):
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout, env=env)


def test_missing_optional_packages_are_refused_before_any_work(ck, tmp_path):
    code = textwrap.dedent("""
        import sys
        sys.modules["jax"] = sys.modules["matplotlib"] = None  # as if not installed
        from parity.commands import main
        sys.exit(main(sys.argv[1:]))
    """)
    argv = ["report", "--checkpoint", str(ck / "ck"), "--backend", "tensorflow,jax", "--plot", str(tmp_path / "t.png")]
    proc = _python(code, *argv, "--json-out", str(tmp_path / "r.json"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "jax (for --backend jax); matplotlib (for --plot)" in proc.stderr
    assert "`pip install 'bertcnn[jax,plot]'`" in proc.stderr and proc.stderr.rstrip().endswith("Received: 2 missing")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_a_crashed_backend_keeps_the_finished_results(ck, tmp_path):
    """The jax child dies as it did on the README's install (no jax in the child); tensorflow's run stays."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        'import os, sys\nif os.environ.get("KERAS_BACKEND") == "jax":\n    sys.modules["jax"] = None\n'
    )
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    env.pop("KERAS_BACKEND", None)
    argv = ["report", "--checkpoint", str(ck / "ck"), "--backend", "tensorflow,jax", "--dtype", "float32"]
    proc = subprocess.run(
        [sys.executable, "-m", "parity", *argv, "--json-out", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout and "PARITY INCOMPLETE" in proc.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["passed"] is False
    assert [(r["backend"], r["passed"]) for r in doc["results"]] == [("tensorflow", True)]
    (err,) = doc["errors"]
    assert err["backend"] == "jax" and err["checks"] == ["forward float32 cpu"] and "jax" in err["reason"]


def test_report_on_your_own_texts(ck, tmp_path, capsys):
    (tmp_path / "t.txt").write_text("it was the best of times\n\nhappy families are alike\n")
    argv = ["report", "--checkpoint", str(ck / "ck"), "--dtype", "float64", "--json-out", str(tmp_path / "r.json")]
    assert main([*argv, "Call me Ishmael.", "--file", str(tmp_path / "t.txt")]) == 0
    out = capsys.readouterr().out
    assert "inputs: 3 texts (yours), padded to 8 tokens (real lengths [6, 8, 6])" in out and "PARITY OK" in out
    taps = {t["name"]: t for t in json.loads((tmp_path / "r.json").read_text())["results"][0]["taps"]}
    assert taps["embeddings"]["shape"][:2] == [3, 8]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"hello\n\xffbad\n",
            "t.txt:2: bytes that are not UTF-8; expected a UTF-8 text file",
        ),
        (b"\n  \n", "t.txt has no texts to compare on; expected one text per line. Received: 2 blank line(s)"),
    ],
)
def test_bad_text_files_exit_2_with_file_and_line(ck, tmp_path, capsys, content, message):
    (tmp_path / "t.txt").write_bytes(content)
    assert main(["report", "--checkpoint", str(ck / "ck"), "--file", str(tmp_path / "t.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_different_keras_checkpoint_names_the_tensors_that_differ(ck, tmp_path, capsys):
    config, tensors = load_checkpoint(ck / "ck")
    changed = dict(tensors)
    name = "bert.encoder.layer.1.output.dense.weight"
    changed[name] = tensors[name] + np.float32(0.25)
    save_checkpoint(tmp_path / "other", config, changed, tokenizer_from=ck / "ck")
    argv = [
        "report",
        "--checkpoint",
        str(ck / "ck"),
        "--keras-checkpoint",
        str(tmp_path / "other"),
        "--dtype",
        "float64",
    ]
    assert main([*argv, "--json-out", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert f"weights differ in 1 of {len(tensors)} tensors: {name} (max abs 2.50e-01)" in out
    assert "wrong transpose" not in out and "first divergence: encoder.layer.1" in out
    assert json.loads((tmp_path / "r.json").read_text())["weight_differences"] == [
        {"name": name, "max_abs": pytest.approx(0.25, abs=1e-6)}  # float32 sums: 0.25 up to rounding
    ]


def test_a_hugging_face_dir_as_checkpoint_points_to_init(ck, capsys):
    assert main(["report", "--checkpoint", str(ck / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"`bertcnn init CK_DIR --backbone {ck / 'hf'}`" in err


# -- --plot and --train-steps ------------------------------------------------------------------------
def test_plot_writes_a_png_per_report(tiny_ck, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot needs the `plot` extra: pip install 'bertcnn[plot]'")
    png = tmp_path / "taps.png"
    assert main(["report", "--checkpoint", str(tiny_ck), "--plot", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert f"wrote {png}" in capsys.readouterr().out


def test_report_trains_with_both_trainers_and_compares_moments(tiny_ck, tmp_path, capsys):
    args = ["report", "--checkpoint", str(tiny_ck), "--dtype", "float64", "--train-steps", "3",
            "--json-out", str(tmp_path / "r.json")]  # fmt: skip
    pytest.importorskip("matplotlib", reason="--plot needs the `plot` extra: pip install 'bertcnn[plot]'")
    png = tmp_path / "p.png"
    args += ["--plot", str(png)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "PARITY OK" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    (train,) = [r for r in doc["results"] if r["check"] == "train"]
    names = [t["name"] for t in train["taps"]]
    assert "train/fc.weight" in names and "moments/exp_avg_sq.bert.embeddings.word_embeddings.weight" in names
    assert not any("pooler" in n for n in names if n.startswith("moments/"))
    assert png.read_bytes()[:4] == b"\x89PNG"


# -- `bertcnn report` is honest: non-zero when it checked less than asked, says what it compared on.
@pytest.fixture
def words(tmp_path):
    return tiny_checkpoint(tmp_path / "ck", tokenizer="words")


def test_dtype_both_is_what_the_help_offers(words, capsys):
    assert main(["report", "--checkpoint", str(words), "--dtype", "both"]) == 0
    out = capsys.readouterr().out
    assert "forward float32 on cpu" in out and "forward float64 on cpu" in out


def test_without_a_tokenizer_it_says_it_compared_seeded_random_ids(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "bare")  # no tokenizer
    assert main(["report", "--checkpoint", str(tmp_path / "bare"), "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "rows of seeded random token ids" in out and "has no tokenizer" in out and " texts," not in out


@pytest.mark.skipif(gpu_unavailable("torch") is None, reason="a GPU is present: the no-GPU path does not apply")
def test_a_device_it_could_not_check_makes_the_run_incomplete(words, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert (
        main(["report", "--checkpoint", str(words), "--dtype", "float32", "--device", "all", "--json-out", str(out)])
        == 3
    )
    text = capsys.readouterr().out
    assert "NOT CHECKED: cuda" in text and "PARITY INCOMPLETE" in text and "PARITY OK" not in text
    doc = json.loads(out.read_text())
    assert doc["passed"] is False and doc["complete"] is False and doc["results"]


def test_json_goes_to_stdout_and_the_tables_to_stderr(words, capsys):
    assert main(["report", "--checkpoint", str(words), "--dtype", "float64", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["passed"] is True and doc["results"][0]["dtype"] == "float64"
    assert "PARITY OK" in err and "PARITY OK" not in out


def test_json_with_a_file_name_is_refused_with_the_new_option(words, tmp_path, capsys):
    assert main(["report", "--checkpoint", str(words), "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "--json-out FILE" in err and "Received: TEXT" in err and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("flag", ["--json-out", "--plot"])
def test_outputs_are_checked_before_any_work(words, tmp_path, flag, capsys):
    weights = words / "model.safetensors"
    before = weights.read_bytes()
    assert main(["report", "--checkpoint", str(words), flag, str(weights)]) == 2  # an input
    assert "must not be, contain or lie inside an input" in capsys.readouterr().err
    assert weights.read_bytes() == before
    kept = tmp_path / "kept.out"
    kept.write_text("mine")
    assert main(["report", "--checkpoint", str(words), flag, str(kept)]) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --force" in err and kept.read_text() == "mine"
    assert "weights:" not in capsys.readouterr().out  # nothing ran


def test_artifact_errors_print_nothing_on_stdout_first(words, tmp_path, capsys):
    assert main(["report", "--checkpoint", str(words), "--artifact", str(tmp_path / "notck")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "is not an export directory" in err


# -- `bertcnn report --mixed-precision bf16`: the bf16 tier on the CPU, torch.autocast vs Keras mixed_bfloat16.
def test_the_mixed_tier_runs_and_is_judged_by_its_entry(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    out = tmp_path / "r.json"
    argv = ["report", "--checkpoint", str(tmp_path / "ck"), "--dtype", "float32", "--mixed-precision", "bf16"]
    assert main([*argv, "--json-out", str(out)]) == 0
    runs = json.loads(out.read_text())["results"]
    (mixed,) = [r for r in runs if r["tier"] == "mixed"]
    assert mixed["dtype"] == "bfloat16" and mixed["passed"] and mixed["limitation"] is None
    taps = {t["name"]: t for t in mixed["taps"]}
    assert taps["logits"]["atol"] == tolerance_for("bfloat16", "cpu").atol
    assert "logits.argmax" in taps
    # bf16 compute really happened: farther from each other than float32 ever is.
    assert taps["logits"]["max_abs"] > tolerance_for("float32", "cpu").atol
    assert "forward bfloat16 [mixed] on cpu" in capsys.readouterr().out
