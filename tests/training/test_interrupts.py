"""SIGTERM and SIGINT save and stop: exit 75, one line saying where the save is and how to resume, no
traceback; `--resume` then ends bit-identical to a run never interrupted (dropout and shuffling on).
A second interrupt aborts at once and still leaves the last complete save, with nothing hidden beside it.
Every run here is `bertcnn train` in a child process, signalled for real."""

from __future__ import annotations

import random
import shlex
import signal
import sys
import time

import numpy as np
import pytest

from parity.training.parity import start
from parity.training.state import load_snapshot, save_snapshot
from tests.helpers import (
    RECIPE,
    TINY,
    assert_same_run,
    cli,
    files,
    hidden,
    random_tensors,
    saved_step,
    start_child,
    wait_for_step,
)

TOTAL = 33  # 3 epochs x 11 updates


def _base(train, framework: str) -> list[str]:
    return ["train", "--train", str(train), "--framework", framework, *RECIPE]


def _printed_resume(line: str, started: list[str]) -> list[str]:
    """The argv of the resume command `line` shows, checked to repeat every option of the run `started`."""
    from parity.commands import build_parser

    words = shlex.split(line.rsplit("`", 2)[1])
    assert words[:3] == ["bertcnn", "train", "--resume"], line
    parse = build_parser("train").parse_args
    given, again = vars(parse(started)), vars(parse(words[1:]))
    start_only = {"checkpoint", "resume", "run"}
    assert {k: v for k, v in given.items() if k not in start_only} == {
        k: v for k, v in again.items() if k not in start_only
    }, line
    return words[1:]


@pytest.mark.parametrize(
    ("framework", "signum"),
    # 16 s each (children): CI's slow set; tests/commands/test_interrupts.py keeps the 130 path in the default
    [pytest.param(f, s, marks=pytest.mark.slow) for f in ("torch", "keras") for s in (signal.SIGTERM, signal.SIGINT)],
)  # fmt: skip
def test_a_signal_saves_stops_with_75_and_the_resumed_run_is_bit_identical(framework, signum, tmp_path, capsys):
    ck, train = files(tmp_path)
    out = tmp_path / "stopped"
    child = start_child([*_base(train, framework), "--checkpoint", str(ck), "--out", str(out)])
    wait_for_step(out, random.Random().randint(2, 12), child)
    time.sleep(random.Random().uniform(0.0, 0.05))  # anywhere: mid-update, mid-save, mid-swap
    child.send_signal(signum)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 75, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    step = saved_step(out)
    assert last.startswith(f"bertcnn train: interrupted by {signal.Signals(signum).name} after update {step} of "
                           f"{TOTAL}: {out} holds a complete save there; continue with `bertcnn train --resume "
                           f"--out {out} --train {train} --framework {framework} "), last  # fmt: skip
    assert hidden(tmp_path) == []  # no staging, no lock left
    assert load_snapshot(out).state.step == step < TOTAL
    # The command it printed, as printed: every option of the run again (--save-every and --threads too).
    resumed = cli(_printed_resume(last, [*_base(train, framework), "--checkpoint", str(ck), "--out", str(out)]))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = TOTAL - step
    assert f"trained {done} update{'s' if done != 1 else ''} in this run ({TOTAL} in all)" in resumed.stdout
    whole = tmp_path / "whole"
    assert cli([*_base(train, framework), "--checkpoint", str(ck), "--out", str(whole)]).returncode == 0
    assert_same_run(out, whole)
    assert hidden(tmp_path) == []


@pytest.mark.slow  # 27 s of children
def test_a_second_interrupt_during_the_save_aborts_at_once_and_keeps_the_last_save(tmp_path, capsys):
    ck, train = files(tmp_path)
    out = tmp_path / "aborted"
    # Each save sleeps 5 s while writing: the second Ctrl-C lands inside one. The margin to the bound
    # below is wide: exiting took 1.44 s on a machine loaded by the suite itself.
    child = start_child([*_base(train, "torch"), "--checkpoint", str(ck), "--out", str(out)], slow_save=5.0)
    wait_for_step(out, 1, child)
    child.send_signal(signal.SIGINT)  # first: stop after this update, with a (slow) save
    time.sleep(1.5)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)  # second: at once
    _, err = child.communicate(timeout=120)
    assert time.monotonic() - sent < 3.0, "did not abort at once"  # a save still had >= 3.5 s to sleep
    assert child.returncode == 75, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    step = saved_step(out)
    assert last.startswith(f"bertcnn train: aborted by a second interrupt: {out} holds the last complete save "
                           f"(update {step}); continue with `bertcnn train --resume"), last  # fmt: skip
    assert hidden(tmp_path) == []  # the staging folder of the cut save is gone
    assert load_snapshot(out).state.step == step  # whole and valid
    assert cli([*_base(train, "torch"), "--out", str(out), "--resume"]).returncode == 0
    whole = tmp_path / "whole"
    assert cli([*_base(train, "torch"), "--checkpoint", str(ck), "--out", str(whole)]).returncode == 0
    assert_same_run(out, whole)


def test_an_interrupt_inside_a_save_leaves_the_previous_save_and_no_staging(tmp_path, monkeypatch):
    from parity.config import BertCnnConfig
    from parity.training.recipe import TrainingRecipe

    config = BertCnnConfig(**TINY)
    snap = start(config, random_tensors(config), TrainingRecipe(epochs=1, batch_size=4), 8)
    out = tmp_path / "run"
    save_snapshot(out, snap, tokenizer_from=None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def cut(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the staging folder is half written

    monkeypatch.setattr(np, "savez", cut)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(out, snap, tokenizer_from=None)
    monkeypatch.undo()
    assert hidden(tmp_path) == [] and {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_at_one_update_and_resumes_bit_identical(tmp_path):
    """torchrun forwards SIGTERM to its workers, each at its own moment: they agree on the stop
    update (an all-reduce of the flag after every update), rank 0 saves there; --resume under
    torchrun ends bit-identical to an uninterrupted DDP run. Only rank 0 prints."""
    ck, train = files(tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "parity"]
    whole = tmp_path / "whole"
    proc = start_child([*_base(train, "torch"), "--checkpoint", str(ck), "--out", str(whole)], launcher=torchrun)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert err.count("train: 21 rows") == 1, err[-3000:]  # rank 0's data summary only
    out = tmp_path / "stopped"
    child = start_child([*_base(train, "torch"), "--checkpoint", str(ck), "--out", str(out)], launcher=torchrun)
    wait_for_step(out, random.Random().randint(2, 12), child)
    child.send_signal(signal.SIGTERM)  # to the launcher, as a scheduler does
    _, err = child.communicate(timeout=120)
    assert err.count("bertcnn train: interrupted by SIGTERM after update") == 1, err[-3000:]
    step = saved_step(out)
    assert 0 < step < TOTAL and hidden(tmp_path) == []
    resumed = start_child([*_base(train, "torch"), "--out", str(out), "--resume"], launcher=torchrun)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert_same_run(out, whole)
