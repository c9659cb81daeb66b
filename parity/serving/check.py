"""The artifact check: an export, run in its own runtime, against the PyTorch build of its checkpoint.

One code path for `bertcnn report --checkpoint CK --artifact OUT` and `bertcnn export
--verify`. The inputs are the report's real sentences plus the shapes that break
exporters: batch 1, length 1, a batch narrower than the widest kernel, heavy
padding, length 128 (or the length the model reads when shorter: its `max_seq_length`,
else its position table), batch 17; real text is cut where the model's reader cuts it. Each is one "tap"
(`logits/<case>`), held to the logits bound of the ("float32", "cpu", "artifact")
tolerance entry. A SavedModel is also run by the session loader TF Serving uses, on
both signatures: rows `logits/<case> (session)` and `logits/<case> (session,
serving_int32)`; one that loader cannot restore or run fails the check (exit 2). An
export made from other weights than CK (its manifest's sha256) fails the check and
says so; it is never compared as if it matched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.compare import RunResult, TapResult
from parity.config import BertCnnConfig
from parity.inputs import SENTENCES, random_batch, sample_inputs
from parity.io.files import sha256_file
from parity.io.formats import Weights
from parity.serving.child import run_in_child
from parity.serving.directory import load_config
from parity.serving.manifest import read_manifest
from parity.serving.runners import RUNTIMES
from parity.tokenize import Tokenizer
from parity.tolerance import tolerance_for

# Texts where BERT tokenizers are known to disagree (normalisation, splitting, limits), for `--text` exports:
# each is turned into ids inside the artifact and by the checkpoint's `tokenizers` tokenizer, which must agree.
HARD_TEXTS = (
    "wait… what?! ‘quotes’ “double” — dash",  # U+2026 is one token, not three dots (NFKC would split it)
    "ｆｕｌｌｗｉｄｔｈ：１２３，ＯＫ！",  # fullwidth forms stay themselves (no NFKC)
    "你好，世界。東京タワー 한국어 텍스트",  # CJK spaced apart, Hangul decomposed, kana kept
    "Ünïcödé ÇAFÉ naïve İstanbul ΣΊΣΥΦΟΣ ﬁne ﬂow",  # accents stripped after NFD, lower case per character
    "zero\u200bwidth\u200d joiner\ufeffbom soft\xadhyphen ctrl\x07bell\x00nul",  # deleted characters
    "tab\tnew\nline\r\n\u3000ideographic\xa0nbsp\u2028sep",  # whitespace of every kind
    "",  # empty
    "   \t ",  # whitespace only
    "x" * 101 + " " + "é" * 60,  # a word over 100 characters is [UNK]; 60 two-byte characters are not
    "literal [SEP] and [UNK] and [cls] tokens",  # special tokens written in the text are themselves
    "emoji 😀👍🏽 🇺🇸 in👈 #MAGA🇺🇸",  # unknown characters: the whole word is [UNK]
    "don't stop-believing (really) $5.00 50% a/b c\\d",
)


@dataclass
class ArtifactResult(RunResult):
    """A RunResult (same JSON, same table) whose label names the artifact, not a Keras backend."""

    @property
    def label(self) -> str:
        return f"{self.check} {self.dtype} on {self.device}, {self.backend}"

    @property
    def limited(self) -> str:
        """An artifact that cannot be compared (other weights, another config) was not checked: said so."""
        return f"NOT CHECKED ({self.limitation})"


def check_cases(
    config: BertCnnConfig, tokenizer_dir: Path | None, *, seed: int = 0, notes: list[str] | None = None
) -> list[tuple[str, dict]]:
    """(name, inputs) for every case; random ids where a case needs a shape real text would not give."""
    longest = min(128, config.reading_length)  # the length the model reads, at most 128
    widest = config.max_kernel_size
    rng = np.random.default_rng(seed)
    # The tokenizer's truncation note is a note of this run, not a line on stderr.
    sentences = sample_inputs(config, tokenizer_dir, seed=seed, notes=[] if notes is None else notes)
    cases = [
        ("sentences", sentences),
        ("batch-1", random_batch(config, [min(9, longest)], seed=seed + 1)),
        ("length-1", random_batch(config, [1, 1], seed=seed + 2)),
        # Narrower than the widest kernel (width 1 when the widest kernel is 1: nothing is narrower).
        ("shorter-than-kernel", random_batch(config, [max(widest - 1, 1), 1], seed=seed + 3)),
        ("heavy-padding", random_batch(config, [longest, 1, 2, 1], seed=seed + 4)),
        (f"length-{longest}", random_batch(config, [longest, longest], seed=seed + 5)),
        ("batch-17", random_batch(config, rng.integers(1, min(40, longest) + 1, size=17), seed=seed + 6)),
    ]
    return cases


Reference = Callable[[BertCnnConfig, dict[str, np.ndarray], list[dict]], list[np.ndarray]]


def check_artifact(source: Weights, export: str | os.PathLike, reference: Reference) -> ArtifactResult:
    """Compare the export's logits with `reference` (the PyTorch build's logits) of `source` on every case.

    `source` is the checkpoint the export was made from, as `parity.io.read_weights` read it.
    """
    manifest = read_manifest(export)  # broken or hostile manifests raise here (exit 2)
    ck_config, tensors = source.config, source.tensors
    ex_config = load_config(export)
    dtype = "int8" if manifest.quantize else "float32"  # an int8 export (either mode) is held to its own tier
    tol = tolerance_for(dtype, "cpu", "artifact")
    run = ArtifactResult(
        dtype=dtype,
        device="cpu",
        backend=f"{manifest.format} export (from the {manifest.framework} build) in {RUNTIMES[manifest.format]}",
        check="artifact",
    )
    ck_hash = sha256_file(source.weights_file)
    if manifest.source_sha256 != ck_hash:
        run.limitation = (
            f"the export was made from other weights: its manifest has sha256 {manifest.source_sha256[:12]}..., "
            f"{source.weights_file} has {ck_hash[:12]}...; compare it with the checkpoint it came from"
        )
    if ex_config.windows is None:  # a windows model exported with --long-text truncate: its reading is all that differs
        ck_config = ck_config.replace(window_stride=None, max_windows=None)
    if ex_config.to_dict() != ck_config.to_dict():
        differ = sorted(
            k
            for k in ck_config.to_dict().keys() | ex_config.to_dict().keys()
            if ck_config.to_dict().get(k) != ex_config.to_dict().get(k)
        )
        run.limitation = f"the export's config.json differs from the checkpoint's in {differ}"
        return run
    cases = check_cases(ck_config, source.tokenizer_dir, notes=run.notes)
    batches = [b for _, b in cases]
    texts = text_cases(ck_config) if manifest.text else []
    candidates, meta = run_in_child(export, batches, texts=[t for _, t in texts])
    expected = reference(ck_config, tensors, batches)
    if texts:
        _text_taps(run, source, texts, meta["text"], reference)
    if manifest.text and not candidates:
        run.notes.append(
            "the ONNX model takes strings only: it was checked from texts (rows tokens/... and text-logits/...)"
        )
    for loader, candidate in candidates.items():
        suffix = f" ({loader})" if loader else ""
        for (name, _), ref, cand in zip(cases, expected, candidate, strict=True):
            run.taps.append(_logits_tap(f"logits/{name}{suffix}", ref, cand, tol.atol))
            if tol.max_argmax_disagreement is not None:
                run.taps.append(confident_argmax_tap(f"argmax/{name}{suffix}", ref, cand, tol))
    loaded = meta.get("frameworks_loaded", [])
    why = " (`import tensorflow` loads Keras itself)" if "keras" in loaded and manifest.format == "saved_model" else ""
    run.notes.append(f"the runtime's process loaded {', '.join(loaded) or 'no deep-learning framework'}{why}")
    return run


def text_cases(config: BertCnnConfig, seed: int = 0) -> list[tuple[str, list[str]]]:
    """(name, texts) for a `--text` export: real sentences, the hard texts, batch 1, one longer than the model
    reads (cut), 17 texts of every length."""
    rng = np.random.default_rng(seed)
    words = " ".join(SENTENCES).split()
    long = " ".join(words[i % len(words)] for i in range(2 * config.reading_length))
    seventeen = [" ".join(rng.choice(words, size=int(rng.integers(0, 30)))) for _ in range(17)]
    return [
        ("sentences", list(SENTENCES)),
        ("hard-texts", list(HARD_TEXTS)),
        ("batch-1", [SENTENCES[1]]),
        ("longer-than-read", [long, "Hi"]),
        ("batch-17", seventeen),
    ]


def _text_taps(run, source: Weights, texts, got: dict, reference: Reference) -> None:
    """Tokenization parity (the ids inside the artifact == the checkpoint's `tokenizers` ids, exactly) and the
    logits from strings against the PyTorch build fed by the `tokenizers` ids, per loader and case."""
    config = source.config
    tok = Tokenizer(source.tokenizer_dir, max_length=config.reading_length, pad_token_id=config.pad_token_id)
    ids = [tok(t) for _, t in texts]
    expected = reference(config, source.tensors, ids)
    ids_tol, logits_tol = tolerance_for("int64", "cpu", "tokens"), tolerance_for("float32", "cpu", "text")
    for loader, outs in got.items():
        suffix = f" ({loader})" if loader else ""
        for (name, _), ref_ids, ref_logits, out in zip(texts, ids, expected, outs, strict=True):
            run.taps.append(_ids_tap(f"tokens/{name}{suffix}", ref_ids, out, ids_tol.atol))
            run.taps.append(_logits_tap(f"text-logits/{name}{suffix}", ref_logits, out["logits"], logits_tol.atol))
            if config.multi_label:
                run.taps.append(_selected_tap(f"text-selected/{name}{suffix}", ref_logits, out["selected"],
                                              config.decision_thresholds, logits_tol.atol))  # fmt: skip


def _selected_tap(name: str, ref_logits, selected, thresholds, atol: float) -> TapResult:
    """A multi-label `--text` export's `selected`: rows that differ from the reference's sigmoid >= threshold, on
    the labels whose reference probability is farther from its threshold than the logits bound can move it (a
    sigmoid moves at most a quarter of its input's change); held to 0."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(ref_logits, np.float64)))
    t = np.asarray(thresholds, np.float64)
    b = np.asarray(selected, bool)
    if b.shape != p.shape:
        return TapResult(name, list(b.shape), float("inf"), float("inf"), 0.0, False)
    sure = np.abs(p - t) > atol / 4
    rows = int(np.sum(np.any(sure & ((p >= t) != b), axis=1)))
    return TapResult(name, list(b.shape), float(rows), rows / max(len(b), 1), 0.0, rows == 0)


def _ids_tap(name: str, ref: dict, out: dict, bound: float) -> TapResult:
    """Texts whose ids (or mask) differ from the reference's: the tap's value, held to `bound` (0)."""
    a, m = np.asarray(ref["input_ids"]), np.asarray(ref["attention_mask"])
    b, n = np.asarray(out["input_ids"]), np.asarray(out["attention_mask"])
    rows = len(a) if a.shape != b.shape else int(np.sum(np.any((a != b) | (m != n), axis=1)))
    return TapResult(name, list(b.shape), float(rows), float(rows) / max(len(a), 1), bound, rows <= bound)


def confident_argmax_tap(name: str, ref: np.ndarray, cand: np.ndarray, tol) -> TapResult:
    """Low-precision exports keep every prediction the reference is sure of.

    A row whose top-two reference logits are more than 2 x atol apart cannot change its argmax
    within the logits bound; the fraction of such rows whose argmax differs is held to
    `max_argmax_disagreement`. Rows closer than that are the bound's business, not argmax's.
    """
    a, b = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
    top = np.sort(a, axis=-1)
    sure = (top[:, -1] - top[:, -2] > 2 * tol.atol) if a.shape[-1] > 1 else np.ones(len(a), bool)
    flips = float(np.mean(a[sure].argmax(-1) != b[sure].argmax(-1))) if sure.any() else 0.0
    return TapResult(
        name, [int(sure.sum())], flips, flips, tol.max_argmax_disagreement, flips <= tol.max_argmax_disagreement
    )


def _logits_tap(name: str, ref: np.ndarray, cand: np.ndarray, bound: float) -> TapResult:
    a, b = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
    if a.shape != b.shape:
        return TapResult(name, list(b.shape), float("inf"), float("inf"), bound, False)
    diff = float(np.abs(a - b).max())
    scale = float(np.abs(a).max())
    finite = bool(np.isfinite(b).all())
    return TapResult(name, list(a.shape), diff, diff / scale if scale else diff, bound, finite and diff <= bound)
