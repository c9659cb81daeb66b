"""What the predict/evaluate command tests share: a tiny checkpoint, real sentences, a `bertcnn` child.

Imported relatively (`from ._models import ...`); never from conftest.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.io.checkpoint import save_checkpoint
from parity.layout import rows

REPO = Path(__file__).resolve().parents[2]
# Odd, distinct sizes (as tests/conftest.py's TINY), with the embedded tokenizer's vocabulary.
TINY = dict(
    vocab_size=30522,
    hidden_size=12,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=40,
    type_vocab_size=2,
    kernel_sizes=(2, 3, 5),
    num_filters=5,
    num_labels=3,
)


def tiny_checkpoint(directory: Path, tokenizer_from, *, seed: int = 1, **changes) -> Path:
    """Random weights (seeded) in a canonical checkpoint with the embedded tokenizer: a model in well under a second."""
    config = BertCnnConfig(**{**TINY, **changes})
    rng = np.random.default_rng(seed)
    tensors = {r.torch_name: (rng.standard_normal(r.torch_shape) * 0.2).astype(np.float32) for r in rows(config)}
    save_checkpoint(directory, config, tensors, tokenizer_from=tokenizer_from)
    return directory


def sentences(n: int) -> list[str]:
    """`n` real sentences (Python's own reference, benchmarks/corpus.py), repeated when more are asked for."""
    spec = importlib.util.spec_from_file_location("bertcnn_bench_corpus", REPO / "benchmarks" / "corpus.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    pool = corpus.sentences(min(n, corpus.SIZE))
    return [pool[i % len(pool)] for i in range(n)]


def child_env() -> dict[str, str]:
    """This checkout's code in a child (`python -m parity`), offline, one thread."""
    return dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def bertcnn(*argv: str, stdin=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`bertcnn ARGV` in a child; stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "parity", *argv],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=REPO,
        check=False,
    )
