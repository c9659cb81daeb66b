"""`bertcnn predict`: results on stdout (JSON lines, or label, logits and text columns), progress only for
a terminal, truncation counted, options checked; texts from arguments, files and stdin; weights from a
checkpoint directory or a single weight file."""

from __future__ import annotations

import io
import json
import math
import sys

import numpy as np
import pytest

from parity import taps as T
from parity.batching import predict_logits
from parity.commands import main
from parity.commands.port import port
from parity.config import BertCnnConfig
from parity.io.reader import read_weights
from parity.tokenize import Tokenizer
from tests.helpers import MINILM_VOCAB, Terminal, tiny_checkpoint

LINES = ["A short line.", "", "A somewhat longer line of real words, to make the batch uneven.", "Third."] * 5
LONG = "A somewhat longer line of real words, to make the batch uneven and cross the limit."
TEXTS = ["First line.", "A second, longer line of text."]


def _tiny(tmp_path_factory, embedded_dir, names, seed):
    """Tiny random weights over MiniLM's vocabulary with the embedded tokenizer: the CLI end to end in well
    under a second."""
    config = BertCnnConfig(**MINILM_VOCAB, label_names=names)
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", config, seed=seed, tokenizer=embedded_dir)


@pytest.fixture(scope="module")
def unnamed(tmp_path_factory, embedded_dir):
    return _tiny(tmp_path_factory, embedded_dir, None, seed=1)


@pytest.fixture(scope="module")
def named(tmp_path_factory, embedded_dir):
    return _tiny(tmp_path_factory, embedded_dir, ("neg", "mid", "pos"), seed=1)


@pytest.fixture(scope="module")
def lettered(tmp_path_factory, embedded_dir):
    return _tiny(tmp_path_factory, embedded_dir, ("a", "b", "c"), seed=2)


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return f


def predict_with_stderr(argv, monkeypatch, capsys, stderr):
    """predict with `stderr` as sys.stderr: (exit code, stdout)."""
    monkeypatch.setattr("sys.stderr", stderr)
    code = main(["predict", *argv])
    return code, capsys.readouterr().out


