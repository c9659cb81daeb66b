"""The one configuration both builds take: BERT hyper-parameters plus the CNN head.

Framework-neutral on purpose: a config written by one build must rebuild the
other, so nothing here may import torch or keras.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from parity.jsonfile import read_json

# Activations both builds implement identically (HF ACT2FN names).
SUPPORTED_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh")

# A checkpoint's config.json is also a Hugging Face custom model's (DESIGN decision 21): its model type, its
# class, and `auto_map` naming the modeling code the checkpoint carries (`bertcnn_torch/modeling_bertcnn.py`).
MODEL_TYPE = "bert-cnn"
HF_ARCHITECTURE = "BertCnnForSequenceClassification"
MODELING_MODULE = "modeling_bertcnn"
HF_IDENTITY = {
    "model_type": MODEL_TYPE,
    "architectures": [HF_ARCHITECTURE],
    "auto_map": {
        "AutoConfig": f"{MODELING_MODULE}.BertCnnHfConfig",
        "AutoModel": f"{MODELING_MODULE}.{HF_ARCHITECTURE}",
        "AutoModelForSequenceClassification": f"{MODELING_MODULE}.{HF_ARCHITECTURE}",
    },
}
# What Hugging Face's `save_pretrained` adds to our keys: bookkeeping, or said by the weights themselves.
_HF_BOOKKEEPING = ("architectures", "auto_map", "transformers_version", "dtype", "torch_dtype")
# Problem types, Hugging Face's names (`PretrainedConfig.problem_type`; DESIGN decision 22): one label per text
# (softmax cross-entropy, what HF's forward picks for integer labels), or a set of labels per text (a sigmoid per
# label, binary cross-entropy with logits, mean over labels and rows).
SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL)
# A multi-label model predicts every label whose sigmoid probability reaches this, unless its config has its own.
DEFAULT_THRESHOLD = 0.5

# Room a BERT text needs besides its words: [CLS] and [SEP]. A reading length below it holds no text.
SPECIAL_TOKENS_ROOM = 2

# HF config keys we read; anything else in a HF config.json is bookkeeping we ignore.
_BERT_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "pad_token_id",
    "initializer_range",
)


def _fail(what: str, received: Any) -> None:
    raise ValueError(f"Invalid BertCnnConfig: {what}. Received: {received!r}")


@dataclass(frozen=True)
class BertCnnConfig:
    """BERT encoder + CNN head; the single source of truth for both builds.

    Defaults are BERT-base with the seed's head (widths 3/4/5, 100 filters, 2 labels).
    `head_hidden_size` adds the seed Keras example's dense+ReLU layer; `mask_padding`
    keeps windows that touch padding out of the max (False reproduces the seeds).
    `max_seq_length` is the length the model was trained to read (tokens per text, [CLS] and
    [SEP] included): every reader truncates there. None: not recorded, read up to the
    position table. Its JSON name is sentence-transformers' and collides with nothing in
    Hugging Face's `PretrainedConfig` (whose `max_length` is a generation setting it drops).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02
    kernel_sizes: tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100
    num_labels: int = 2
    classifier_dropout: float = 0.5
    head_hidden_size: int | None = None
    mask_padding: bool = True
    # Class names by id; JSON carries them as Hugging Face's `id2label`/`label2id`.
    label_names: tuple[str, ...] | None = None
    max_seq_length: int | None = None
    problem_type: str = SINGLE_LABEL
    # Multi-label: per-label probability thresholds (`train --tune-thresholds`); None: DEFAULT_THRESHOLD for all.
    thresholds: tuple[float, ...] | None = None
    # How the model reads a text longer than max_seq_length, like the length itself part of the model (decision 19):
    # None: cut there; an integer: whole, as windows repeating that many tokens (`train --long-text windows`),
    # at most `max_windows` of them (None: all).
    window_stride: int | None = None
    max_windows: int | None = None

    def __post_init__(self) -> None:
        # JSON gives lists; the dataclass is frozen and hashable, so store a tuple.
        if isinstance(self.kernel_sizes, list):
            object.__setattr__(self, "kernel_sizes", tuple(self.kernel_sizes))
        positive = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "num_filters",
            "num_labels",
        )
        for name in positive:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _fail(f"`{name}` must be a positive integer", value)
        if self.hidden_size % self.num_attention_heads:
            _fail(
                "`hidden_size` must be divisible by `num_attention_heads` "
                f"({self.hidden_size} % {self.num_attention_heads} != 0)",
                (self.hidden_size, self.num_attention_heads),
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            _fail(f"`hidden_act` must be one of {SUPPORTED_ACTIVATIONS}", self.hidden_act)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value < 1.0:
                _fail(f"`{name}` must be a number in [0, 1)", value)
        if not _is_number(self.layer_norm_eps) or not 0.0 < self.layer_norm_eps < 1.0:
            _fail("`layer_norm_eps` must be a number in (0, 1)", self.layer_norm_eps)
        if not _is_number(self.initializer_range) or self.initializer_range <= 0:
            _fail("`initializer_range` must be a positive number", self.initializer_range)
        if not _is_int(self.pad_token_id) or not 0 <= self.pad_token_id < self.vocab_size:
            _fail(f"`pad_token_id` must be an integer in [0, vocab_size={self.vocab_size})", self.pad_token_id)
        ks = self.kernel_sizes
        if not isinstance(ks, tuple) or not ks or not all(_is_int(k) and k >= 1 for k in ks):
            _fail("`kernel_sizes` must be a non-empty sequence of positive integers, e.g. (3, 4, 5)", ks)
        if max(ks) > self.max_position_embeddings:
            _fail(
                f"every kernel size must fit in max_position_embeddings={self.max_position_embeddings}",
                ks,
            )
        n = self.max_seq_length
        if n is not None and (not _is_int(n) or not SPECIAL_TOKENS_ROOM <= n <= self.max_position_embeddings):
            _fail(
                "`max_seq_length` (the length the model was trained to read) must be null or an integer from "
                f"{SPECIAL_TOKENS_ROOM} (room for [CLS] and [SEP]) to max_position_embeddings="
                f"{self.max_position_embeddings}",
                n,
            )
        hh = self.head_hidden_size
        if hh is not None and (not _is_int(hh) or hh < 1):
            _fail("`head_hidden_size` must be None or a positive integer", hh)
        if not isinstance(self.mask_padding, bool):
            _fail("`mask_padding` must be True or False", self.mask_padding)
        names = self.label_names
        if isinstance(names, list):
            object.__setattr__(self, "label_names", names := tuple(names))
        if names is not None:
            if not isinstance(names, tuple) or not all(isinstance(n, str) and n.strip() for n in names):
                _fail("`label_names` must be None or a sequence of non-empty strings", names)
            if len(set(names)) != len(names):
                _fail("`label_names` must be distinct", names)
            if len(names) != self.num_labels:
                _fail(f"`label_names` must name every one of num_labels={self.num_labels} classes", names)
        if self.problem_type not in PROBLEM_TYPES:
            _fail(f"`problem_type` must be one of {PROBLEM_TYPES} (Hugging Face's names)", self.problem_type)
        t = self.thresholds
        if isinstance(t, list):
            object.__setattr__(self, "thresholds", t := tuple(t))
        if t is not None:
            if self.problem_type != MULTI_LABEL:
                _fail("`thresholds` apply to a multi-label model (problem_type multi_label_classification)", t)
            if not isinstance(t, tuple) or len(t) != self.num_labels:
                _fail(f"`thresholds` must be null or one number per label (num_labels={self.num_labels})", t)
            if not all(_is_number(x) and 0.0 <= x <= 1.0 for x in t):
                _fail("`thresholds` must be probabilities in [0, 1]", t)
        self._check_windows()

    def _check_windows(self) -> None:
        stride, cap = self.window_stride, self.max_windows
        if stride is not None and (not _is_int(stride) or not 0 <= stride <= self.reading_length - 3):
            _fail(f"`window_stride` must be null (long texts cut) or an integer from 0 to max_seq_length - 3 = "
                  f"{self.reading_length - 3} ([CLS], [SEP] and one new token per window)", stride)  # fmt: skip
        if cap is not None and (stride is None or not _is_int(cap) or cap < 1):
            _fail("`max_windows` must be null or, with `window_stride`, a positive integer", cap)

    # -- derived sizes -------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def pooled_size(self) -> int:
        """Width of the concatenated max-pooled features fed to the classifier."""
        return len(self.kernel_sizes) * self.num_filters

    @property
    def max_kernel_size(self) -> int:
        return max(self.kernel_sizes)

    @property
    def reading_length(self) -> int:
        """Tokens per text a reader gives the model: `max_seq_length`, else the whole position table."""
        return self.max_position_embeddings if self.max_seq_length is None else self.max_seq_length

    @property
    def multi_label(self) -> bool:
        """Several labels per text: sigmoid outputs and binary cross-entropy (`problem_type`)."""
        return self.problem_type == MULTI_LABEL

    @property
    def decision_thresholds(self) -> tuple[float, ...]:
        """Per-label probability thresholds of a multi-label model: its own, else DEFAULT_THRESHOLD each."""
        return self.thresholds or (DEFAULT_THRESHOLD,) * self.num_labels

    @property
    def windows(self) -> tuple[int, int | None] | None:
        """(stride, max_windows) when the model reads long texts as windows, else None (cut at its length)."""
        return None if self.window_stride is None else (self.window_stride, self.max_windows)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names by id; the ids themselves ("0", "1", ...) when the checkpoint names none."""
        return self.label_names or tuple(str(i) for i in range(self.num_labels))

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; label names in Hugging Face's convention (`id2label` keys are strings)."""
        d = dataclasses.asdict(self)
        d["kernel_sizes"] = list(self.kernel_sizes)
        names = d.pop("label_names")
        for key, default in (("max_seq_length", None), ("problem_type", SINGLE_LABEL), ("thresholds", None),
                             ("window_stride", None), ("max_windows", None)):  # fmt: skip
            if d[key] == default:  # the default stays out of the file, as in every config written before the key
                del d[key]
        if "thresholds" in d:
            d["thresholds"] = list(d["thresholds"])
        if names is not None:
            d["id2label"] = {str(i): n for i, n in enumerate(names)}
            d["label2id"] = {n: i for i, n in enumerate(names)}
        return d

    def to_json(self) -> str:
        """config.json: `to_dict` plus the Hugging Face identity (`HF_IDENTITY`), which `from_dict` takes back."""
        return json.dumps({**HF_IDENTITY, **self.to_dict()}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BertCnnConfig:
        """Strict: an unknown key is a typo or a different model, never silently dropped."""
        if not isinstance(d, dict):
            raise ValueError(f"A BertCnnConfig must be built from a JSON object (dict). Received: {d!r}")
        d = _without_hf_keys(d)
        problem = d.pop("problem_type", None)
        if problem not in (None, *PROBLEM_TYPES):
            raise ValueError(
                f"problem_type must be {SINGLE_LABEL!r} (softmax cross-entropy), {MULTI_LABEL!r} (a sigmoid per "
                f"label, binary cross-entropy) or absent (single-label). Received: problem_type={problem!r}"
            )
        if problem is not None:
            d["problem_type"] = problem
        if "label_names" in d:
            raise ValueError(
                "label names are stored as Hugging Face's id2label/label2id, not label_names. "
                f"Received: label_names={d['label_names']!r}"
            )
        d["label_names"] = _label_names(d.pop("id2label", None), d.pop("label2id", None))
        if "num_labels" not in d and d["label_names"] is not None:  # Hugging Face writes id2label alone
            d["num_labels"] = len(d["label_names"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"Unknown BertCnnConfig keys {unknown}; expected a subset of {sorted(known)}. "
                "If this is a Hugging Face BERT config, use BertCnnConfig.from_hf_config "
                "(`bertcnn port` reads one given to --config). "
                f"Received: {len(unknown)} unknown keys"
            )
        return cls(**d)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> BertCnnConfig:
        return cls.from_dict(_read_json(path))

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any] | str | os.PathLike, **head: Any) -> BertCnnConfig:
        """Take the BERT part of a Hugging Face `config.json`; `head` sets the CNN head."""
        if not isinstance(hf, dict):
            p = Path(hf)
            hf = _read_json(p / "config.json" if p.is_dir() else p)
        model_type = hf.get("model_type", "bert")
        if model_type not in ("bert", MODEL_TYPE):  # a bertcnn checkpoint's encoder is a BERT too
            raise ValueError(
                f"Only BERT backbones are supported (config.json model_type 'bert'). Received: {model_type!r}"
            )
        pos = hf.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(
                f"Only absolute position embeddings are supported. Received: position_embedding_type={pos!r}"
            )
        bert = {k: hf[k] for k in _BERT_KEYS if k in hf and hf[k] is not None}
        return cls(**bert, **head)

    def to_hf_dict(self) -> dict[str, Any]:
        """The BERT part as `transformers.BertConfig` keyword arguments."""
        return {k: getattr(self, k) for k in _BERT_KEYS}

    def replace(self, **changes: Any) -> BertCnnConfig:
        return dataclasses.replace(self, **changes)

    def without_dropout(self) -> BertCnnConfig:
        """Every dropout probability 0 (the parity checks and `--no-dropout` training)."""
        return self.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)


