"""Every README example runs as written: each ```python block, and each line of each ```bash block.

Blocks run in README order in one temporary directory, so a block may use what an earlier one
made (`bertcnn init ck` before the Python examples that load `ck`). `bertcnn` and `python` are
this checkout (`python -m parity`, PYTHONPATH = the repository), not whatever is installed.
A new block is run by default; the only lines not run are listed in SKIP, by exact command
(the line without its trailing comment), each with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

SKIP = {
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[all,embedded]' && .venv/bin/bertcnn report": (
        "installs into a new venv from the network; CI performs this install, and `bertcnn report` runs below"
    ),
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[dev]' && .venv/bin/python -m pytest": (
        "an install plus the whole suite, which contains this test"
    ),
    "python -m pytest": "the whole suite, which contains this test",
    "python -m pytest -m slow": "the heavier half of the suite, which contains this test",
    "bertcnn report --backend all --grad --train-steps 3 --json r.json --plot taps.png": (
        "minutes (three Keras backends, gradients, training, float32 and float64); each part is tested on the tiny "
        "config in test_backends.py, test_grad.py, test_training.py, test_report_plot.py"
    ),
    "bertcnn report --device all": "the GPU tiers; without a GPU it is `bertcnn report` again (test_gpu.py)",
    "python benchmarks/predict_throughput.py --repeats 3": "benchmark: minutes, and timings need a quiet machine",
    "python benchmarks/forward_throughput.py": "benchmark: minutes, and timings need a quiet machine",
    "python benchmarks/import_time.py --repeats 5": "benchmark: minutes, and timings need a quiet machine",
    "torchrun --standalone --nproc-per-node 2 -m parity train --checkpoint clf --train train.jsonl --out ddp-run "
    "--framework torch --epochs 1 --batch-size 4 --max-length 32": (
        "torchrun is the venv's console script (not on this runner's PATH); test_distributed_train.py runs the same "
        "command as `python -m torch.distributed.run` and checks it equals one process"
    ),
    "KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 bertcnn train --checkpoint clf --train "
    "train.jsonl --out dp-run --framework keras --data-parallel --epochs 1 --batch-size 4 --max-length 32": (
        "a minute of JAX compilation; test_distributed_train.py runs this command on a tiny config and checks it "
        "equals one device"
    ),
    "python benchmarks/train_compare.py --parts accuracy,drift --epochs 3 --lr 5e-5 --drift-epochs 1 "
    "--no-drift-every-epoch": (
        "benchmark: an hour or more of fine-tuning on this 2-core machine, and it needs the [bench] extra"
    ),
    "KERAS_BACKEND=jax python benchmarks/gpu.py --device cpu --size tiny --corpus-size 24 --batch 4 --seq 32 "
    "--repeats 2 --iters 2 --matmul-n 128 --out gpu-cpu.json": (
        "test_gpu_benchmark.py runs exactly this (with its MiniLM carry) and checks every key of the JSON"
    ),
}


def blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, language, body) of every fenced block, in order."""
    out, lang, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence and lang is None:
            lang, start, body = fence.group(1), number, []
        elif fence:
            out.append((start, lang, "\n".join(body) + "\n"))
            lang = None
        elif lang is not None:
            body.append(line)
    return out


def command_of(line: str) -> str:
    """The command without its trailing `# comment` (a # after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def steps(text: str | None = None) -> list[tuple[str, str, str]]:
    """(where, kind, code) to run, in README order: python blocks whole, bash blocks line by line."""
    out = []
    for start, lang, body in blocks(README.read_text(encoding="utf-8") if text is None else text):
        if lang == "python":
            out.append((f"README.md:{start}", "python", body))
        elif lang in ("bash", "sh", "shell"):
            for offset, line in enumerate(body.splitlines(), start=1):
                command = command_of(line)
                if command and command not in SKIP:
                    out.append((f"README.md:{start + offset}", "bash", line))
    return out


def run_steps(todo: list[tuple[str, str, str]], root: Path) -> str | None:
    """Run each step in `root/work`; the first failure as a message, or None."""
    shims = root / "bin"
    shims.mkdir(exist_ok=True)
    for name, target in (("bertcnn", f'"{sys.executable}" -m parity'), ("python", f'"{sys.executable}"')):
        (shims / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (shims / name).chmod(0o755)
    work = root / "work"
    work.mkdir(exist_ok=True)
    env = dict(os.environ, PATH=f"{shims}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    env.pop("KERAS_BACKEND", None)
    for where, kind, code in todo:
        if kind == "python":
            (root / "block.py").write_text(code, encoding="utf-8")
            argv = [sys.executable, str(root / "block.py")]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", code]
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return f"{where} ({kind}) exit {proc.returncode}:\n{code}\n{proc.stdout}\n{proc.stderr}"
    return None


def test_skip_list_names_only_readme_commands_and_each_has_a_reason():
    commands = {
        command_of(line)
        for _, lang, body in blocks(README.read_text(encoding="utf-8"))
        if lang in ("bash", "sh", "shell")
        for line in body.splitlines()
    }
    assert sorted(set(SKIP) - commands) == []  # a stale entry would hide nothing and mislead
    assert all(len(reason) > 20 for reason in SKIP.values())
    assert [k for _, k, _ in steps()].count("python") >= 3


def test_no_link_leaves_the_repository():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, re.M)
    outside = [t for t in targets if re.match(r"^[a-z]+:", t) or ".." in Path(t.split("#")[0]).parts]
    assert outside == []
    missing = [t for t in targets if t.split("#")[0] and not (REPO / t.split("#")[0]).exists()]
    assert missing == []
    assert "shared/" not in text and "seeds/" not in text


def test_the_runner_catches_a_snippet_that_fails_and_a_missing_prerequisite(tmp_path):
    """The README's old torch snippet (no `import torch`) and a block run before what it needs."""
    text = "```bash\nbertcnn --version   # runs\n```\n```python\nx = torch.zeros(1)\n```\n"
    failure = run_steps(steps(text), tmp_path)
    assert failure.startswith("README.md:4 (python) exit 1") and "NameError: name 'torch' is not defined" in failure
    failure = run_steps(steps("```bash\nls ck/config.json\n```\n"), tmp_path)
    assert failure.startswith("README.md:2 (bash) exit 2") and "No such file" in failure


@pytest.mark.slow
def test_every_readme_example_runs_as_written(tmp_path):
    failure = run_steps(steps(), tmp_path)
    assert failure is None, failure
