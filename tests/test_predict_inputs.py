"""predict's inputs: empty and non-UTF-8 files, stdin, and single weight files (.keras, .pt, ...) directly."""

from __future__ import annotations

import io
import json
import sys

import pytest

from parity.commands import main
from parity.commands.port import port
from parity.config import BertCnnConfig
from tests.helpers import MINILM_VOCAB, tiny_checkpoint

TEXTS = ["First line.", "A second, longer line of text."]


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    config = BertCnnConfig(**MINILM_VOCAB, label_names=("a", "b", "c"))
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", config, seed=2, tokenizer=embedded_dir)


def predict(capsys, *argv):
    code = main(["predict", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "has no texts to predict; expected one text per line. Received: an empty file"),
        (b"\n  \r\n\n", "has no texts to predict; expected one text per line. Received: 3 blank line(s)"),
    ],
)
def test_an_empty_file_says_so_not_give_file(ck, tmp_path, capsys, content, message):
    f = tmp_path / "in.txt"
    f.write_bytes(content)
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", str(f))
    assert (code, out) == (2, "")
    assert err == f"bertcnn predict: error: {f} {message}\n"


def test_non_utf8_bytes_are_reported_by_file_and_line(ck, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_bytes("fine\r\ncafé\n".encode() + b"caf\xe9\n")
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", str(f))
    assert (code, out) == (2, "")
    assert err.startswith(f"bertcnn predict: error: {f}:3: bytes that are not UTF-8") and err.count("\n") == 1
    assert err.rstrip().endswith("Received: byte b'\\xe9' on line 3")


def test_a_non_utf8_text_argument_is_refused_not_a_traceback(ck, capsys):
    text = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands such argv bytes over
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "fine", text)
    assert (code, out) == (2, "")
    assert err == (
        "bertcnn predict: error: TEXT argument 2 has bytes that are not UTF-8; expected UTF-8 text "
        "(or use --file). Received: b'caf\\xe9'\n"
    )


def test_file_dash_reads_stdin_with_bom_and_crlf(ck, capsys, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(("\ufeff" + "\r\n".join(TEXTS) + "\r\n").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--json", "--file", "-")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == TEXTS


@pytest.fixture(scope="module")
def reference(ck):
    """The directory checkpoint's logits: what every single-file form of the same weights must give."""
    capture = pytest.MonkeyPatch()
    out = {}
    for fw in ("torch", "keras"):
        buf = io.StringIO()
        capture.setattr("sys.stdout", buf)
        assert main(["predict", "--checkpoint", str(ck), "--framework", fw, "--json", *TEXTS]) == 0
        out[fw] = [json.loads(line) for line in buf.getvalue().splitlines()]
    capture.undo()
    return out


@pytest.mark.parametrize(
    ("name", "framework", "needs_config"),
    [("m.keras", "keras", False), ("m.safetensors", "torch", False), ("m.pt", "torch", True),
     ("m.weights.h5", "keras", True)],
)  # fmt: skip
def test_a_weight_file_predicts_as_its_checkpoint(ck, reference, tmp_path, capsys, name, framework, needs_config):
    f = tmp_path / name
    port(ck, f, progress=False)
    argv = ["--checkpoint", str(f), "--framework", framework, "--json", *TEXTS]
    code, _, err = predict(capsys, *argv)
    assert code == 2
    missing = "carries no model config; pass --config" if needs_config else "carries no tokenizer; pass --tokenizer"
    assert missing in err and err.count("\n") == 1
    extra = ["--tokenizer", str(ck)] + (["--config", str(ck / "config.json")] if needs_config else [])
    code, out, err = predict(capsys, *argv, *extra)
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert got == reference[framework]  # same weights, same build: bit-identical, names included


def test_a_config_that_disagrees_with_a_directorys_own_is_refused(ck, tmp_path, capsys):
    """The one reader's rule for every source that carries its config: --config may only repeat it."""
    other = tmp_path / "other.json"
    other.write_text(BertCnnConfig.from_json_file(ck / "config.json").replace(num_filters=9).to_json())
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--config", str(other), "x"]
    code, _, err = predict(capsys, *argv)
    assert code == 2 and "--config disagrees with the config stored in" in err and "num_filters" in err
    code, _, err = predict(
        capsys, "--checkpoint", str(ck), "--framework", "torch", "--config", str(ck / "config.json"), "x"
    )
    assert code == 0, err
