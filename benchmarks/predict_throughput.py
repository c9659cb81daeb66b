"""Predict throughput, whole processes: `bertcnn predict` (both builds) vs the HF pipeline.

Each contender is one fresh process over the same corpus (imports, model load,
tokenisation, inference and printing included), as a user would run it: ~1500
sentences of the Python language reference (`benchmarks/corpus.py`), batch size 32,
truncation at 128 tokens. Rounds are interleaved; we report the median wall time
with its min-max, the speed-up as the median of per-round ratios (each ratio taken
under about the same momentary load), and the CPU time each process used (user +
sys, all its threads): on a shared machine the wall time follows the neighbours'
load, the CPU time mostly follows the work done.

    python benchmarks/predict_throughput.py [--repeats 5] [--size 1500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U
import corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_checkpoint(directory: Path) -> Path:
    """`bertcnn init` in-process: the embedded MiniLM backbone plus the seed-0 head."""
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir
    from parity.io.checkpoint import save_checkpoint

    config, tensors, _ = backbone_checkpoint(embedded_backbone_dir(), seed=0)
    save_checkpoint(directory, config, tensors, tokenizer_from=embedded_backbone_dir())
    return directory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=corpus.SIZE, help="sentences in the corpus")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bertcnn-bench-") as tmp:
        tmp = Path(tmp)
        text_file = corpus.write(tmp / "corpus.txt", args.size)
        ckpt = make_checkpoint(tmp / "ckpt")
        py = sys.executable
        common = ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]

        def ours(framework: str) -> list[str]:
            predict = ["predict", "--checkpoint", str(ckpt), "--framework", framework, "--file", str(text_file)]
            return [py, "-m", "parity", *predict, *common]

        commands = {
            "hf-pipeline": [py, str(U.ROOT / "benchmarks" / "hf_pipeline.py"), str(text_file), *common],
            "bertcnn-torch": ours("torch"),
            "bertcnn-keras": ours("keras"),
        }

        load_before = U.loadavg()
        print(f"corpus: {args.size} sentences from pydoc_data.topics; load {load_before}", file=sys.stderr)
        cpu: dict[str, list[float]] = {}
        times = U.interleaved(
            {n: U.counting_runner(n, c, tmp, args.size) for n, c in commands.items()}, args.repeats, cpu=cpu
        )
        load_after = U.loadavg()

    base = "hf-pipeline"
    rows, results = [], {}
    for name, samples in times.items():
        s, c = U.summary(samples), U.summary(cpu[name])
        ratio, cpu_ratio = U.paired_ratios(times, base, name), U.paired_ratios(cpu, base, name)
        results[name] = {
            "wall_s": s,
            "cpu_s": c,
            "texts_per_s": args.size / s["median"],
            "speedup_vs_pipeline": ratio,
            "cpu_ratio_vs_pipeline": cpu_ratio,
            "command": " ".join(commands[name]),
        }
        rows.append([
            name, U.spread(s), f"{args.size / s['median']:.0f}",
            f"{ratio['median']:.2f}× ({ratio['min']:.2f}–{ratio['max']:.2f})",
            U.spread(c), f"{cpu_ratio['median']:.2f}× ({cpu_ratio['min']:.2f}–{cpu_ratio['max']:.2f})",
        ])  # fmt: skip
    header = ["process", "wall, median (min–max)", "texts/s", "wall speed-up vs pipeline (per round)",
              "CPU time (min–max)", "CPU ratio vs pipeline"]  # fmt: skip
    print(U.table(header, rows))
    print(f"load average before {load_before}, after {load_after}; {U.environment()['cpus']} CPUs")
    U.write_results(
        "predict_throughput",
        {
            "what": __doc__.splitlines()[0],
            "corpus": f"benchmarks/corpus.py: {args.size} sentences of pydoc_data.topics",
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "repeats": args.repeats,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
