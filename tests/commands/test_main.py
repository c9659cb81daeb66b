"""The command line as a whole: bad input exits 2 with one line and no traceback (`--debug` shows it),
help states the exit codes and defaults, `--version`."""

import os
import subprocess
import sys

import pytest

from parity.commands import COMMANDS, main


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["report", "--checkpoint", "/nonexistent"], "Checkpoint not found"),
        (["predict", "--checkpoint", "/nonexistent", "--framework", "torch", "x"], "not found"),
        (["predict", "--checkpoint", "CK", "--framework", "torch"], "no texts"),
        (["predict", "--checkpoint", "CK", "--framework", "torch", "--file", "/nonexistent"], "--file"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, fragment, minilm_ck, capsys):
    argv = [str(minilm_ck) if a == "CK" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Received" in err and "Traceback" not in err


def test_help_states_exit_codes_defaults_and_version():
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "parity", *argv], capture_output=True, text=True, timeout=60)

    report = " ".join(run("report", "--help").stdout.split())
    assert "Exit codes: 0 done (report: every check asked for ran and passed); 1 parity failure" in report
    assert "3 incomplete" in report and "75 interrupted and resumable" in report
    init = " ".join(run("init", "--help").stdout.split())
    assert all(f"(default: {d})" in init for d in ("3,4,5", "100", "0")) and "(default: 2" in init
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("bertcnn ")


def test_cli_process_prints_one_line_and_debug_shows_traceback(tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes((2**62).to_bytes(8, "little"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    plain = subprocess.run([sys.executable, "-m", "parity", "port", str(bad), str(tmp_path / "o")],
                           capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-m", "parity", "--debug", "port", str(bad), str(tmp_path / "o")],
                           capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


# -- The command line itself: help, unknown options named, no abbreviations, one exit-code table.
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


def test_debug_is_taken_after_the_command_too(tmp_path, capsys):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes((2**62).to_bytes(8, "little"))
    assert main(["port", str(bad), str(tmp_path / "o")]) == 2
    capsys.readouterr()
    for argv in (
        ["port", "--debug", str(bad), str(tmp_path / "o")],
        ["port", str(bad), str(tmp_path / "o"), "--debug"],
    ):
        with pytest.raises(ValueError):  # the traceback, as `bertcnn --debug port ...` shows it
            main(argv)


@pytest.mark.parametrize(("typed", "meant"), [("pridict", "predict"), ("exprot", "export"), ("trian", "train")])
def test_a_mistyped_command_gets_did_you_mean(typed, meant, capsys):
    with pytest.raises(SystemExit) as e:
        main([typed, "--checkpoint", "ck", "hi"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert f"unknown command {typed!r}; did you mean {meant}? " in err and f"Received: {typed!r}" in err


def test_a_command_unlike_any_points_to_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["zzz"])
    assert "unknown command 'zzz'; see `bertcnn --help`" in capsys.readouterr().err
