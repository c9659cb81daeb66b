"""benchmarks/gpu.py's throughput section: forward throughput of both builds and HF, MFU, a profile.

One batch (default 256 x 128, all tokens real), bf16 weights and inputs resident on the
device: the PyTorch build (SDPA, and with ``torch.compile``), the Keras build on JAX (one
``jax.jit``), ``BertForSequenceClassification`` (SDPA) as the baseline; MFU against a bf16
matmul ceiling measured on the same device (`parity.flops` says what is counted).
"""

from __future__ import annotations

import contextlib
import time

import _util as U
from gpu_models import full_batch, hf_model, keras_bf16_model, keras_jit

from parity import flops

VARIANTS = {
    "torch": "PyTorch build, SDPA, eager",
    "keras_jax": "Keras build on JAX, one jax.jit (XLA)",
    "hf": "transformers BertForSequenceClassification, SDPA",
    "torch_compile": "PyTorch build, SDPA, encoder under torch.compile",
}


def counted_flops(model, inputs) -> int:
    """torch's own FLOP counter over one forward: an independent check of `parity.flops`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(**inputs)
    return int(counter.get_total_flops())


class Contenders:
    """The models on the device in bf16, the batch resident beside them, and a runner of `iters` calls each."""

    def __init__(self, config, tensors, device: str, batch: int, seq: int, iters: int, compile_: bool):
        import torch

        from bertcnn_torch.runtime import build

        self.config, self.tensors, self.device = config, tensors, device
        x_np = full_batch(config, batch, seq, seed=0)
        self.x_t = {k: torch.from_numpy(v).to(device) for k, v in x_np.items()}
        self.hf = hf_model(config, tensors, device, torch.bfloat16)
        self.kmodel = keras_bf16_model(config, tensors, device)
        self.kcall = keras_jit(self.kmodel, device)
        self.kx = self.kcall.inputs(x_np)
        self.iters, self.sync = iters, torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.runners = {
            "torch": self._torch(build(config, tensors, "bfloat16", device)),
            "keras_jax": self._keras,
            "hf": self._torch(self.hf, lambda o: o.logits),
        }
        if compile_:
            t_comp = build(config, tensors, "bfloat16", device)
            t_comp.bert.compile()  # the encoder: BertCNN.forward's input checks are numpy, which dynamo cannot trace
            self.runners["torch_compile"] = self._torch(t_comp)

    def _torch(self, model, logits=lambda o: o):
        import torch

        def call():
            with torch.inference_mode():
                out = None
                for _ in range(self.iters):
                    out = logits(model(**self.x_t))
                self.sync()
            return out

        return call

    def _keras(self):
        out = None
        for _ in range(self.iters):
            out = self.kcall(self.kx)
        return out.block_until_ready()

    def warm_up(self) -> tuple[dict, dict]:
        """Each runner once (compilation, autotuning, allocator): its seconds; a failed torch.compile left out."""
        first, failed = {}, {}
        for name, f in list(self.runners.items()):
            t0 = time.perf_counter()
            try:
                f()
            except Exception as e:  # torch.compile is optional: its failure is a finding, not the end of the run
                if name != "torch_compile":
                    raise
                failed[name] = U.failure(e)
                del self.runners[name]
                U.log(f"throughput: {name} failed, left out: {failed[name]}")
                continue
            first[name] = time.perf_counter() - t0
            U.log(f"throughput: {name} warm-up (first {self.iters} calls) {first[name]:.1f} s")
        return first, failed

    def flop_checks(self, batch: int) -> dict:
        """The FLOP formula cross-checked: torch's counter (the PyTorch build and HF) and XLA's cost model.

        Eager attention, so the counter sees the attention matmuls (it has no formula for SDPA's CPU kernel).
        """
        from bertcnn_torch.runtime import build

        one = {k: v[:1] for k, v in self.x_t.items()}
        t_count = build(self.config, self.tensors, "bfloat16", self.device, attn_implementation="eager")
        out = {
            "torch_counter_bertcnn_per_seq": counted_flops(t_count, one),
            "torch_counter_hf_per_seq": counted_flops(self.hf, one),
            "note": "torch.utils.flop_counter on one sequence: the PyTorch build with eager attention, HF with "
            "SDPA (on a CPU its SDPA kernel is not counted: the attention term is then missing there)",
        }
        del t_count
        with contextlib.suppress(Exception):
            if self.device != "cuda":  # a second compile of the whole graph, for a cross-check only worth it there
                raise LookupError
            cost = self.kcall.fn.lower(*self.kcall.variables, self.kx).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            out["xla_cost_model_keras_per_seq"] = float(cost["flops"]) / batch
        return out


def throughput_section(
    config,
    tensors,
    device: str,
    batch: int,
    seq: int,
    *,
    repeats: int,
    iters: int,
    compile_: bool,
    matmul_n: int,
    profile: bool,
) -> dict:
    from parity.commands.builds import set_matmul_precision

    if device == "cuda":
        set_matmul_precision(strict=False, frameworks=("torch", "keras"))  # as shipped; bf16 matmuls either way
    c = Contenders(config, tensors, device, batch, seq, iters, compile_)
    first, failed = c.warm_up()
    ceiling = U.matmul_ceiling(device, matmul_n, reps=max(10, repeats))
    U.log(
        f"throughput: bf16 matmul ceiling {ceiling['flops_per_s'] / 1e12:.1f} TFLOP/s; {repeats} rounds x {iters} calls"
    )
    times = U.interleaved(c.runners, repeats)

    per_seq = {
        "bertcnn_torch": flops.forward_flops(config, seq, "cnn"),
        "bertcnn_keras": flops.forward_flops(config, seq, "cnn", pooler=False),
        "hf": flops.forward_flops(config, seq, "hf"),
    }
    out: dict = {
        "batch": batch,
        "seq_len": seq,
        "dtype": "bfloat16 weights and activations",
        "inputs": "resident on the device, every token real; logits left on the device; each round ends "
        "with a device sync. The PyTorch build checks its inputs in numpy inside forward (one "
        "device-to-host copy per call); the Keras call is checked by its caller, not timed here",
        "calls_per_round": iters,
        "matmul_ceiling": ceiling,
        "flops_per_sequence": {**per_seq, "formula": flops.__doc__},
    }
    counted_as = {"hf": "hf", "keras_jax": "bertcnn_keras"}
    for name, samples in times.items():
        per_call = U.summary([s / iters for s in samples])
        sps = batch / per_call["median"]
        out[name] = {
            "what": VARIANTS[name],
            "seq_per_s": sps,
            "mfu": flops.mfu(per_seq[counted_as.get(name, "bertcnn_torch")]["total"], sps, ceiling["flops_per_s"]).mfu,
            "seconds_per_batch": per_call,
            "first_round_s": first[name],
        }
    for name, why in failed.items():
        out[name] = {"what": VARIANTS[name], "failed": why}
    if "seq_per_s" in out.get("torch_compile", {}):
        out["torch_best"] = max(("torch", "torch_compile"), key=lambda n: out[n]["seq_per_s"])
    out["flop_checks"] = c.flop_checks(batch)
    if profile and device == "cuda":
        try:
            out["profile_torch"] = torch_profile(c.runners["torch"])
        except Exception as e:  # the profile explains figures; it must not cost them
            out["profile_torch"] = f"failed: {type(e).__name__}: {e}"
    out["keras_bf16_variables"] = sorted({str(v.dtype) for v in c.kmodel.weights})
    return out


def torch_profile(call, top: int = 15) -> list[dict]:
    """Where the PyTorch build's device time goes: the top kernels/ops of one round."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        call()
    rows = []
    events = prof.key_averages()
    dev = lambda e: getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)  # noqa: E731
    total = sum(dev(e) for e in events if not e.key.startswith("aten::")) or 1.0
    for e in sorted(events, key=dev, reverse=True)[:top]:
        rows.append({"name": e.key[:120], "device_ms": dev(e) / 1e3, "calls": e.count, "share": dev(e) / total})
    return rows
