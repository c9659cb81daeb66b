"""`bertcnn evaluate`: both builds give the same scores, which match predict's own labels; bad data exits 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from parity.commands import main
from parity.tokenize import Tokenizer

ROWS = [
    ("A wonderful, warm film.", "pos"),
    ("Dull and far too long.", "neg"),
    ("It was fine, I suppose.", "mid"),
    ("The best thing I have seen in years, and I have seen a great many things.", "pos"),
    ("Awful.", "neg"),
    ("Neither here nor there.", "mid"),
    ("I laughed, I cried, I went home.", "pos"),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, embedded_dir):
    d = tmp_path_factory.mktemp("ck") / "ck"
    argv = ["init", str(d), "--backbone", str(embedded_dir), "--labels", "neg,mid,pos", "--kernel-sizes", "2,3"]
    assert main([*argv, "--num-filters", "7"]) == 0
    return d


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "eval.jsonl"
    f.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in ROWS), encoding="utf-8")
    return f


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def results(checkpoint, data):
    """evaluate --json and predict --json in both frameworks (module-scoped: each builds a model)."""
    capture = pytest.MonkeyPatch()
    out = {}
    for fw in ("torch", "keras"):
        for cmd, extra in (("evaluate", ["--eval", str(data), "--max-length", "9"]), ("predict", [])):
            import io

            buf = io.StringIO()
            capture.setattr("sys.stdout", buf)
            texts = [] if cmd == "evaluate" else [t for t, _ in ROWS]
            args = [cmd, "--checkpoint", str(checkpoint), "--framework", fw, "--json", *extra]
            args += ["--max-length", "9"] if cmd == "predict" else []
            assert main([*args, *texts]) == 0
            out[fw, cmd] = buf.getvalue()
    capture.undo()
    return out


def test_both_frameworks_agree(results):
    t, k = (json.loads(results[fw, "evaluate"]) for fw in ("torch", "keras"))
    assert t["confusion_matrix"] == k["confusion_matrix"] and t["labels"] == k["labels"] == ["neg", "mid", "pos"]
    assert (t["accuracy"], t["macro_f1"]) == (k["accuracy"], k["macro_f1"])
    assert t["loss"] == pytest.approx(k["loss"], abs=1e-5)  # float32 MiniLM forward, both builds
    assert set(t) >= {"accuracy", "macro_f1", "per_label", "confusion_matrix", "labels", "num_examples", "truncated"}


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_scores_match_predicts_labels_counted_by_hand(results, framework, checkpoint):
    r = json.loads(results[framework, "evaluate"])
    predicted = [json.loads(line) for line in results[framework, "predict"].splitlines()]
    names = ["neg", "mid", "pos"]
    cm = [[0] * 3 for _ in names]
    loss = 0.0
    for (_, y), p in zip(ROWS, predicted, strict=True):
        cm[names.index(y)][p["label_id"]] += 1
        z = np.array(p["logits"], dtype=np.float64)
        loss += np.log(np.exp(z).sum()) - z[names.index(y)]
    assert r["confusion_matrix"] == cm
    assert r["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(3)) / len(ROWS))
    assert r["loss"] == pytest.approx(loss / len(ROWS), abs=1e-6)
    tok = Tokenizer(checkpoint, max_length=10**6)
    assert r["truncated"] == sum(n > 9 for n in tok.lengths([t for t, _ in ROWS])) > 0
    assert (r["num_examples"], r["max_length"]) == (len(ROWS), 9)


def test_table_names_labels_and_shows_the_matrix(checkpoint, data, capsys):
    code, out, _ = run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--eval", str(data), "--framework", "torch")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["label", "precision", "recall", "f1", "support"]
    assert [line.split()[0] for line in lines[1:4]] == ["neg", "mid", "pos"]
    assert "confusion matrix (rows: true label, columns: predicted)" in out
    assert lines[6].split() == ["neg", "mid", "pos"] and "macro-F1" in out and "truncated 0" in out


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"text": "ok", "label": "pos"}\n{"text": "ok", "label": "meh"}\n', ":2: unknown label"),
        ('{"text": "ok", "label": "pos"}\n{"text": "", "label": "neg"}\n', ":2: empty text"),
        (b'{"text": "ok", "label": "pos"}\n{"text": "\xff", "label": "neg"}\n', ":2: bytes that are not UTF-8"),
    ],
)
def test_a_bad_row_exits_2_with_file_line_and_prints_nothing(checkpoint, tmp_path, capsys, content, fragment):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--eval", str(f), "--framework", "keras")
    assert (code, out) == (2, "")
    assert err.startswith(f"bertcnn evaluate: error: {f}{fragment}") and err.count("\n") == 1 and "Received: " in err


def test_names_in_the_file_need_names_in_the_checkpoint(checkpoint, tmp_path, capsys):
    ck = tmp_path / "unnamed"
    shutil.copytree(checkpoint, ck)
    config = json.loads((ck / "config.json").read_text())
    del config["id2label"], config["label2id"]
    (ck / "config.json").write_text(json.dumps(config))
    f = tmp_path / "d.csv"
    f.write_text("text,label\nfine,good\nbad,poor\nso-so,meh\n")
    code, out, err = run(capsys, "evaluate", "--checkpoint", str(ck), "--eval", str(f), "--framework", "torch")
    assert (code, out) == (2, "") and "the checkpoint names no labels" in err and "--labels" in err
