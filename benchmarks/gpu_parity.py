"""benchmarks/gpu.py's parity section: `bertcnn report` on each model, then the bf16 tier on the corpus.

For each model, ``bertcnn report --device all --backend jax`` itself (strict float32 with TF32
off in torch and JAX, the default-precision tier, the bf16 tier, CPU-vs-GPU per framework; the
tolerance table judges), then PyTorch bf16 vs Keras bf16 over the corpus: argmax agreement and
max abs logit difference, batched by `parity.batching.predict_logits`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import _util as U
import numpy as np
from gpu_carry import check_carried_ids
from gpu_models import jax_forward, keras_bf16_model

# The acceptance target for the bf16 tier on the corpus (not a tolerance: the
# tolerance table judges the report's tiers; this is the figure the issue asks to reach).
BF16_ARGMAX_TARGET = 0.99


def load_corpus(path: Path | None, size: int) -> tuple[list[str], dict]:
    """The first `size` texts of `path` (one a line) or of benchmarks/corpus.py, and what they are."""
    if path:
        from parity.io.texts import read_texts

        texts, source = read_texts(str(path))[0], str(path)
    else:
        from corpus import sentences

        texts, source = sentences(), "benchmarks/corpus.py (pydoc_data.topics of this Python)"
    texts = texts[:size]
    return texts, {
        "source": source,
        "texts": len(texts),
        "sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
    }


def run_report(name: str, config, tensors, backbone: Path, device: str, work: Path) -> dict:
    """`bertcnn report` itself on this model (its tiers, its tolerance table), Keras on JAX; its JSON."""
    from parity.commands import main
    from parity.inputs import SENTENCES
    from parity.io.checkpoint import save_checkpoint
    from parity.jsonfile import read_json
    from parity.tokenize import Tokenizer

    ckpt = save_checkpoint(work / f"ckpt-{name}", config, tensors, tokenizer_from=backbone)
    check_carried_ids(
        backbone, [Tokenizer(ckpt, max_length=config.max_position_embeddings)(list(SENTENCES))["input_ids"]]
    )
    out = work / f"report-{name}.json"
    argv = ["--debug", "report", "--checkpoint", str(ckpt), "--backend", "jax", "--dtype", "float32"]
    argv += ["--device", "all" if device == "cuda" else "cpu", "--json-out", str(out)]
    U.log(f"parity {name}: bertcnn {' '.join(argv[1:])}")
    code = main(argv)
    doc = read_json(out, what="a `bertcnn report --json` result")
    doc["exit_code"] = code
    return doc


def _logits(doc: dict, **where) -> dict | None:
    """The logits tap (and argmax tap) of the one report result matching `where`."""
    hits = [r for r in doc["results"] if all(r.get(k) == v for k, v in where.items())]
    if not hits:
        return None
    (r,) = hits
    taps = {t["name"]: t for t in r["taps"]}
    out = {
        "logits_max_abs": taps["logits"]["max_abs"],
        "bound": taps["logits"]["atol"],
        "passed": r["passed"],
        "worst_tap": max(r["taps"], key=lambda t: t["max_abs"] / max(t["atol"], 1e-300))["name"],
        "first_divergence": r["first_divergence"],
    }
    if "logits.argmax" in taps:
        out["argmax_disagreement"] = taps["logits.argmax"]["max_abs"]
    return out


def _pair(a: np.ndarray, b: np.ndarray) -> dict:
    return {
        "argmax_agreement": float(np.mean(a.argmax(-1) == b.argmax(-1))),
        "logits_max_abs": float(np.abs(a.astype(np.float64) - b).max()),
    }


def bf16_corpus(config, tensors, backbone: Path, texts: list[str], device: str, batch: int) -> dict:
    """PyTorch bf16 vs Keras-on-JAX bf16 over the corpus, and each against the PyTorch float32 logits."""
    import torch

    from bertcnn_torch.runtime import build, predictor
    from parity.batching import predict_logits
    from parity.commands.builds import set_matmul_precision
    from parity.tokenize import Tokenizer

    tok = Tokenizer(backbone, max_length=min(128, config.max_position_embeddings), pad_token_id=config.pad_token_id)
    check_carried_ids(backbone, [ids for ids, _ in tok.encode(texts)])
    if device == "cuda":
        set_matmul_precision(strict=True, frameworks=("torch",))  # the fp32 reference: no TF32
    # Same batches and widths for every build: neighbours in length, widths padded to 64 (few XLA shapes).
    run = lambda f: predict_logits(f, tok, texts, batch_size=batch, pad_multiple=64)  # noqa: E731
    ref = build(config, tensors, device=device)
    fp32 = run(predictor(ref))
    if device == "cuda":
        set_matmul_precision(strict=False, frameworks=("torch", "keras"))  # as the report's bf16 tier
    torch_bf16 = run(predictor(ref.to(torch.bfloat16)))
    del ref
    keras_bf16 = run(jax_forward(keras_bf16_model(config, tensors, device), config, device))
    out = _pair(torch_bf16, keras_bf16)
    out.update(
        texts=len(texts),
        finite=bool(np.isfinite(torch_bf16).all() and np.isfinite(keras_bf16).all() and np.isfinite(fp32).all()),
        fp32_logits_max=float(np.abs(fp32).max()),
        torch_bf16_vs_torch_fp32=_pair(torch_bf16, fp32),
        keras_bf16_vs_torch_fp32=_pair(keras_bf16, fp32),
    )
    return out


def _worst(runs: list[dict | None], names) -> dict:
    """The worst logits difference of the report runs found, and whether every one passed."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return {"skipped": "not run on this device"}
    return {
        "logits_max_abs": max(r["logits_max_abs"] for r in runs),
        "bound": runs[0]["bound"],
        "passed": all(r["passed"] for r in runs),
        "per_model": dict(zip(names, runs, strict=False)),
    }


