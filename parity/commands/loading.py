"""A model to run, from whatever `--checkpoint` names: any weight source with either build, or an export.

`predict` and `evaluate` open their model here, so both take the same sources with the
same messages: a checkpoint directory or weight file (through the one reader,
`parity.io.read_weights`) run by `--framework torch|keras`, or an export directory
(`bertcnn export`) run in its own runtime. `check_source` refuses, before any work, a
run that lacks `--framework` or a package it would import. Opening reads and checks the
weights; the slow part (importing the framework, building the model) waits for
`forward()`, so a command can refuse a bad data file first. One rule gives the default
`--max-length` of both commands (`default_max_length`): the length the model was trained to
read, which its config carries wherever the weights go (`BertCnnConfig.max_seq_length`).

Framework start-up lines that native code writes straight to the stderr file descriptor are
kept from the user around the model's open, build and first call (`parity.stderr`); any
other line is passed on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity import tokenize
from parity.commands import builds
from parity.commands.common import positive, require, source_needs
from parity.config import BertCnnConfig
from parity.io.reader import read_weights
from parity.serving import export_forward, is_export
from parity.serving.manifest import read_manifest
from parity.serving.runners import EXTRAS, RUNTIMES, TEXT_RUNTIMES, export_text_forward
from parity.stderr import quiet_native_stderr
from parity.tokenize import Tokenizer, load_tokenizer

Forward = Callable[..., np.ndarray]

MAX_LENGTH_RULE = (
    "the length the model was trained to read, max_seq_length in its config (`bertcnn train` records it in every "
    "save, port and export; a training directory saved before it: its recipe.json), else the model's position "
    "table (max_position_embeddings); a longer N is read with a note"
)
EXPORT_NOTE = "; not needed for an export directory (`bertcnn export`), which runs in its own runtime"
EXPORT_SOURCE = ", or an export directory (`bertcnn export`), run in its own runtime"


def add_max_length(p) -> None:
    """--max-length, with the one default rule of `predict` and `evaluate`."""
    p.add_argument(
        "--max-length",
        type=positive,
        default=None,
        metavar="N",
        help=f"truncate texts to N tokens, keeping [CLS] and [SEP] (default: {MAX_LENGTH_RULE})",
    )


def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        import argparse

        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1]. Received: {text!r}")
    return value


def add_threshold(p) -> None:
    """--threshold: a multi-label model's decision rule (`decision_thresholds`)."""
    p.add_argument(
        "--threshold",
        type=probability,
        default=None,
        metavar="P",
        help="multi-label: predict every label whose sigmoid probability is at least P (default: the model's own "
        "per-label thresholds, from `train --tune-thresholds`, else 0.5)",
    )


def decision_thresholds(config: BertCnnConfig, threshold: float | None) -> tuple[float, ...] | None:
    """Per-label thresholds of a multi-label model (--threshold for all, else its own, else 0.5); None: argmax."""
    if not config.multi_label:
        if threshold is not None:
            raise ValueError(
                "--threshold applies to a multi-label model (problem_type multi_label_classification, a sigmoid per "
                f"label); this one is single-label and predicts the argmax class. Received: --threshold {threshold}"
            )
        return None
    return (threshold,) * config.num_labels if threshold is not None else config.decision_thresholds


def default_max_length(config: BertCnnConfig) -> int:
    """Tokens per text when --max-length is not given (`MAX_LENGTH_RULE`)."""
    return config.reading_length


def longer_than_trained(config: BertCnnConfig, max_length: int) -> str | None:
    """The note for a --max-length past the length the model was trained to read (None: no note)."""
    trained = config.max_seq_length
    if trained is None or max_length <= trained:
        return None
    return (
        f"note: the model was trained to read {trained} tokens (max_seq_length in its config); --max-length "
        f"{max_length} gives it longer texts than it was trained on, so its answers on them may differ"
    )


def _runtime_needs(checkpoint: str, why: str) -> list[tuple[str, str, str]]:
    manifest = read_manifest(checkpoint)
    fmt = manifest.format
    module = RUNTIMES[fmt].replace("-", "_")  # the distribution's import name: ai-edge-litert -> ai_edge_litert
    needs = [(module, why or f"running a {fmt} export", EXTRAS[fmt].removeprefix("bertcnn[").removesuffix("]"))]
    if manifest.text and fmt in TEXT_RUNTIMES:
        needs.append((TEXT_RUNTIMES[fmt][0], f"the tokenizer in the --text {fmt} export's graph", "serving"))
    return needs


def check_source(command: str, checkpoint: str, framework: str | None) -> None:
    """Before any work: --framework for a checkpoint, and every package the run would import (exit 2 if not)."""
    if is_export(checkpoint):
        require(command, _runtime_needs(checkpoint, f"running the {read_manifest(checkpoint).format} export"))
        return
    if framework is None:
        raise ValueError(
            "--framework torch|keras is required for a checkpoint (only an export directory runs without one). "
            f"Received: {checkpoint!r}"
        )
    needs = builds.needs(framework, f"--framework {framework}")
    name = Path(checkpoint).name
    needs += source_needs(checkpoint, f"reading {name}")
    require(command, needs)


