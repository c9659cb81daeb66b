"""Data-parallel scaling: training samples/s with 1 and N torchrun processes, and the traffic per step.

Strong scaling: the global batch is fixed (as `bertcnn train` keeps it), so N processes
each run B/N rows per update, then DDP all-reduces the gradient of every trained tensor.
Each configuration runs as its own `torchrun --standalone --nproc-per-node N` job
(gloo on CPU, nccl on CUDA), the model and the update being those of the trainer:
`bertcnn_torch.distributed.wrap` (pooler frozen), `torch.optim.AdamW`,
`clip_grad_norm_`. Besides the step time, each multi-process job times the all-reduce
alone on a buffer the size of the gradient, which measures this machine's link.

Communication per update, from the parameter count: a ring all-reduce of S bytes sends
(and receives) 2 (N-1)/N x S bytes per process, S = trained parameters x bytes per
element of the training dtype. With compute time T1 per global batch on one process,
N processes need about T1/N + (the part of 2 (N-1)/N x S / bandwidth that DDP cannot
overlap with the backward pass), which predicts the speed-up on other hardware.

On a machine with C cores, one process gets C threads and N processes C/N each (torch
threads), so on a CPU-only machine the compute is the same cores either way: no
speed-up is possible, only the all-reduce and the per-process overhead are added.

    python benchmarks/scaling.py [--size tiny|minilm|base] [--procs 1,2] [--batch 32] [--seq 128]
                                 [--steps 10] [--dtype float32] [--device cpu|cuda] [--out scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
LINKS_GBPS = {"gloo over loopback (measured here)": None, "1 GbE": 0.125, "10 GbE": 1.25, "100 GbE / IB EDR": 12.5,
              "PCIe 4 x16 (~25 GB/s)": 25.0, "NVLink 4 (H100, ~450 GB/s per direction)": 450.0}  # fmt: skip


def ring_bytes(n_params: int, dtype: str, world: int) -> float:
    """Bytes each process sends (and receives) in one ring all-reduce of the gradient."""
    return 2 * (world - 1) / world * n_params * BYTES[dtype]


def _model(size: str, dtype: str):
    import numpy as np
    import torch

    from bertcnn_torch import BertCNN
    from parity.config import BertCnnConfig

    if size == "minilm":
        from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir

        config, tensors, _ = backbone_checkpoint(embedded_backbone_dir(), seed=0)
        model = BertCNN._from_tensors(config, tensors)
    else:
        config = BertCnnConfig(**U.TINY) if size == "tiny" else BertCnnConfig()  # defaults: BERT-base
        torch.manual_seed(0)
        model = BertCNN(config)
    np.random.seed(0)
    return model.to(getattr(torch, dtype)).train()


def worker(args: argparse.Namespace, out: Path) -> None:
    """One torchrun rank: timed AdamW updates on a fixed synthetic global batch."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from bertcnn_torch import distributed as D

    world = D.init(args.device)
    device = D.device_for(world, args.device)
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, cores // world.world_size) if device.type == "cpu" else torch.get_num_threads())
    model = _model(args.size, args.dtype).to(device)
    ddp = D.wrap(model, world)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    config = model.config
    seq = min(args.seq, config.max_position_embeddings)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, (args.batch, seq))
    labels = rng.integers(0, config.num_labels, args.batch)
    share = D.shard(args.batch, world.rank, world.world_size)
    x = {"input_ids": torch.from_numpy(share.take(ids)).to(device),
         "attention_mask": torch.ones_like(torch.from_numpy(share.take(ids))).to(device)}  # fmt: skip
    y = torch.from_numpy(share.take(labels)).to(device)

    def update():
        opt.zero_grad(set_to_none=True)
        (F.cross_entropy(ddp(**x), y) * share.loss_scale).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if world.distributed:
            torch.distributed.barrier()

    for _ in range(args.warmup):
        update()
    sync()
    t = time.perf_counter()
    for _ in range(args.steps):
        update()
    sync()
    step_s = (time.perf_counter() - t) / args.steps
    n_params = sum(p.numel() for p in params)
    allreduce_s = None
    if world.distributed:  # the link alone: one all-reduce of a gradient-sized buffer
        buf = torch.zeros(n_params, dtype=getattr(torch, args.dtype), device=device)
        torch.distributed.all_reduce(buf)
        sync()
        t = time.perf_counter()
        for _ in range(3):
            torch.distributed.all_reduce(buf)
        sync()
        allreduce_s = (time.perf_counter() - t) / 3
    result = {"procs": world.world_size, "backend": world.backend, "threads_per_proc": torch.get_num_threads(),
              "step_s": step_s, "samples_per_s": args.batch / step_s, "trained_params": n_params,
              "allreduce_s": allreduce_s}  # fmt: skip
    D.on_main(world, lambda: out.write_text(json.dumps(result)))
    D.shutdown()


