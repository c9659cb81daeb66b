"""benchmarks/gpu.py's train section: the real trainers (`bertcnn train`'s), timed per update, with MFU."""

from __future__ import annotations

import contextlib
import time

import _util as U
import numpy as np
from gpu_models import full_batch

from parity import flops


def timed_fit(make_run, make_trainer, context, *, batch: int, warm: int, flops_per_sample: int, peak: float) -> dict:
    """One trainer's `fit()` over `warm` + timed updates: seconds per update (from its log records), MFU."""
    stamps: list[float] = []
    run = make_run(lambda record: stamps.append(time.perf_counter()))  # one record per update: no evaluator
    t0 = time.perf_counter()
    with context:
        snap = make_trainer(run).fit()
    per_step = np.diff([t0, *stamps])
    s = U.summary([float(x) for x in per_step[warm:]])
    sps = batch / s["median"]
    losses = [m["loss"] for m in snap.metrics if "loss" in m]
    return {
        "samples_per_s": sps,
        "mfu": flops.mfu(flops_per_sample, sps, peak).mfu,
        "seconds_per_update": s,
        "first_updates_s": [float(x) for x in per_step[:warm]],
        "finite_loss": bool(np.isfinite(losses).all()),
    }


def train_section(config, tensors, device: str, batch: int, seq: int, warm: int, steps: int, ceiling: dict) -> dict:
    """The real trainers (`bertcnn train`'s), timed per update: PyTorch with and without bf16 autocast,
    Keras on JAX in float32 (the recipe knows float32 and float64 only: no mixed precision there).

    Each trainer's own `fit()` runs a plan of `warm + steps` updates; an update's time is the gap
    between two of its log records (each comes after the update's loss reached the host), so it
    holds everything the trainer does per update: batching, transfer, forward, backward, AdamW.
    MFU counts 3x the forward's matmul FLOPs per sample (`parity.flops.training_flops`), the usual convention.
    """
    import torch

    from bertcnn_tf.train import KerasTrainer
    from bertcnn_torch.train import TorchTrainer
    from parity.training import TrainingRecipe
    from parity.training.loop import Run
    from parity.training.parity import encoded_rows, start

    n = batch * (warm + steps)
    inputs, labels = full_batch(config, n, seq, seed=1), np.random.default_rng(2).integers(0, config.num_labels, n)
    recipe = TrainingRecipe(epochs=1, batch_size=batch, lr=2e-5, warmup_steps=1, shuffle=False, max_length=seq)
    flops_per_sample = flops.training_flops(config, seq)

    def timed(framework: str, make_trainer, context) -> dict:
        make_run = lambda progress: Run(  # noqa: E731
            start(config, tensors, recipe, n, framework), encoded_rows(inputs), labels, progress=progress
        )
        return timed_fit(make_run, make_trainer, context, batch=batch, warm=warm,
                         flops_per_sample=flops_per_sample, peak=ceiling["flops_per_s"])  # fmt: skip

    out: dict = {
        "available": True,
        "batch": batch,
        "seq_len": seq,
        "updates_timed": steps,
        "warm_up_updates": warm,
        "flops_per_sample": flops_per_sample,
        "recipe": recipe.to_dict(),
        "what": train_section.__doc__,
    }
    torch_trainer = lambda r: TorchTrainer(r, device=device)  # noqa: E731
    out["torch_bf16_autocast"] = timed("torch", torch_trainer, torch.autocast(device_type=device, dtype=torch.bfloat16))
    out["torch_fp32"] = timed("torch", torch_trainer, contextlib.nullcontext())
    out["torch_fp32"]["precision"] = f"torch.backends.cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}"
    if device == "cuda":
        torch.cuda.empty_cache()  # JAX allocates its own memory next
    try:
        out["keras_jax_fp32"] = timed("keras", KerasTrainer, contextlib.nullcontext())
        out["keras_jax_fp32"]["precision"] = "JAX default matmul precision (TF32 on GPUs that have it)"
    except Exception as e:  # the trainer's failure is a finding to report, not the end of the run
        out["keras_jax_fp32"] = {"failed": U.failure(e)}
        U.log(f"train: Keras trainer on JAX failed: {out['keras_jax_fp32']['failed']}")
    out["gpu_fine_tuning_parity"] = (
        "not measured: `bertcnn report --train-steps` trains on the CPU only "
        "(bertcnn_torch.runtime.train_parity takes no device)"
    )
    return out
