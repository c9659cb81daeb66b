"""The command line itself: help, unknown options named, no abbreviations, one exit-code table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parity.commands import COMMANDS, main


def test_bertcnn_alone_prints_the_help_and_every_command(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: bertcnn" in err and all(name in err for name in COMMANDS)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["predict", "--checkpiont", "x", "hi"], "unknown option --checkpiont; did you mean --checkpoint?"),
        (
            ["predict", "--framwork", "torch", "--checkpoint", "x"],
            "unknown option --framwork; did you mean --framework?",
        ),
        (["train", "--epoch", "3"], "unknown option --epoch; did you mean --epochs?"),
        (["train", "--batch", "3"], "unknown option --batch; did you mean --batch-size?"),
        (["evaluate", "--max-len", "9"], "unknown option --max-len; did you mean --max-length?"),
        (["init", "ck", "--zzz"], "unknown option --zzz; see `bertcnn init --help`"),
    ],
)
def test_an_unknown_or_abbreviated_option_is_named_in_the_command_usage(argv, said, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and said in err
    assert f"usage: bertcnn {argv[0]}" in err  # the command's usage, not the top level's
    assert "required" not in err  # named before argparse complains about a missing option


def test_every_command_help_ends_with_the_one_exit_code_table():
    for name in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "parity", name, "--help"], capture_output=True, text=True)
        text = " ".join(out.stdout.split())
        assert out.returncode == 0
        assert "Exit codes: 0 done" in text and "2 bad input" in text and "75 interrupted and resumable" in text
