"""The parity report: the same weights through both builds, compared tap by tap.

Frameworks are imported inside the functions, so `import parity` stays light.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.checkpoint import backbone_checkpoint, embedded_backbone_dir, load_checkpoint
from parity.compare import RunResult, compare_taps, format_table
from parity.config import BertCnnConfig
from parity.tokenize import Tokenizer
from parity.tolerance import tolerance_for

# Real sentences (well-known opening lines) of varied length; "Hi" is shorter than
# the widest default kernel once tokenised ([CLS] hi [SEP]), so that path is exercised.
SENTENCES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.",
    "Call me Ishmael.",
    "Hi",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "The sky above the port was the color of television, tuned to a dead channel.",
    "Happy families.",
)


@dataclass
class Weights:
    """What a report runs: a config, canonical tensors, and inputs."""

    config: BertCnnConfig
    tensors: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    source: str


def load_weights(checkpoint: str | os.PathLike | None = None, *, seed: int = 0) -> Weights:
    """A checkpoint, or the embedded MiniLM backbone with a head drawn from `seed`."""
    if checkpoint is None:
        backbone = embedded_backbone_dir()
        config, tensors, _ = backbone_checkpoint(backbone, seed=seed)
        tok_dir, source = backbone, f"embedded all-MiniLM-L6-v2 + head(seed={seed})"
    else:
        config, tensors = load_checkpoint(checkpoint)
        tok_dir, source = Path(checkpoint), str(checkpoint)
    return Weights(config, tensors, sample_inputs(config, tok_dir, seed=seed), source)


def sample_inputs(config: BertCnnConfig, tokenizer_dir: Path, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Tokenised `SENTENCES`; seeded random ids when the checkpoint carries no tokenizer."""
    if (tokenizer_dir / "tokenizer.json").is_file():
        tok = Tokenizer(tokenizer_dir, max_length=config.max_position_embeddings, pad_token_id=config.pad_token_id)
        return tok(list(SENTENCES))
    rng = np.random.default_rng(seed)
    lengths = np.array([min(n, config.max_position_embeddings) for n in (29, 6, 3, 25, 18, 17, 4)])
    width = int(lengths.max())
    mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(0, config.vocab_size, size=mask.shape) * mask + config.pad_token_id * (1 - mask)
    types = rng.integers(0, config.type_vocab_size, size=mask.shape) * mask
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask, "token_type_ids": types.astype(np.int64)}


def torch_taps(w: Weights, dtype: str = "float32", device: str = "cpu") -> dict[str, np.ndarray]:
    import torch

    from bertcnn_torch import BertCNN

    model = BertCNN._from_tensors(w.config, w.tensors).to(device=device, dtype=getattr(torch, dtype))
    inputs = {k: torch.from_numpy(v).to(device) for k, v in w.inputs.items()}
    with torch.inference_mode():
        taps = model(**inputs, return_taps=True)
    return {k: v.detach().cpu().numpy() for k, v in taps.items()}


def keras_taps(w: Weights, dtype: str = "float32") -> dict[str, np.ndarray]:
    from keras import ops

    from bertcnn_tf import BertCNN

    model = BertCNN(w.config, dtype=dtype)
    model.set_canonical_weights(w.tensors)
    taps = model(**w.inputs, training=False, return_taps=True)
    return {k: ops.convert_to_numpy(v) for k, v in taps.items()}


def run_parity(w: Weights, *, dtype: str = "float32", device: str = "cpu") -> RunResult:
    """PyTorch build as reference, Keras build as candidate, same weights and inputs."""
    import keras

    reference = torch_taps(w, dtype, device)
    candidate = keras_taps(w, dtype)
    return compare_taps(
        reference,
        candidate,
        w.inputs["attention_mask"],
        w.config,
        tolerance_for(dtype, device),
        dtype=dtype,
        device=device,
        backend=keras.backend.backend(),
    )


# -- the `bertcnn report` command ---------------------------------------------
DTYPES = ("float32", "float64")


def _dtypes(text: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    if not chosen or any(d not in DTYPES for d in chosen):
        raise argparse.ArgumentTypeError(f"expected one or more of {','.join(DTYPES)}. Received: {text!r}")
    return chosen


# -- report -----------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", metavar="DIR", help="canonical checkpoint (default: embedded MiniLM + seeded head)")
    p.add_argument("--json", metavar="FILE", help="also write the structured report as JSON")
    p.add_argument("--dtype", type=_dtypes, default=DTYPES, help="float32, float64 or both (default: both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the head for the embedded default (default: 0)")


def run(args: argparse.Namespace) -> int:
    w = load_weights(args.checkpoint, seed=args.seed)
    n, t = w.inputs["input_ids"].shape
    print(f"weights: {w.source}")
    print(f"inputs: {n} texts, padded to {t} tokens (real lengths {w.inputs['attention_mask'].sum(1).tolist()})")
    print("reference: PyTorch build; candidate: Keras build; hidden states compared on real tokens\n")
    runs = []
    for dtype in args.dtype:
        run = run_parity(w, dtype=dtype)
        runs.append(run)
        print(format_table(run) + "\n")
    passed = all(r.passed for r in runs)
    if args.json:
        doc = {"passed": passed, "source": w.source, "results": [r.to_dict() for r in runs]}
        from parity.cli import write_text_atomic

        write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
    print("PARITY OK" if passed else "PARITY FAILED")
    return 0 if passed else 1
