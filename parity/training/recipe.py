"""One training recipe for both frameworks: a frozen, validated, JSON round-trippable dataclass.

Defaults are torch's AdamW and Hugging Face Trainer's: betas (0.9, 0.999), eps 1e-8,
weight decay 0.01 except on biases and LayerNorm weights, global-norm clipping at 1.0,
linear warmup then linear decay to 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from typing import Any

DTYPES = ("float32", "float64")
# keep_best metric -> True when larger is better (Keras' ModelCheckpoint mode, HF's greater_is_better)
BEST_METRICS = {"accuracy": True, "macro_f1": True, "loss": False}
# Fields added after the first saves: a recipe.json without them takes these defaults.
LATER_FIELDS = (
    "grad_accum",
    "keep_best",
    "early_stopping",
    "mixed_precision",
    "class_weights",
    "tune_thresholds",
    "long_text",
    "stride",
    "max_windows",
)
# How a text longer than `max_length` is read: cut there (the tokenizer's truncation), or as overlapping windows
# of `max_length` tokens whose pooled features are max-pooled over the whole document (`parity.windows`).
LONG_TEXT = ("truncate", "windows")


def _fail(what: str, received: Any) -> None:
    raise ValueError(f"Invalid TrainingRecipe: {what}. Received: {received!r}")


@dataclass(frozen=True)
class TrainingRecipe:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5  # peak learning rate, reached at the end of warmup
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01  # decoupled (AdamW); never on biases or LayerNorm weights
    warmup_steps: int | None = None  # exactly one of warmup_steps / warmup_ratio decides warmup
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0  # global 2-norm, torch's clip_grad_norm_; None = no clipping
    seed: int = 0  # head init is the checkpoint's; this seeds shuffling and dropout
    dtype: str = "float32"
    dropout: bool = True
    shuffle: bool = True  # False: file order, contiguous batches
    # With shuffle: similar lengths batched together (HF's group_by_length, off by default there). On by
    # default here: random batches of short texts are ~45 % padding (benchmarks/profile_train.py: 44.8 %
    # vs 4.1 % grouped on the tweet corpus); grouped, a torch 1-epoch process ran 1.40x faster there and
    # 2.06x on widely varying lengths (benchmarks/results/train_grouped*.json); file order ignores it.
    group_by_length: bool = True
    max_length: int = 128  # tokens; longer texts are truncated (and counted)
    grad_accum: int = 1  # micro-batches of `batch_size` rows per update (HF's gradient_accumulation_steps)
    keep_best: str | None = None  # with held-out data: DIR's checkpoint is the best epoch's by this metric
    early_stopping: int | None = None  # stop after this many epochs without improvement of `keep_best`
    mixed_precision: str | None = None  # "bf16": bf16 compute, float32 weights, moments and saves
    # Per class (single-label: torch's CrossEntropyLoss(weight=), a mean weighted by the rows' class weights) or
    # per label (multi-label: BCEWithLogitsLoss(pos_weight=)); the numbers themselves, "balanced" resolved.
    class_weights: tuple[float, ...] | None = None
    tune_thresholds: bool = False  # multi-label: per-label thresholds chosen on the eval set, saved in config.json
    long_text: str = "truncate"
    stride: int = 0  # windows: tokens each window repeats of the one before (HF's `stride`)
    max_windows: int | None = None  # windows: at most this many per document; the rest is cut (and counted)

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("epochs", "batch_size", "max_length", "grad_accum"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                _fail(f"`{name}` must be a positive integer", v)
        if not _is_num(self.lr) or not self.lr > 0 or not math.isfinite(self.lr):
            _fail("`lr` must be a positive number", self.lr)
        b = self.betas
        if not (isinstance(b, tuple) and len(b) == 2 and all(_is_num(x) and 0.0 <= x < 1.0 for x in b)):
            _fail("`betas` must be two numbers in [0, 1)", b)
        if not _is_num(self.eps) or not self.eps > 0:
            _fail("`eps` must be a positive number", self.eps)
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            _fail("`weight_decay` must be a number >= 0", self.weight_decay)
        if self.warmup_steps is not None:
            if not _is_int(self.warmup_steps) or self.warmup_steps < 0:
                _fail("`warmup_steps` must be None or an integer >= 0", self.warmup_steps)
            if self.warmup_ratio:
                _fail("give `warmup_steps` or `warmup_ratio`, not both", (self.warmup_steps, self.warmup_ratio))
        if not _is_num(self.warmup_ratio) or not 0.0 <= self.warmup_ratio <= 1.0:
            _fail("`warmup_ratio` must be a number in [0, 1]", self.warmup_ratio)
        if self.max_grad_norm is not None and (not _is_num(self.max_grad_norm) or not self.max_grad_norm > 0):
            _fail("`max_grad_norm` must be None (no clipping) or a positive number", self.max_grad_norm)
        if not _is_int(self.seed) or self.seed < 0:
            _fail("`seed` must be an integer >= 0", self.seed)
        if self.dtype not in DTYPES:
            _fail(f"`dtype` must be one of {DTYPES}", self.dtype)
        for name in ("dropout", "shuffle", "group_by_length"):
            if not isinstance(getattr(self, name), bool):
                _fail(f"`{name}` must be True or False", getattr(self, name))
        if self.keep_best is not None and self.keep_best not in BEST_METRICS:
            _fail(f"`keep_best` must be None or one of {tuple(BEST_METRICS)}", self.keep_best)
        if self.early_stopping is not None:
            if not _is_int(self.early_stopping) or self.early_stopping < 1:
                _fail("`early_stopping` must be None or a positive number of epochs", self.early_stopping)
            if self.keep_best is None:
                _fail("`early_stopping` watches the `keep_best` metric: set `keep_best` too", self.early_stopping)

        if isinstance(self.class_weights, list):
            object.__setattr__(self, "class_weights", tuple(self.class_weights))
        cw = self.class_weights
        if cw is not None and not (isinstance(cw, tuple) and cw and all(
                _is_num(x) and math.isfinite(x) and x > 0 for x in cw)):  # fmt: skip
            _fail("`class_weights` must be None or one positive number per class", cw)
        if not isinstance(self.tune_thresholds, bool):
            _fail("`tune_thresholds` must be True or False", self.tune_thresholds)
        if self.long_text not in LONG_TEXT:
            _fail(f"`long_text` must be one of {LONG_TEXT}", self.long_text)
        if not _is_int(self.stride) or self.stride < 0:
            _fail("`stride` must be an integer >= 0", self.stride)
        if self.max_windows is not None and (not _is_int(self.max_windows) or self.max_windows < 1):
            _fail("`max_windows` must be None or a positive integer", self.max_windows)
        if self.long_text == "truncate" and (self.stride or self.max_windows is not None):
            _fail(
                '`stride` and `max_windows` shape the windows of long_text="windows"', (self.stride, self.max_windows)
            )
        if self.long_text == "windows" and self.stride > self.max_length - 3:
            _fail(f"`stride` must leave each window new tokens: at most max_length - 3 = {self.max_length - 3} "
                  "([CLS], [SEP] and one new token)", self.stride)  # fmt: skip

        if self.mixed_precision not in (None, "bf16"):
            _fail('`mixed_precision` must be None or "bf16"', self.mixed_precision)
        if self.mixed_precision is not None and self.dtype != "float32":
            _fail("`mixed_precision` keeps float32 master weights: it needs dtype float32", self.dtype)

    @property
    def update_size(self) -> int:
        """Rows per optimizer update: `grad_accum` micro-batches of `batch_size` rows."""
        return self.batch_size * self.grad_accum

    def steps_per_epoch(self, num_rows: int) -> int:
        """Optimizer updates per epoch: the last, partial update is kept."""
        return -(-num_rows // self.update_size)

    def total_steps(self, num_rows: int) -> int:
        return self.epochs * self.steps_per_epoch(num_rows)

    def warmup(self, num_rows: int) -> int:
        """Warmup updates: `warmup_steps`, or ceil(warmup_ratio x total) as HF Trainer computes it."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil(self.warmup_ratio * self.total_steps(num_rows))

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        if self.class_weights is not None:
            d["class_weights"] = list(self.class_weights)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingRecipe:
        if not isinstance(d, dict):
            raise ValueError(f"A TrainingRecipe is built from a JSON object. Received: {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"Unknown TrainingRecipe keys; expected {sorted(f.name for f in fields(cls))}. "
                             f"Received: {unknown}")  # fmt: skip
        return cls(**d)

    def replace(self, **changes: Any) -> TrainingRecipe:
        return dataclasses.replace(self, **changes)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
