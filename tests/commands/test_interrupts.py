"""Ctrl-C (SIGINT) or SIGTERM ends every command the same way: one line on stderr, exit 130, no
traceback, nothing left behind (staged output removed, no lock), and never swallowed: an interrupt
raised inside a callback that only reports errors still stops the command before it publishes.

Each command runs in a child that waits at a point of its work (`tests.helpers.start_paused`: a
function it calls, wrapped), and is signalled for real there."""

from __future__ import annotations

import gc
import os
import signal
import subprocess

import pytest

from parity import interrupt
from parity.commands import main
from tests.helpers import files, start_paused, tiny_hf_bert, wait_for_file, write_jsonl

LINE = "interrupted by {}: stopped; nothing was left half-written (an output is published whole or not at all)"


def _case(command: str, tmp_path) -> tuple[list[str], str, str]:
    """(argv, where it waits, the output that must not appear) for `command` on a tiny checkpoint."""
    ck, data = files(tmp_path)
    out = str(tmp_path / "out")
    if command == "port":  # a folder, staged beside DST: the weights written, not yet published
        return ["port", str(ck), out], "parity.commands.port:write_safetensors+", out
    if command == "port-file":  # one file, staged beside DST, whole, not yet published
        out = str(tmp_path / "out.safetensors")
        return ["port", str(ck), out], "parity.commands.port:write_safetensors+", out
    if command == "init":
        tiny_hf_bert(tmp_path / "hf")
        return ["init", out, "--backbone", str(tmp_path / "hf")], "parity.commands.init:write_checkpoint_files", out
    if command == "predict":
        return (["predict", "--checkpoint", str(ck), "--framework", "torch", "--file", str(data)],
                "parity.batching:predict_encoded", out)  # fmt: skip
    if command == "evaluate":
        write_jsonl(tmp_path / "ids.jsonl", 9, names=("0", "1", "2"))
        return (["evaluate", "--checkpoint", str(ck), "--framework", "torch", "--eval", str(tmp_path / "ids.jsonl")],
                "parity.batching:predict_encoded", out)  # fmt: skip
    if command == "report":
        json_out = str(tmp_path / "report.json")
        at = "parity.commands.report:Report.run_backend"
        return ["report", "--checkpoint", str(ck), "--json-out", json_out], at, json_out
    if command == "export":  # the model file written in the staging folder
        return (["export", out, "--checkpoint", str(ck), "--format", "onnx", "--framework", "torch"],
                "parity.commands.export:tensor_specs", out)  # fmt: skip
    assert command == "train"
    return (["train", "--checkpoint", str(ck), "--train", str(data), "--out", out, "--framework", "torch",
             "--epochs", "1", "--batch-size", "4"], "parity.commands.train:read_weights", out)  # fmt: skip


STAGED: dict[str, set[str]] = {}  # test id -> what was beside the outputs when the signal came