def predict_outputs(capsys, monkeypatch, *argv):
    """predict with a plain (not a terminal) stderr: (exit code, stdout, stderr)."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    code = main(["predict", *argv])
    return code, capsys.readouterr().out, err.getvalue()


def predict(capsys, *argv):
    """predict as pytest captures it: (exit code, stdout, stderr)."""
    code = main(["predict", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_progress_goes_to_a_terminal_stderr_and_stdout_stays_results(framework, unnamed, corpus, monkeypatch, capsys):
    err = Terminal()
    argv = ["--checkpoint", str(unnamed), "--framework", framework, "--file", str(corpus), "--batch-size", "4"]
    code, out = predict_with_stderr(argv, monkeypatch, capsys, err)
    assert code == 0
    rows = out.splitlines()
    assert len(rows) == sum(1 for line in LINES if line.strip())
    assert all(len(r.split("\t")) == 3 for r in rows), "stdout holds only results"
    assert "15/15 [" in err.getvalue() and "text/s" in err.getvalue()


def test_no_progress_when_stderr_is_not_a_terminal_or_when_asked(unnamed, corpus, monkeypatch, capsys):
    argv = ["--checkpoint", str(unnamed), "--framework", "torch", "--file", str(corpus)]
    for stderr, extra in ((io.StringIO(), []), (Terminal(), ["--no-progress"])):
        code, _ = predict_with_stderr([*argv, *extra], monkeypatch, capsys, stderr)
        assert code == 0
        assert stderr.getvalue() == ""


def test_max_length_truncates_like_the_tokenizer(unnamed, monkeypatch, capsys):
    text = LINES[2]
    argv = ["--checkpoint", str(unnamed), "--framework", "torch", "--json", "--max-length", "5", text]
    code, out = predict_with_stderr(argv, monkeypatch, capsys, io.StringIO())
    assert code == 0
    from bertcnn_torch.runtime import forward as torch_forward

    w = read_weights(unnamed)
    forward = torch_forward(w.config, w.tensors)
    tok = Tokenizer(unnamed, max_length=5)
    assert tok([text])["input_ids"].shape == (1, 5)
    got = np.array(json.loads(out)["logits"], dtype=np.float32)
    np.testing.assert_allclose(got, predict_logits(forward, tok, [text])[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("option", ["--max-length", "--threads", "--max-tokens", "--batch-size"])
@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_non_positive_numbers_are_refused_saying_what_was_received(option, value, unnamed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(unnamed), "--framework", "torch", option, value, "hi"])
    assert exit_info.value.code == 2
    assert f"expected a positive integer. Received: {value!r}" in capsys.readouterr().err


def test_max_length_past_the_position_table_is_refused(unnamed, capsys):
    argv = ["predict", "--checkpoint", str(unnamed), "--framework", "torch", "--max-length", "41", "hi"]
    assert main(argv) == 2
    assert "--max-length must be at most max_position_embeddings=40. Received: 41" in capsys.readouterr().err


def test_keras_compiled_path_matches_eager_and_still_checks_inputs(unnamed):
    from bertcnn_tf.runtime import forward as keras_forward

    w = read_weights(unnamed)
    config = w.config
    compiled = keras_forward(config, w.tensors)
    eager = keras_forward(config, w.tensors, compiled=False)
    tok = Tokenizer(unnamed, max_length=config.max_position_embeddings)
    for texts in (LINES[:3], LINES[2:9]):  # two shapes through one trace
        inputs = tok([t for t in texts if t])
        np.testing.assert_allclose(compiled(inputs), eager(inputs), rtol=0, atol=1e-6)
    ids_only = {"input_ids": tok([LINES[0]])["input_ids"]}
    np.testing.assert_allclose(compiled(ids_only), eager(ids_only), rtol=0, atol=1e-6)
    bad = tok([LINES[0]])
    bad["input_ids"][0, 1] = config.vocab_size
    with pytest.raises(ValueError, match=r"`input_ids` must lie in \[0, vocab_size=30522\).*Received: out-of-range"):
        compiled(bad)


# -- label names and probabilities -------------------------------------------------------------------
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_json_has_name_id_and_float64_softmax(named, framework, capsys, monkeypatch):
    code, out, _ = predict_outputs(
        capsys, monkeypatch, "--checkpoint", str(named), "--framework", framework, "--json", "Hi"
    )
    assert code == 0
    row = json.loads(out)
    assert set(row) == {"text", "label", "label_id", "logits", "probabilities"}
    z = row["logits"]
    assert (
        row["label_id"] == max(range(3), key=z.__getitem__) and row["label"] == ("neg", "mid", "pos")[row["label_id"]]
    )
    total = sum(math.exp(x) for x in z)
    assert row["probabilities"] == pytest.approx([math.exp(x) / total for x in z], abs=1e-15)


def test_plain_text_columns_are_name_logits_text_and_ids_without_names(named, unnamed, capsys, monkeypatch):
    got = {}
    for ck in (named, unnamed):
        code, out, _ = predict_outputs(
            capsys, monkeypatch, "--checkpoint", str(ck), "--framework", "torch", "Hi", "Bye"
        )
        assert code == 0
        got[ck] = [line.split("\t") for line in out.splitlines()]
    for (name, logits, _text), (label_id, same_logits, _) in zip(got[named], got[unnamed], strict=True):
        assert logits == same_logits  # same weights: only the label column differs
        z = [float(x) for x in logits.split()]
        assert label_id == str(int(np.argmax(z))) and name == ("neg", "mid", "pos")[int(label_id)]
    assert [row[2] for row in got[named]] == ["Hi", "Bye"]


def test_a_tab_newline_or_backslash_in_a_text_is_escaped_so_each_text_is_one_line_of_three_columns(
    named, capsys, monkeypatch
):
    texts = ["tab\there", "two\nlines", "cr\rhere", "back\\slash \\t", "plain"]
    code, out, _ = predict_outputs(capsys, monkeypatch, "--checkpoint", str(named), "--framework", "torch", *texts)
    assert code == 0
    rows = [line.split("\t") for line in out.split("\n")[:-1]]
    assert [len(row) for row in rows] == [3] * len(texts)
    assert [row[2] for row in rows] == ["tab\\there", "two\\nlines", "cr\\rhere", "back\\\\slash \\\\t", "plain"]
    code, out, _ = predict_outputs(capsys, monkeypatch, "--checkpoint", str(named), "--framework", "torch", "--json",
                                   *texts)  # fmt: skip
    assert [json.loads(line)["text"] for line in out.splitlines()] == texts  # JSON needs no escape of ours


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_text_argument_is_refused_not_labelled(named, text, capsys):
    code, out, err = predict(capsys, "--checkpoint", str(named), "--framework", "torch", "fine", text)
    assert (code, out) == (2, "")
    assert err.startswith("bertcnn predict: error: TEXT argument 2 is ") and err.count("\n") == 1
    assert err.rstrip().endswith(f"Received: {text!r}")


def test_truncation_is_counted_on_stderr(named, capsys, monkeypatch):
    argv = ["--checkpoint", str(named), "--framework", "torch", "--max-length", "6", LONG, "Hi", LONG]
    code, out, err = predict_outputs(capsys, monkeypatch, *argv)
    assert code == 0 and len(out.splitlines()) == 3
    assert err == (
        "note: 2 of 3 texts were longer than 6 tokens (--max-length) and were cut to 6, keeping [CLS] and [SEP] "
        "(the tokenizer's own truncation, as Hugging Face)\n"
    )
    code, _, err = predict_outputs(capsys, monkeypatch, "--checkpoint", str(named), "--framework", "torch", LONG * 3)
    assert "1 of 1 texts were longer than 40 tokens (the model's position table)" in err


def test_help_describes_text_checkpoint_framework_and_columns(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for fragment in ("TEXT texts to classify", "--checkpoint CK a checkpoint directory", "which build runs",
                     "LABEL<TAB>LOGITS<TAB>TEXT", '"probabilities"', "'-' reads standard input"):  # fmt: skip
        assert fragment in out


# -- inputs: empty and non-UTF-8 files, stdin, single weight files -----------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "has no texts to predict; expected one text per line. Received: an empty file"),
        (b"\n  \r\n\n", "has no texts to predict; expected one text per line. Received: 3 blank line(s)"),
    ],
)
def test_an_empty_file_says_so_not_give_file(lettered, tmp_path, capsys, content, message):
    f = tmp_path / "in.txt"
    f.write_bytes(content)
    code, out, err = predict(capsys, "--checkpoint", str(lettered), "--framework", "torch", "--file", str(f))
    assert (code, out) == (2, "")
    assert err == f"bertcnn predict: error: {f} {message}\n"


def test_non_utf8_bytes_are_reported_by_file_and_line(lettered, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_bytes("fine\r\ncafé\n".encode() + b"caf\xe9\n")
    code, out, err = predict(capsys, "--checkpoint", str(lettered), "--framework", "torch", "--file", str(f))
    assert (code, out) == (2, "")
    assert err.startswith(f"bertcnn predict: error: {f}:3: bytes that are not UTF-8") and err.count("\n") == 1
    assert err.rstrip().endswith("Received: byte b'\\xe9' on line 3")


def test_a_non_utf8_text_argument_is_refused_not_a_traceback(lettered, capsys):
    text = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands such argv bytes over
    code, out, err = predict(capsys, "--checkpoint", str(lettered), "--framework", "torch", "fine", text)
    assert (code, out) == (2, "")
    assert err == (
        "bertcnn predict: error: TEXT argument 2 has bytes that are not UTF-8; expected UTF-8 text "
        "(or use --file). Received: b'caf\\xe9'\n"
    )


def test_file_dash_reads_stdin_with_bom_and_crlf(lettered, capsys, monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(("\ufeff" + "\r\n".join(TEXTS) + "\r\n").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = predict(capsys, "--checkpoint", str(lettered), "--framework", "torch", "--json", "--file", "-")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == TEXTS


@pytest.fixture(scope="module")
def reference(lettered):
    """The directory checkpoint's logits: what every single-file form of the same weights must give."""
    capture = pytest.MonkeyPatch()
    out = {}
    for fw in ("torch", "keras"):
        buf = io.StringIO()
        capture.setattr("sys.stdout", buf)
        assert main(["predict", "--checkpoint", str(lettered), "--framework", fw, "--json", *TEXTS]) == 0
        out[fw] = [json.loads(line) for line in buf.getvalue().splitlines()]
    capture.undo()
    return out


