"""A model to run, from whatever `--checkpoint` names: any weight source with either build, or an export.

`predict` and `evaluate` open their model here, so both take the same sources with the
same messages: a checkpoint directory or weight file (through the one reader,
`parity.io.read_weights`) run by `--framework torch|keras`, or an export directory
(`bertcnn export`) run in its own runtime. Opening reads and checks the weights; the
slow part (importing the framework, building the model) waits for `forward()`, so a
command can refuse a bad data file first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.commands import builds
from parity.config import BertCnnConfig
from parity.io.reader import read_weights
from parity.serving import export_forward, is_export
from parity.tokenize import Tokenizer, load_tokenizer

Forward = Callable[..., np.ndarray]


@dataclass
class Opened:
    """A model's config and tokenizer, and how to get its forward (slow: builds the model)."""

    config: BertCnnConfig
    tokenizer_dir: Path | None
    source: str
    forward: Callable[[], Forward]
    export: bool = False

    def tokenizer(self, tokenizer: str | None, max_length: int | None) -> Tokenizer:
        return load_tokenizer(self.config, self.tokenizer_dir, self.source, tokenizer, max_length)


def open_model(checkpoint: str, framework: str | None, *, config: str | None = None,
               threads: int | None = None, taps: bool = False) -> Opened:  # fmt: skip
    """The model `checkpoint` names, run by `framework` (an export: in its own runtime, `framework` ignored)."""
    if is_export(checkpoint):  # an export runs in its own runtime; --framework does not apply
        if taps:
            raise ValueError(f"an export computes logits only: --taps needs a checkpoint. Received: {checkpoint!r}")
        if framework:
            print(f"note: {checkpoint} is an export; --framework {framework} ignored", file=sys.stderr)
        fwd, cfg = export_forward(checkpoint, threads=threads)
        return Opened(cfg, Path(checkpoint), checkpoint, lambda: fwd, export=True)
    if framework is None:
        raise ValueError(
            "--framework torch|keras is required for a checkpoint (only an export directory runs without one). "
            f"Received: {checkpoint!r}"
        )
    w = read_weights(checkpoint, config=config, template_of=builds.keras_template)

    def build() -> Forward:
        builds.set_threads(framework, threads)
        forward = builds.forward(framework, w.config, w.tensors)
        w.tensors = {}  # the model holds its own copy now
        return forward

    return Opened(w.config, w.tokenizer_dir, checkpoint, build)