def quiet_first_call(forward: Forward) -> Forward:
    """`forward`, its first call with framework chatter muted (a runtime may announce itself on its first run)."""
    first = [True]

    def call(*args, **kwargs):
        if not first[0]:
            return forward(*args, **kwargs)
        first[0] = False
        with quiet_native_stderr():
            return forward(*args, **kwargs)

    return call


# -- opening -------------------------------------------------------------------------------------
@dataclass
class Opened:
    """A model's config and tokenizer, and how to get its forward (slow: builds the model)."""

    config: BertCnnConfig
    tokenizer_dir: Path | None
    source: str
    forward: Callable[[], Forward]
    export: bool = False
    windows_ok: bool = True  # takes (batch, windows, tokens) inputs: every checkpoint, no export
    # A `--text` export: texts go in as strings and its own graph tokenizes them (list[str] -> logits).
    text_forward: Callable[[], Callable] | None = None

    def tokenizer(self, tokenizer: str | None, max_length: int | None,
                  windows: tuple[int, int | None] | None = None) -> Tokenizer:  # fmt: skip
        """The tokenizer at `max_length`, or by the one default rule (`MAX_LENGTH_RULE`); `windows` (stride,
        max_windows): long texts read whole as windows (`Tokenizer.windows`)."""
        if max_length is None:
            max_length = default_max_length(self.config)
        tok = load_tokenizer(self.config, self.tokenizer_dir, self.source, tokenizer, max_length)
        if windows is not None:
            if not self.windows_ok:
                raise ValueError(f"{self.source} is an export, whose graph takes (batch, tokens) inputs; --long-text "
                                 "windows needs (batch, windows, tokens) inputs: run the checkpoint it was exported "
                                 "from with --framework torch|keras. Received: --long-text windows")  # fmt: skip
            tok.windows(*windows)
        note = longer_than_trained(self.config, max_length)
        if note:
            print(note, file=sys.stderr)
        return tok

    def truncation_note(self, truncated: int, total: int, max_length: int, max_windows: int | None = None) -> str:
        if max_windows is not None:
            many = "window" if max_windows == 1 else "windows"
            return (f"note: {truncated} of {total} texts needed more than {max_windows} {many} of {max_length} tokens "
                    f"(--max-windows) and were cut after the first {max_windows}")  # fmt: skip
        return tokenize.truncation_note(truncated, total, max_length, self.config)


def open_model(checkpoint: str, framework: str | None, *, config: str | None = None,
               threads: int | None = None, taps: bool = False, command: str = "predict",
               mixed_precision: str | None = None) -> Opened:  # fmt: skip
    """The model `checkpoint` names, run by `framework` (an export: in its own runtime, `framework` ignored).

    `mixed_precision="bf16"`: float32 weights, bf16 compute (torch.autocast / Keras mixed_bfloat16).
    """
    if is_export(checkpoint):  # an export runs in its own runtime; --framework does not apply
        if mixed_precision:
            raise ValueError(
                "an export runs at the precision it was exported in (int8 exports: `export --quantize int8`); "
                f"--mixed-precision applies to a checkpoint. Received: --checkpoint {checkpoint} --mixed-precision "
                f"{mixed_precision}"
            )
        if taps:
            raise ValueError(f"an export computes logits only: --taps needs a checkpoint. Received: {checkpoint!r}")
        check_source(command, checkpoint, framework)
        if framework:
            print(f"note: {checkpoint} is an export; --framework {framework} ignored", file=sys.stderr)
        with quiet_native_stderr():
            if read_manifest(checkpoint).text:
                text_fwd, fwd, cfg = export_text_forward(checkpoint, threads=threads)
                return Opened(cfg, Path(checkpoint), checkpoint, lambda: quiet_first_call(fwd), export=True,
                              windows_ok=False, text_forward=lambda: quiet_first_call(text_fwd))  # fmt: skip
            fwd, cfg = export_forward(checkpoint, threads=threads)
        return Opened(cfg, Path(checkpoint), checkpoint, lambda: quiet_first_call(fwd), export=True, windows_ok=False)
    check_source(command, checkpoint, framework)
    w = read_weights(checkpoint, config=config)  # Keras files too: parity.io reads them without Keras
    if mixed_precision == "bf16":
        builds.bf16_note(framework)

    def build() -> Forward:
        with quiet_native_stderr():
            builds.set_threads(framework, threads)
            forward = builds.forward(framework, w.config, w.tensors, mixed=mixed_precision == "bf16")
        w.tensors = {}  # the model holds its own copy now
        return quiet_first_call(forward)

    return Opened(w.config, w.tokenizer_dir, checkpoint, build)