@pytest.mark.parametrize(
    ("name", "framework", "needs_config"),
    [("m.keras", "keras", False), ("m.safetensors", "torch", False), ("m.pt", "torch", True),
     ("m.weights.h5", "keras", True)],
)  # fmt: skip
def test_a_weight_file_predicts_as_its_checkpoint(lettered, reference, tmp_path, capsys, name, framework, needs_config):
    f = tmp_path / name
    port(lettered, f, progress=False)
    argv = ["--checkpoint", str(f), "--framework", framework, "--json", *TEXTS]
    code, _, err = predict(capsys, *argv)
    assert code == 2
    missing = "carries no model config; pass --config" if needs_config else "carries no tokenizer; pass --tokenizer"
    assert missing in err and err.count("\n") == 1
    extra = ["--tokenizer", str(lettered)] + (["--config", str(lettered / "config.json")] if needs_config else [])
    code, out, err = predict(capsys, *argv, *extra)
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert got == reference[framework]  # same weights, same build: bit-identical, names included


def test_a_config_that_disagrees_with_a_directorys_own_is_refused(lettered, tmp_path, capsys):
    """The one reader's rule for every source that carries its config: --config may only repeat it."""
    other = tmp_path / "other.json"
    other.write_text(BertCnnConfig.from_json_file(lettered / "config.json").replace(num_filters=9).to_json())
    argv = ["--checkpoint", str(lettered), "--framework", "torch", "--config", str(other), "x"]
    code, _, err = predict(capsys, *argv)
    assert code == 2 and "--config disagrees with the config stored in" in err and "num_filters" in err
    code, _, err = predict(
        capsys, "--checkpoint", str(lettered), "--framework", "torch", "--config", str(lettered / "config.json"), "x"
    )
    assert code == 0, err


