"""`bertcnn predict` streams: bounded memory, first results while a pipe is open, same logits as whole-file batching.

The fault tests here (a pipe's first result, memory that does not grow with the input, a closed
stdout) fail on the code before streaming, which read all input before printing anything.
"""

from __future__ import annotations

import contextlib
import io
import json
import select
import subprocess
import sys
import time

import numpy as np
import pytest

from parity.commands import main
from tests.helpers import bertcnn, child_env, sentences
from tests.helpers import minilm_vocab_checkpoint as tiny_checkpoint


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", embedded_dir, label_names=("a", "b", "c"))


def predict(capsys, *argv):
    code = main(["predict", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _readline(stream, timeout: float) -> bytes:
    """One line of a child's stdout, or b'' when none came within `timeout` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else b""


def test_a_pipe_gets_each_result_before_stdin_is_closed(ck):
    texts = sentences(3)
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--file", "-", "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "parity", "predict", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        for text in texts[:2]:  # one line at a time, the pipe left open: each answer must come back anyway
            proc.stdin.write(text.encode() + b"\n")
            proc.stdin.flush()
            line = _readline(proc.stdout, timeout=120)
            assert line.decode().endswith(f"\t{text}\n"), f"no result for {text!r} while stdin was open: {line!r}"
        proc.stdin.write(texts[2].encode() + b"\n")
        proc.stdin.close()
        rest = proc.stdout.read().decode()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
        assert rest.endswith(f"\t{texts[2]}\n") and rest.count("\n") == 1
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _peak_rss_mib(ck, lines_file) -> int:
    """Peak RSS of a `predict --file -` child, measured by a fresh parent that has no other children."""
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--file", "-", "--threads", "1"]
    argv += ["--max-length", "8", "--batch-size", "256"]  # cheap forwards: the test is about memory
    script = (
        "import resource, subprocess, sys\n"
        f"with open({str(lines_file)!r}, 'rb') as f:\n"
        f"    subprocess.run([sys.executable, '-m', 'parity', 'predict', *{argv!r}], stdin=f,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=child_env(), timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.slow  # 12 s: two 20,000- and 200,000-line runs
def test_peak_memory_does_not_grow_with_the_number_of_lines(ck, tmp_path):
    """3,000 vs 30,000 lines: before streaming, the larger input took ~220 MiB more (all texts and tokens held)."""
    texts = sentences(30_000)
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("\n".join(texts[:3000]) + "\n", encoding="utf-8")
    large.write_text("\n".join(texts) + "\n", encoding="utf-8")
    peaks = [_peak_rss_mib(ck, f) for f in (small, large)]
    assert peaks[1] - peaks[0] < 48, f"peak RSS {peaks[0]} MiB for 3k lines, {peaks[1]} MiB for 30k"


def test_streamed_logits_equal_whole_file_batching_on_real_sentences(ck):
    """Windows of any size give a text the logits whole-file batching gave it: float32, to 1e-6, same argmax."""
    from bertcnn_torch.runtime import forward as torch_forward
    from parity.batching import predict_encoded, predict_stream, windows
    from parity.io.reader import read_weights
    from parity.tokenize import Tokenizer

    texts = sentences(1500)
    w = read_weights(ck)
    forward = torch_forward(w.config, w.tensors)
    tok = Tokenizer(ck, max_length=w.config.max_position_embeddings)
    whole = predict_encoded(forward, tok, tok.encode(texts))
    assert whole.dtype == np.float32
    for size in (1, 97, 1000):
        streamed = np.concatenate([z for _, z in predict_stream(forward, tok, windows(texts, size=size))])
        assert streamed.dtype == np.float32
        assert np.abs(streamed - whole).max() <= 1e-6
        assert (streamed.argmax(1) == whole.argmax(1)).all()


def test_many_windows_keep_input_order_and_one_truncation_note(ck, tmp_path, capsys):
    """TEXT arguments first, then the file's lines, across window boundaries; truncation counted over all."""
    texts = sentences(5000)  # more than one window (4096 texts)
    f = tmp_path / "in.txt"
    f.write_text("\n\n".join(texts[1:]) + "\n", encoding="utf-8")  # blank lines between: skipped
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--json", "--max-length", "12", "--threads", "1"]
    code, out, err = predict(capsys, *argv, "--file", str(f), texts[0])
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == texts
    from parity.tokenize import Tokenizer

    long = sum(n > 12 for n in Tokenizer(ck, max_length=10**6).lengths(texts))
    assert err == (
        f"note: {long} of 5000 texts were longer than 12 tokens (--max-length) and were cut to 12, keeping [CLS] "
        "and [SEP] (the tokenizer's own truncation, as Hugging Face)\n"
    )


def test_a_bad_byte_deep_in_a_file_is_refused_before_any_output(ck, tmp_path, capsys):
    texts = sentences(4500)
    f = tmp_path / "in.txt"
    f.write_bytes(("\n".join(texts) + "\n").encode() + b"caf\xe9\n")
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", str(f))
    assert (code, out) == (2, "")
    assert err.startswith(f"bertcnn predict: error: {f}:4501: bytes that are not UTF-8") and err.count("\n") == 1
    assert err.rstrip().endswith("Received: byte b'\\xe9' on line 4501")


def test_a_bad_byte_on_stdin_stops_at_its_line_after_the_results_before_it(ck, capsys, monkeypatch):
    texts = sentences(4200)
    data = ("\n".join(texts) + "\n").encode() + b"caf\xe9\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", "-")
    assert code == 2
    # Every line before the bad one (the TEXT column writes a backslash as two).
    assert [line.split("\t")[2] for line in out.splitlines()] == [t.replace("\\", "\\\\") for t in texts]
    assert err.startswith("bertcnn predict: error: <stdin>:4201: bytes that are not UTF-8") and err.count("\n") == 1


def test_fifty_good_lines_and_a_bad_byte_on_stdin_give_fifty_results_then_the_error(ck, capsys, monkeypatch):
    """The good lines read in the same window as the bad byte are answered too, as docs/commands.md promises."""
    texts = sentences(50)
    data = ("\n".join(texts) + "\n").encode() + b"caf\xe9\nnever read\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", "-")
    assert code == 2
    assert [line.split("\t")[2] for line in out.splitlines()] == [t.replace("\\", "\\\\") for t in texts]
    assert err == ("bertcnn predict: error: <stdin>:51: bytes that are not UTF-8; expected a UTF-8 text file "
                   "(re-save it as UTF-8). Received: byte b'\\xe9' on line 51\n")  # fmt: skip


