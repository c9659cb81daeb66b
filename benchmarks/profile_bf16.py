"""Where bf16 mixed precision gains and where it does not: the PyTorch build, float32 vs bf16, in one process.

Two parts, each timed interleaved (order rotated each round) and then profiled op by op
(`torch.profiler`, self CPU time):

- predict: `bertcnn_torch.runtime.predictor` with and without `mixed=True` (`torch.autocast`)
  over length-sorted batches of 32 of the corpus sentences (`benchmarks/corpus.py`), as
  `bertcnn predict` batches them;
- train: the library's `TorchTrainer` on the 2,400 training tweets of
  `benchmarks/labelled_corpus.py`, recipe `mixed_precision=None` vs `"bf16"`, the same
  length-grouped batches (the default), seconds per update after 2 warm-up updates.

    python benchmarks/profile_bf16.py [--sentences 600] [--updates 8] [--repeats 3]

Writes benchmarks/results/profile_bf16.json.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _util as U
import corpus
from profile_train import data

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def part_predict(a) -> dict:
    import bertcnn_torch.runtime as R
    from parity import Tokenizer
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir

    config, tensors, _ = backbone_checkpoint(embedded_backbone_dir(), seed=0)
    tok = Tokenizer(embedded_backbone_dir(), max_length=128, pad_token_id=config.pad_token_id)
    enc = tok.encode(corpus.sentences(a.sentences))
    order = np.argsort([len(ids) for ids, _ in enc], kind="stable")
    batches = [tok.pad([enc[j] for j in order[i : i + 32]]) for i in range(0, len(order), 32)]
    model = R.build(config, tensors)
    fns = {"float32": R.predictor(model), "bf16": R.predictor(model, mixed=True)}
    runners = {k: (lambda f=f: [f(b) for b in batches]) for k, f in fns.items()}
    for r in runners.values():  # warm-up: oneDNN picks and caches its kernels per shape
        r()
    times = U.interleaved(runners, a.repeats, log=io.StringIO())
    return {
        "sentences": a.sentences,
        "seconds": {k: U.summary(v) for k, v in times.items()},
        "speedup_bf16": U.paired_ratios(times, "float32", "bf16"),
        "top_ops_self_cpu_share": {k: U.top_ops(r) for k, r in runners.items()},
    }


def part_train(a) -> dict:
    from bertcnn_torch.train import TorchTrainer
    from parity.training import TrainingRecipe
    from parity.training.loop import Run
    from parity.training.state import initial_snapshot

    config, tensors, encoded, y = data()
    out = {}
    for name, mixed in (("float32", None), ("bf16", "bf16")):
        recipe = TrainingRecipe(epochs=1, batch_size=32, lr=5e-5, seed=0, mixed_precision=mixed)
        start = initial_snapshot(config, tensors, recipe, framework="torch", data_sha256="0" * 64, num_rows=len(y))
        asked = itertools.count(1)
        run = Run(start, encoded, y, stop=lambda asked=asked: next(asked) > 0)  # no fit: updates by hand
        tr = TorchTrainer(run)
        tr.model.train()  # dropout on, as in fit
        steps = [(run.micro(0, s), s) for s in range(a.updates + 3)]
        for s in steps[:2]:
            tr.update(*s)
        times = []
        for s in steps[2:-1]:
            t = time.perf_counter()
            tr.update(*s)
            times.append(time.perf_counter() - t)
        last = steps[-1]
        out[name] = {
            "update_s": U.summary(times),
            "top_ops_self_cpu_share": U.top_ops(lambda t=tr, s=last: t.update(*s)),
        }
    out["speedup_bf16_per_update"] = out["float32"]["update_s"]["median"] / out["bf16"]["update_s"]["median"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=600)
    p.add_argument("--updates", type=int, default=8, help="timed updates per precision (after 2 warm-ups)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    peaks = U.cpu_peaks()
    U.log(f"matmul peaks: {U.peaks_line(peaks)}")
    result = {"what": __doc__.splitlines()[0], "matmul_peaks": peaks, "loadavg_before": U.loadavg()}
    result["predict"] = part_predict(a)
    U.log(f"predict: {result['predict']['speedup_bf16']['median']:.2f}x")
    result["train"] = part_train(a)
    U.log(f"train: {result['train']['speedup_bf16_per_update']:.2f}x per update")
    result["loadavg_after"] = U.loadavg()
    for part in ("predict", "train"):
        for prec in ("float32", "bf16"):
            ops = (result[part]["top_ops_self_cpu_share"][prec] if part == "predict"
                   else result[part][prec]["top_ops_self_cpu_share"])  # fmt: skip
            print(f"{part} {prec}: " + ", ".join(f"{k} {v:.1%}" for k, v in list(ops.items())[:8]))
    if not a.no_write:
        U.write_results("profile_bf16", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
