"""`bertcnn report` for a newcomer: missing packages refused up front, a crashed backend keeps
what finished, the user's own texts, weight differences named, help that states exit codes."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from parity.commands import main
from parity.io.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import tiny_hf_bert


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
    proc = _python(code, *argv, "--json", str(tmp_path / "r.json"))
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
        [sys.executable, "-m", "parity", *argv, "--json", str(tmp_path / "r.json")],
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
    argv = ["report", "--checkpoint", str(ck / "ck"), "--dtype", "float64", "--json", str(tmp_path / "r.json")]
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
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 1
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


def test_help_states_exit_codes_defaults_and_version():
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "parity", *argv], capture_output=True, text=True, timeout=60)

    report = " ".join(run("report", "--help").stdout.split())
    assert "Exit codes: 0 every check ran and passed; 1 parity failure" in report and "3 incomplete" in report
    init = " ".join(run("init", "--help").stdout.split())
    assert all(f"(default: {d})" in init for d in ("3,4,5", "100", "0")) and "(default: 2" in init
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("bertcnn ")


def test_strict_refusal_is_one_summary_line_then_the_tensors(ck, tmp_path, capsys):
    config, tensors = load_checkpoint(ck / "ck")
    from safetensors.numpy import save_file

    save_file({k: v for k, v in tensors.items() if k != "fc.bias"}, str(tmp_path / "w.safetensors"))
    (tmp_path / "c.json").write_text(config.to_json())
    assert (
        main(["port", str(tmp_path / "w.safetensors"), str(tmp_path / "o"), "--config", str(tmp_path / "c.json")]) == 2
    )
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith("bertcnn port: error: ") and first.endswith(
        "Received: 1 missing, 0 unexpected, 0 mis-shaped tensors"
    )
    assert rest == ["  missing: fc.bias (expected shape (2,))"]
