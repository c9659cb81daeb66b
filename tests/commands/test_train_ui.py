"""What `bertcnn train` says: the resume line repeats every option of the run; the epoch line's train loss
is the mean over every update of the epoch, also after a resume (an interrupted + resumed run prints the
numbers an uninterrupted one does)."""

from __future__ import annotations

import argparse
import re
import shlex
import signal

import pytest

from parity.commands import build_parser
from parity.commands.train_ui import Reporter, resume_command
from tests.helpers import cli, files, saved_step, start_child, wait_for_step

START_ONLY = {"checkpoint", "config", "tokenizer", "force", "resume"}  # a resume reads these from DIR


def _every_option() -> list[str]:
    """A train command line that gives every option of the parser a value other than its default."""
    parser = build_parser("train")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    taken = set()
    argv = ["train"]
    for group in sub._mutually_exclusive_groups:
        taken.update(id(a) for a in group._group_actions[1:])  # one of each exclusive pair
    for action in sub._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag is None or flag == "--help" or id(action) in taken:
            continue
        if action.nargs == 0:
            argv.append(flag)
        elif action.choices:
            argv += [flag, str(list(action.choices)[-1])]
        elif action.type is None:
            argv += [flag, f"a folder/{action.dest} 'x'.jsonl"]  # a space and a quote: the line quotes them
        else:  # a number: 0.5 where the type takes it (every float option's range holds it), else 3
            argv += [flag, _first_taken(action.type, "0.5", "3")]
    return argv


def _first_taken(kind, *texts: str) -> str:
    for text in texts:
        try:
            kind(text)
        except argparse.ArgumentTypeError:
            continue
        return text
    raise AssertionError(f"{kind.__name__} takes none of {texts}")


def test_the_resume_line_repeats_every_option_of_the_run():
    argv = _every_option()
    parse = build_parser("train").parse_args
    line = resume_command(parse(argv))
    words = shlex.split(line)
    assert words[:5] == ["bertcnn", "train", "--resume", "--out", parse(argv).out], line
    given, again = vars(parse(argv)), vars(parse(words[1:]))
    assert {k: v for k, v in given.items() if k not in START_ONLY} == {
        k: v for k, v in again.items() if k not in START_ONLY
    }
    assert again["resume"] and not again["checkpoint"] and not again["force"]
    assert "--save-every 3" in line and "--tensorboard 'a folder/tensorboard '\"'\"'x'\"'\"'.jsonl'" in line


def test_the_epoch_loss_counts_the_updates_before_a_resume(capsys):
    # Resumed at update 3 of an epoch of 5: the saved log holds the first three losses.
    earlier = tuple({"step": s + 1, "epoch": 1, "batch": s - 5, "loss": float(s)} for s in (5, 6, 7))
    earlier = ({"step": 1, "epoch": 0, "batch": 0, "loss": 100.0}, *earlier)  # another epoch's: not counted
    reporter = Reporter(10, 8, live=False, earlier=earlier, epoch=1)
    for step, loss in ((9, 8.0), (10, 9.0)):
        reporter({"step": step, "epoch": 1, "batch": step - 6, "loss": loss, "lr": 0.1})
    reporter.epoch_end(1, 10)
    assert capsys.readouterr().err == "epoch 2: step 10/10, train loss 7.0000\n"  # (5+6+7+8+9)/5


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_prints_the_epoch_lines_of_an_uninterrupted_one(tmp_path):
    ck, train = files(tmp_path)
    base = ["train", "--train", str(train), "--framework", "torch", "--epochs", "2", "--batch-size", "2",
            "--lr", "1e-2", "--seed", "7", "--max-length", "20", "--save-every", "1", "--threads", "1"]  # fmt: skip
    whole = cli([*base, "--checkpoint", str(ck), "--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "stopped"
    child = start_child([*base, "--checkpoint", str(ck), "--out", str(out)], slow_save=0.3)
    wait_for_step(out, 3, child)
    child.send_signal(signal.SIGTERM)
    _, first = child.communicate(timeout=300)
    assert child.returncode == 75, first[-3000:]
    assert saved_step(out) % 11 > 0 and saved_step(out) < 11  # mid-epoch 1 (11 updates an epoch)
    resumed = cli([*base, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def epochs(err: str) -> list[str]:
        return re.findall(r"^epoch \d+: .*$", err, re.M)

    assert len(epochs(whole.stderr)) == 2
    assert epochs(first) + epochs(resumed.stderr) == epochs(whole.stderr)
