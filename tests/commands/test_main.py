"""The command line: report, init and predict, their outputs and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from parity import taps as T
from parity.commands import main


def test_report_on_the_embedded_model_as_users_run_it(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "parity", "report", "--dtype", "float32", "--json", str(out)],
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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, embedded_dir):
    d = tmp_path_factory.mktemp("ck") / "ck"
    assert main(["init", str(d), "--backbone", str(embedded_dir), "--num-labels", "3", "--kernel-sizes", "2,3"]) == 0
    return d


def test_init_writes_a_canonical_checkpoint_with_tokenizer(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert (config["num_labels"], config["kernel_sizes"]) == (3, [2, 3])
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "tokenizer.json").is_file()


def test_init_refuses_to_overwrite(checkpoint, capsys):
    assert main(["init", str(checkpoint)]) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_predict_json_lines_in_input_order(checkpoint, framework, tmp_path, capsys):
    texts = ["A long sentence, with a few more words than the others in this list.", "Short.", "Hi"]
    (tmp_path / "in.txt").write_text(texts[1] + "\n\n" + texts[2] + "\n")
    taps_file = tmp_path / "taps.npz"
    argv = ["predict", "--checkpoint", str(checkpoint), "--framework", framework, "--json"]
    assert main([*argv, "--file", str(tmp_path / "in.txt"), "--taps", str(taps_file), texts[0]]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["text"] for x in lines] == texts  # TEXT args first, then the file's non-blank lines
    assert all(len(x["logits"]) == 3 and x["label_id"] == int(np.argmax(x["logits"])) for x in lines)
    with np.load(taps_file) as z:
        assert {"input_ids", "attention_mask", T.LOGITS, "encoder.layer.5"} <= set(z.files)
        np.testing.assert_allclose(z[T.LOGITS], [x["logits"] for x in lines], atol=1e-5)


def test_predict_agrees_across_frameworks(checkpoint, capsys):
    logits = {}
    for fw in ("torch", "keras"):
        assert main(["predict", "--checkpoint", str(checkpoint), "--framework", fw, "--json", "Call me Ishmael."]) == 0
        logits[fw] = json.loads(capsys.readouterr().out)["logits"]
    np.testing.assert_allclose(logits["torch"], logits["keras"], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["report", "--checkpoint", "/nonexistent"], "Checkpoint not found"),
        (["predict", "--checkpoint", "/nonexistent", "--framework", "torch", "x"], "not found"),
        (["predict", "--checkpoint", "CK", "--framework", "torch"], "no texts"),
        (["predict", "--checkpoint", "CK", "--framework", "torch", "--file", "/nonexistent"], "--file"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, fragment, checkpoint, capsys):
    argv = [str(checkpoint) if a == "CK" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Received" in err and "Traceback" not in err