def launch(args: argparse.Namespace, procs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bertcnn-scaling-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
               __file__, "--worker", str(out), *sys.argv[1:]]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(U.ROOT), os.environ.get("PYTHONPATH", "")]))
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun with {procs} processes failed:\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text())
        result["process_wall_s"] = time.perf_counter() - t
        return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=("tiny", "minilm", "base"), default="minilm")
    p.add_argument("--procs", default="1,2", help="comma-separated process counts")
    p.add_argument("--batch", type=int, default=32, help="global batch (rows per update)")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--out", default="scaling", help="results/NAME.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args, Path(args.worker))
    procs = [int(x) for x in args.procs.split(",")]
    if args.batch < max(procs):
        raise SystemExit(
            f"--batch must be >= every process count. Received: --batch {args.batch}, --procs {args.procs}"
        )
    results = []
    for n in procs:
        r = launch(args, n)
        r["ring_bytes_per_proc"] = ring_bytes(r["trained_params"], args.dtype, n)
        results.append(r)
        print(f"  {n} process(es): {r['samples_per_s']:.1f} samples/s ({r['step_s'] * 1e3:.1f} ms/update, "
              f"{r['threads_per_proc']} threads each), load {U.loadavg()[0]}", file=sys.stderr, flush=True)  # fmt: skip
    base = results[0]["samples_per_s"]
    rows = [[str(r["procs"]), f"{r['samples_per_s']:.1f}", f"{r['samples_per_s'] / base:.2f}x",
             f"{r['step_s'] * 1e3:.1f}", f"{r['ring_bytes_per_proc'] / 2**20:.3g}",
             "-" if r["allreduce_s"] is None else f"{r['allreduce_s'] * 1e3:.3g}"] for r in results]  # fmt: skip
    print(f"\n{args.size}, global batch {args.batch} x {args.seq} tokens, {args.dtype}, {args.device}, "
          f"{results[0]['trained_params']:,} trained parameters\n")  # fmt: skip
    header = ["processes", "samples/s", "vs 1", "ms/update", "all-reduce MiB/proc/update", "all-reduce alone (ms)"]
    print(U.table(header, rows))
    n_params = results[0]["trained_params"]
    print("\nPredicted all-reduce time per update (ring, no overlap), by link:")
    link_rows = []
    for name, gbps in LINKS_GBPS.items():
        if gbps is None:
            measured = [r for r in results if r["allreduce_s"]]
            if measured:
                r = measured[-1]
                ms = [f"{r['allreduce_s'] * 1e3:.3g}" if n == r["procs"] else "-" for n in (2, 8)]
                link_rows.append([name, f"{r['ring_bytes_per_proc'] / r['allreduce_s'] / 1e9:.3g}", *ms])
            continue
        link_rows.append([name, f"{gbps:g}", *(f"{ring_bytes(n_params, args.dtype, n) / (gbps * 1e9) * 1e3:.3g}"
                                              for n in (2, 8))])  # fmt: skip
    print(U.table(["link", "GB/s", "2 procs (ms)", "8 procs (ms)"], link_rows))
    U.write_results(args.out, {"args": {k: v for k, v in vars(args).items() if k != "worker"}, "results": results,
                               "loadavg": U.loadavg()})  # fmt: skip


if __name__ == "__main__":
    main()
