"""`bertcnn predict`: clean stdout, progress only for a terminal, truncation and thread options."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from parity.batching import predict_logits
from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.reader import read_weights
from parity.progress import counter
from parity.tokenize import Tokenizer
from tests.helpers import MINILM_VOCAB, tiny_checkpoint

LINES = ["A short line.", "", "A somewhat longer line of real words, to make the batch uneven.", "Third."] * 5


@pytest.fixture(scope="module")
def unnamed(tmp_path_factory, embedded_dir):
    """Tiny random weights with the embedded tokenizer: the CLI end to end in well under a second."""
    config = BertCnnConfig(**MINILM_VOCAB)
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", config, seed=1, tokenizer=embedded_dir)


@pytest.fixture
def corpus(tmp_path):
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return f


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def predict(argv, monkeypatch, capsys, stderr):
    monkeypatch.setattr("sys.stderr", stderr)
    code = main(["predict", *argv])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_progress_goes_to_a_terminal_stderr_and_stdout_stays_results(framework, unnamed, corpus, monkeypatch, capsys):
    err = Terminal()
    argv = ["--checkpoint", str(unnamed), "--framework", framework, "--file", str(corpus), "--batch-size", "4"]
    code, out = predict(argv, monkeypatch, capsys, err)
    assert code == 0
    rows = out.splitlines()
    assert len(rows) == sum(1 for line in LINES if line.strip())
    assert all(len(r.split("\t")) == 3 for r in rows), "stdout holds only results"
    assert "15/15 [" in err.getvalue() and "text/s" in err.getvalue()


def test_no_progress_when_stderr_is_not_a_terminal_or_when_asked(unnamed, corpus, monkeypatch, capsys):
    argv = ["--checkpoint", str(unnamed), "--framework", "torch", "--file", str(corpus)]
    for stderr, extra in ((io.StringIO(), []), (Terminal(), ["--no-progress"])):
        code, _ = predict([*argv, *extra], monkeypatch, capsys, stderr)
        assert code == 0
        assert stderr.getvalue() == ""


def test_max_length_truncates_like_the_tokenizer(unnamed, monkeypatch, capsys):
    text = LINES[2]
    argv = ["--checkpoint", str(unnamed), "--framework", "torch", "--json", "--max-length", "5", text]
    code, out = predict(argv, monkeypatch, capsys, io.StringIO())
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


def test_progress_bar_counts_up_and_ends_the_line(monkeypatch):
    out = Terminal()
    monkeypatch.setattr("sys.stderr", out)
    p = counter(10, unit="text")
    p(4, 10)
    p(10, 10)
    text = out.getvalue()
    assert "10/10" in text and text.endswith("\n")
    assert counter(10, unit="text", enabled=False) is None


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
