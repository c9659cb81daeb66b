"""What the training-fault tests share: a tiny checkpoint with a word-level tokenizer, labelled rows, child runs.

Copies of the small helpers of tests/train_helpers.py and tests/conftest.py (tests import no
conftest, and those modules are being moved), plus what the fault tests add: a `bertcnn
train` child process (optionally with slow saves), the bytes of a directory, a tmpfs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from parity.config import BertCnnConfig
from parity.layout import rows

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    vocab_size=99,
    hidden_size=12,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=23,
    type_vocab_size=2,
    kernel_sizes=(2, 3, 5),
    num_filters=5,
    num_labels=3,
)
# 21 rows in batches of 2: 11 updates per epoch, the last one partial; dropout and shuffling on.
RECIPE = ["--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--warmup-ratio", "0.1", "--max-length", "20",
          "--seed", "7", "--save-every", "1"]  # fmt: skip


def random_tensors(config: BertCnnConfig, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {r.torch_name: (rng.standard_normal(r.torch_shape) * 0.2).astype(dtype) for r in rows(config)}


def tiny_checkpoint(directory: Path, seed: int = 0) -> BertCnnConfig:
    """A canonical checkpoint of the tiny config with a word-level tokenizer (`w4` ... `w98`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from parity.io.checkpoint import save_checkpoint

    config = BertCnnConfig(**TINY, head_hidden_size=7)
    save_checkpoint(directory, config, random_tensors(config, seed=seed))
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{f"w{i}": i for i in range(4, config.vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = [("[CLS]", 2), ("[SEP]", 3)]
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=special)
    tok.save(str(directory / "tokenizer.json"))
    return config


def write_jsonl(path: Path, rows_: int, seed: int = 0, max_words: int = 25, names=("neg", "mid", "pos")) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows_):
        words = " ".join(f"w{i}" for i in rng.integers(4, 99, size=rng.integers(1, max_words)))
        lines.append(json.dumps({"text": words, "label": names[rng.integers(0, len(names))]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def files(tmp_path: Path) -> tuple[Path, Path]:
    """(checkpoint, training file) in `tmp_path`."""
    tiny_checkpoint(tmp_path / "ck")
    write_jsonl(tmp_path / "train.jsonl", 21, seed=4)
    return tmp_path / "ck", tmp_path / "train.jsonl"


def tree_bytes(d: Path) -> dict[str, bytes]:
    """Every file under `d` by relative path: to show a command left a directory untouched."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def hidden(parent: Path) -> list[str]:
    """Hidden names beside the outputs (staging, previous, lock files): none after a run."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]), HF_HUB_OFFLINE="1",
               TF_CPP_MIN_LOG_LEVEL="2")  # fmt: skip
    out.update(extra)
    return out


# A child `bertcnn train` whose saves can be slowed down (SLOW_SAVE seconds in each save, while it writes
# rng.npz), so a test can land a signal or a second writer inside a save or a long run.
CHILD = """
import os, sys, time
delay = float(os.environ.get("SLOW_SAVE", "0"))
if delay:
    import numpy as np
    real = np.savez
    def slow(*a, **k):
        time.sleep(delay)
        return real(*a, **k)
    np.savez = slow
from parity.commands import main
sys.exit(main(sys.argv[1:]))
"""


def start_child(argv: list[str], *, slow_save: float = 0.0, launcher: list[str] | None = None) -> subprocess.Popen:
    cmd = [*(launcher or [sys.executable, "-c", CHILD]), *argv]
    return subprocess.Popen(cmd, env=env(SLOW_SAVE=str(slow_save)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def saved_step(out: Path) -> int:
    try:
        return json.loads((out / "trainer_state.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def wait_for_step(out: Path, step: int, child: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while saved_step(out) < step and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, f"the run ended first: {child.communicate()[1][-2000:]}"
    return saved_step(out)


def state_tensors(out: Path) -> dict[str, bytes]:
    from safetensors.numpy import load_file

    model, moments = load_file(str(out / "model.safetensors")), load_file(str(out / "optimizer.safetensors"))
    return {**{k: v.tobytes() for k, v in model.items()}, **{f"m/{k}": v.tobytes() for k, v in moments.items()}}


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights and moments, the same log, the same position."""
    ta, tb = state_tensors(a), state_tensors(b)
    assert ta.keys() == tb.keys() and all(ta[k] == tb[k] for k in ta), [k for k in ta if ta[k] != tb.get(k)][:5]
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    sa, sb = (json.loads((d / "trainer_state.json").read_text()) for d in (a, b))
    keys = ("step", "epoch", "batch", "finished")
    assert {k: sa[k] for k in keys} == {k: sb[k] for k in keys}


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the file system of `disk` with one file, leaving about `leave` bytes free."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * max(free - leave, 0))
    return filler
