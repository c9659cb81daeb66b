"""`predict --taps FILE` is checked before any work: no file of the user's overwritten unasked, no late failure.

Each refusal is one line, exit 2, nothing printed on stdout and nothing written; before this
check, `--taps` replaced any file (an input included) and an unwritable path failed after all
the work, naming an internal temp file.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from parity.commands import main
from tests.helpers import minilm_vocab_checkpoint as tiny_checkpoint
from tests.helpers import sentences


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", embedded_dir)


def predict(capsys, *argv):
    code = main(["predict", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_refusal(code, out, err) -> str:
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and "Received: " in err
    return err


def test_the_input_file_is_never_turned_into_taps(ck, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(sentences(3)) + "\n", encoding="utf-8")
    before = data.read_bytes()
    for extra in ([], ["--force"]):
        argv = ["--checkpoint", str(ck), "--framework", "torch", "--file", str(data), "--taps", str(data), *extra]
        err = one_line_refusal(*predict(capsys, *argv))
        assert "--taps must not be, contain or lie inside an input of this run" in err
    assert data.read_bytes() == before


def test_an_existing_taps_file_needs_force(ck, tmp_path, capsys):
    taps = tmp_path / "notes.txt"
    taps.write_text("mine", encoding="utf-8")
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--taps", str(taps), "Hello."]
    err = one_line_refusal(*predict(capsys, *argv))
    assert f"--taps {str(taps)!r} already exists; pass --force to replace it" in err
    assert taps.read_text() == "mine"
    code, _, err = predict(capsys, *argv, "--force")
    assert code == 0, err
    with np.load(taps) as z:
        assert z["input_ids"].shape[0] == 1 and "logits" in z.files


@pytest.mark.parametrize("where", ["missing", "read-only"])
def test_an_unwritable_taps_path_is_refused_before_any_work(ck, tmp_path, capsys, where):
    folder = tmp_path / where
    if where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder.mkdir()
        folder.chmod(0o555)
    try:
        argv = ["--checkpoint", str(ck), "--framework", "torch", "--taps", str(folder / "t.npz"), "Hello."]
        err = one_line_refusal(*predict(capsys, *argv))
        assert err.startswith("bertcnn predict: error: --taps: the folder ") and ".tmp-" not in err
        assert ("does not exist" if where == "missing" else "is not writable") in err
    finally:
        if folder.exists():
            folder.chmod(0o755)


def test_taps_with_standard_input_is_refused_saying_why(ck, tmp_path, capsys):
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--file", "-", "--taps", str(tmp_path / "t.npz")]
    err = one_line_refusal(*predict(capsys, *argv))
    assert "standard input is read as it comes and cannot be read twice" in err and "--file FILE" in err
    assert not (tmp_path / "t.npz").exists()


def test_taps_from_a_file_still_hold_every_text(ck, tmp_path, capsys):
    texts = sentences(5)
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts[1:]) + "\n", encoding="utf-8")
    taps = tmp_path / "t.npz"
    code, out, err = predict(
        capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", str(f), "--taps", str(taps), texts[0]
    )
    assert code == 0, err
    assert len(out.splitlines()) == 5
    with np.load(taps) as z:
        assert z["input_ids"].shape[0] == z["logits"].shape[0] == 5
        printed = np.array([[float(x) for x in line.split("\t")[1].split()] for line in out.splitlines()])
        np.testing.assert_allclose(z["logits"], printed, rtol=0, atol=2e-6)