def parity_section(models: dict, backbone: Path, device: str, texts: list[str], batch: int, work: Path) -> dict:
    per_model, corpus = {}, {}
    tiers: dict[str, list] = {"strict": [], "default": [], "bf16": [], "torch": [], "keras_jax": []}
    for name, (config, tensors, what) in models.items():
        doc = run_report(name, config, tensors, backbone, device, work)
        tiers["strict"].append(_logits(doc, check="forward", device=device, tier="strict"))
        if device == "cuda":
            tiers["default"].append(_logits(doc, check="forward", device="cuda", tier="default"))
            tiers["bf16"].append(_logits(doc, check="forward", device="cuda", tier="bf16"))
            tiers["torch"].append(_logits(doc, check="cpu-vs-cuda", backend="PyTorch build"))
            tiers["keras_jax"].append(_logits(doc, check="cpu-vs-cuda", backend="Keras build on jax"))
        U.log(f"parity {name}: bf16 on {len(texts)} corpus texts")
        corpus[name] = bf16_corpus(config, tensors, backbone, texts, device, batch)
        per_model[name] = {"what": what, "report": doc, "bf16_corpus": corpus[name]}

    bf16 = {
        "argmax_agreement": min(c["argmax_agreement"] for c in corpus.values()),
        "logits_max_abs": max(c["logits_max_abs"] for c in corpus.values()),
        "what": "PyTorch build bf16 vs Keras build bf16 (JAX), every corpus text, worst model",
        "corpus_texts": len(texts),
        "target_argmax_agreement": BF16_ARGMAX_TARGET,
        "per_model": corpus,
    }
    bf16["target_met"] = bf16["argmax_agreement"] >= BF16_ARGMAX_TARGET
    if device == "cuda":
        bf16["report_tier"] = _worst(tiers["bf16"], models)
        cross_out = {k: _worst(tiers[k], models) for k in ("torch", "keras_jax")}
    else:
        cross_out = {"skipped": "--device cpu: no second device to compare with"}
    no_default = "--device cpu: no TF32 on a CPU, the default tier is the strict one"
    reports_passed = all(m["report"]["passed"] and m["report"]["exit_code"] == 0 for m in per_model.values())
    return {
        "fp32_strict": _worst(tiers["strict"], models),
        "fp32_default": _worst(tiers["default"], models) if device == "cuda" else {"skipped": no_default},
        "bf16": bf16,
        "cpu_vs_device": cross_out,
        "reports_passed": reports_passed,
        "passed": reports_passed and all(c["finite"] for c in corpus.values()),
        "models": per_model,
    }
