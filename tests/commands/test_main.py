"""The command line as a whole: bad input exits 2 with one line and no traceback (`--debug` shows it),
help states the exit codes and defaults, `--version`."""

import os
import subprocess
import sys

import pytest

from parity.commands import main


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
    assert "Exit codes: 0 every check ran and passed; 1 parity failure" in report and "3 incomplete" in report
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