# -- the real MiniLM, as `bertcnn init` makes it -----------------------------------------------------
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_predict_json_lines_in_input_order(minilm_ck, framework, tmp_path, capsys):
    texts = ["A long sentence, with a few more words than the others in this list.", "Short.", "Hi"]
    (tmp_path / "in.txt").write_text(texts[1] + "\n\n" + texts[2] + "\n")
    taps_file = tmp_path / "taps.npz"
    argv = ["predict", "--checkpoint", str(minilm_ck), "--framework", framework, "--json"]
    assert main([*argv, "--file", str(tmp_path / "in.txt"), "--taps", str(taps_file), texts[0]]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["text"] for x in lines] == texts  # TEXT args first, then the file's non-blank lines
    assert all(len(x["logits"]) == 3 and x["label_id"] == int(np.argmax(x["logits"])) for x in lines)
    with np.load(taps_file) as z:
        assert {"input_ids", "attention_mask", T.LOGITS, "encoder.layer.5"} <= set(z.files)
        np.testing.assert_allclose(z[T.LOGITS], [x["logits"] for x in lines], atol=1e-5)


def test_predict_agrees_across_frameworks(minilm_ck, capsys):
    logits = {}
    for fw in ("torch", "keras"):
        assert main(["predict", "--checkpoint", str(minilm_ck), "--framework", fw, "--json", "Call me Ishmael."]) == 0
        logits[fw] = json.loads(capsys.readouterr().out)["logits"]
    np.testing.assert_allclose(logits["torch"], logits["keras"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_mixed_precision_predicts_in_bf16_within_its_tier(framework, tmp_path, embedded_dir, capsys):
    """`--mixed-precision bf16`: bf16 compute, float32 weights; logits within the bfloat16 entry, same labels."""
    from parity.tolerance import tolerance_for
    from tests.helpers import minilm_vocab_checkpoint, sentences

    ck = minilm_vocab_checkpoint(tmp_path / "ck", embedded_dir)
    texts = sentences(40)
    got = {}
    for mixed in ([], ["--mixed-precision", "bf16"]):
        assert main(["predict", "--checkpoint", str(ck), "--framework", framework, "--json", *mixed, *texts]) == 0
        got[bool(mixed)] = np.array([json.loads(line)["logits"] for line in capsys.readouterr().out.splitlines()])
    gap = float(np.abs(got[True] - got[False]).max())
    assert 0 < gap <= tolerance_for("bfloat16", "cpu").atol  # really bf16, and within its bound
    assert (got[True].argmax(1) == got[False].argmax(1)).mean() >= 0.95


def test_mixed_precision_is_for_checkpoints_not_exports(tmp_path, capsys):
    from tests.helpers import tiny_checkpoint

    ck = tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    assert main(["export", "--checkpoint", str(ck), "--format", "onnx", str(tmp_path / "onnx")]) == 0
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "onnx"), "--mixed-precision", "bf16", "w5 w6"]) == 2
    assert "--mixed-precision applies to a checkpoint" in capsys.readouterr().err