def _without_hf_keys(d: dict[str, Any]) -> dict[str, Any]:
    """`d` without the keys Hugging Face's side of a checkpoint adds; another model type is refused, not read."""
    d = dict(d)
    if "model_type" not in d:  # written before config.json named its model: bertcnn keys only
        return d
    model_type = d.pop("model_type")
    if model_type != MODEL_TYPE:
        raise ValueError(
            f"This config.json is a Hugging Face {model_type!r} model's, not a bertcnn checkpoint's (model_type "
            f"{MODEL_TYPE!r}); for a BERT, use BertCnnConfig.from_hf_config (`bertcnn init CK --backbone DIR`). "
            f"Received: model_type={model_type!r}"
        )
    for key in _HF_BOOKKEEPING:
        d.pop(key, None)
    return d


def _label_names(id2label: Any, label2id: Any) -> tuple[str, ...] | None:
    """HF's `id2label` {"0": name, ...} (and `label2id`, which must be its inverse) -> names by id."""
    if id2label is None and label2id is None:
        return None
    if not isinstance(id2label, dict) or not id2label:
        _fail('`id2label` must be a JSON object {"0": name, "1": name, ...}', id2label)
    # An id longer than any count (and than Python's int() digit limit) sorts last: it is never one of 0..n-1.
    ids = sorted(id2label, key=lambda k: int(k) if isinstance(k, str) and k.isdigit() and len(k) <= 18 else -1)
    if ids != [str(i) for i in range(len(id2label))]:
        _fail("`id2label` keys must be the ids 0..num_labels-1, as strings", [str(k)[:20] for k in id2label][:20])
    names = tuple(id2label[k] for k in ids)
    if not all(isinstance(n, str) for n in names):
        _fail("`id2label` values must be label names (strings)", names)
    if label2id is not None and label2id != {n: i for i, n in enumerate(names)}:
        _fail("`label2id` must be the inverse of `id2label`", label2id)
    return names


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _read_json(path: str | os.PathLike) -> dict[str, Any]:
    missing = f"Config file not found; expected a JSON file at this path. Received: {str(path)!r}"
    return read_json(path, what="a config.json", missing=missing)