def test_empty_stdin_is_said_as_such(ck, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\n \n")))
    code, out, err = predict(capsys, "--checkpoint", str(ck), "--framework", "torch", "--file", "-")
    assert (code, out) == (2, "")
    assert err == (
        "bertcnn predict: error: standard input has no texts to predict; expected one text per line. "
        "Received: 2 blank line(s)\n"
    )


@pytest.mark.slow  # a child; the pipe test stays in the default
def test_a_reader_that_stops_reading_ends_the_run_quietly(ck):
    """`bertcnn predict --file - | head -1`: no BrokenPipeError traceback when the reader goes away."""
    argv = ["--checkpoint", str(ck), "--framework", "torch", "--file", "-", "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "parity", "predict", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        texts = sentences(20)
        proc.stdin.write(texts[0].encode() + b"\n")
        proc.stdin.flush()
        assert _readline(proc.stdout, timeout=120), "no first result"
        proc.stdout.close()  # the reader is gone
        time.sleep(0.2)
        with contextlib.suppress(BrokenPipeError):  # it may be gone before all of this is written
            proc.stdin.write("".join(t + "\n" for t in texts[1:]).encode())
            proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read().decode() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow  # a child; the pipe test next to it stays in the default
def test_file_dash_streams_a_redirected_file_too(ck, tmp_path):
    texts = sentences(30)
    f = tmp_path / "in.txt"
    f.write_bytes(("\ufeff" + "\r\n".join(texts) + "\r\n").encode())
    with open(f, "rb") as stdin:
        r = bertcnn("predict", "--checkpoint", str(ck), "--framework", "torch", "--file", "-", stdin=stdin)
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[2] for line in r.stdout.splitlines()] == [t.replace("\\", "\\\\") for t in texts]
    assert [line[:15] for line in r.stderr.splitlines()] == ["note: 4 of 30 t"]  # the truncation note, no chatter