def _interrupt(argv: list[str], at: str, tmp_path, signum: int) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `argv` until it waits at `at`, signal it; (its result, what it left in tmp_path)."""
    ready = tmp_path / "ready"
    before = {p.name for p in tmp_path.iterdir()}
    child = start_paused(argv, at, ready)
    try:
        wait_for_file(ready, child)
        STAGED[str(tmp_path)] = {p.name for p in tmp_path.iterdir()} - before - {"ready"}
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)  # at once: it would sleep 600 s at the pause otherwise
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    left = {p.name for p in tmp_path.iterdir()} - before - {"ready"}
    return subprocess.CompletedProcess(argv, child.returncode, out, err), left


@pytest.mark.parametrize(
    ("command", "signum"),
    [
        ("port", signal.SIGINT),
        ("port", signal.SIGTERM),
        ("port-file", signal.SIGINT),
        ("init", signal.SIGINT),
        ("report", signal.SIGTERM),
        pytest.param("predict", signal.SIGINT, marks=pytest.mark.slow),  # these import torch first: seconds
        pytest.param("evaluate", signal.SIGTERM, marks=pytest.mark.slow),
        pytest.param("export", signal.SIGINT, marks=pytest.mark.slow),
    ],
)
def test_an_interrupt_ends_the_command_with_one_line_130_and_nothing_left(command, signum, tmp_path):
    argv, at, output = _case(command, tmp_path)
    proc, left = _interrupt(argv, at, tmp_path, signum)
    _ends_with_one_line(proc, f"bertcnn {argv[0]}: {LINE.format(signal.Signals(signum).name)}")
    if command in ("port", "port-file", "init", "export"):  # the signal came with the output staged
        assert any(n.startswith(".out") for n in STAGED[str(tmp_path)]), STAGED[str(tmp_path)]
    assert left == set(), left  # no output, no staging folder, no temporary file, no lock
    assert not os.path.exists(output)


def _ends_with_one_line(proc: subprocess.CompletedProcess, line: str) -> None:
    """Exit 130, `line` the last line on stderr, no traceback (what was said before the signal may stay)."""
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert proc.stderr.endswith(f"{line}\n") and proc.stderr.count(line) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize(
    "at",
    [
        "parity.commands.builds:runtime",  # about to import the framework
        pytest.param("parity.commands.train:read_weights", marks=pytest.mark.slow),  # reading the model
        pytest.param("numpy:savez", marks=pytest.mark.slow),  # inside the step-0 save, half staged
    ],
)
def test_an_interrupt_during_train_start_up_stops_at_once_with_130_and_writes_nothing(at, tmp_path):
    """Before the first update an interrupt does not wait for the model to load and a step-0 save: nothing
    to resume yet, nothing is written."""
    argv, _, output = _case("train", tmp_path)
    proc, left = _interrupt(argv, at, tmp_path, signal.SIGINT)
    if at == "numpy:savez":
        assert ".out.staging" in STAGED[str(tmp_path)]  # the step-0 save half staged
    _ends_with_one_line(proc, "bertcnn train: interrupted by SIGINT before the first update: stopped; nothing was "
                              "written")  # fmt: skip
    assert left == set() and not os.path.exists(output), left


# -- never swallowed ---------------------------------------------------------------------------------------------
def _swallowing(monkeypatch, module, name: str) -> list[str]:
    """Make `module.name` first get a SIGINT inside a garbage-collector callback (which only reports its errors,
    as JAX's did during `port`), then go on; returns the log of what happened."""
    real, seen = getattr(module, name), []

    def callback(phase: str, info: dict) -> None:
        if phase == "start" and not seen:
            seen.append("signalled")
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the callback

    def swallowed(*args, **kwargs):
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        seen.append("went on")  # the KeyboardInterrupt never reached us
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, swallowed)
    return seen


def test_an_interrupt_swallowed_by_a_callback_still_stops_the_command_before_it_publishes(tmp_path, monkeypatch,
                                                                                           capsys):  # fmt: skip
    import parity.commands.port as port

    ck, _ = files(tmp_path)
    seen = _swallowing(monkeypatch, port, "write_safetensors")
    before = {p.name for p in tmp_path.iterdir()}
    assert main(["port", str(ck), str(tmp_path / "out")]) == 130
    assert seen == ["signalled", "went on"]  # swallowed, as by JAX's callback
    assert capsys.readouterr().err == f"bertcnn port: {LINE.format('SIGINT')}\n"
    assert {p.name for p in tmp_path.iterdir()} == before  # nothing published, no staging left
    assert not interrupt.requested()  # main() leaves the process as it found it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_raise_if_requested_raises_only_after_a_signal_while_handling():
    interrupt.raise_if_requested()  # nothing asked
    with interrupt.handling():
        assert not interrupt.requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        assert interrupt.requested() and interrupt.signal_name() == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            interrupt.raise_if_requested()
    assert not interrupt.requested()
