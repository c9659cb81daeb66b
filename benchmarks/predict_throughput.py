"""Predict throughput, whole processes: `bertcnn predict` (both builds) vs the HF pipeline.

Each contender is one fresh process over the same corpus (imports, model load,
tokenisation, inference and printing included), as a user would run it: ~1500
sentences of the Python language reference (`benchmarks/corpus.py`), batch size 32,
truncation at 128 tokens. Rounds are interleaved; we report the median wall time
with its min-max, the speed-up as the median of per-round ratios (each ratio taken
under about the same momentary load), and the CPU time each process used (user +
sys, all its threads): on a shared machine the wall time follows the neighbours'
load, the CPU time mostly follows the work done.

Each is also quoted as achieved GFLOP/s (`parity.flops` on the real token lengths) against
float32 and bfloat16 matmul peaks measured at the start of the same run. The
`--mixed-precision bf16` contenders are first checked against their float32 runs on
every text: argmax agreement and the largest logit difference.

    python benchmarks/predict_throughput.py [--repeats 5] [--size 1500]
        [--contenders hf-pipeline,bertcnn-torch,bertcnn-keras,bertcnn-torch-bf16,bertcnn-keras-bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

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


CONTENDERS = ("hf-pipeline", "bertcnn-torch", "bertcnn-keras", "bertcnn-torch-bf16", "bertcnn-keras-bf16")
DEFAULT_CONTENDERS = CONTENDERS[:3]


def logits_of(cmd: list[str]) -> np.ndarray:
    """The logits a `bertcnn predict` command prints with `--json`, full float precision, one row per text."""
    out = subprocess.run([*cmd, "--json"], check=True, capture_output=True, text=True, cwd=U.ROOT).stdout
    return np.array([json.loads(line)["logits"] for line in out.splitlines()])


def agreement(got: np.ndarray, ref: np.ndarray) -> dict:
    """How far `got` is from the reference logits `ref`: argmax agreement and the largest absolute difference."""
    if got.shape != ref.shape:
        raise RuntimeError(f"logits of shape {got.shape} vs {ref.shape}: not the same texts")
    return {"texts": len(ref), "argmax_agreement": float((got.argmax(-1) == ref.argmax(-1)).mean()),
            "max_abs_logits": float(abs(got - ref).max())}  # fmt: skip


def corpus_flops(text_file: Path, checkpoint: Path, max_length: int) -> tuple[int, dict[str, int]]:
    """(real tokens, forward matmul FLOPs per head) of the corpus under the checkpoint's tokenizer and truncation.

    Heads as `parity.flops` names them: "cnn" (ours), "hf" (the pipeline's Linear on the pooled token).
    """
    from parity import BertCnnConfig, Tokenizer, flops
    from parity.io.checkpoint import CONFIG_NAME

    config = BertCnnConfig.from_json_file(checkpoint / CONFIG_NAME)
    texts = [t for t in text_file.read_text(encoding="utf-8").splitlines() if t.strip()]
    lengths = Tokenizer(checkpoint, max_length=max_length).lengths(texts)
    return sum(lengths), {head: U.text_flops(config, lengths, head) for head in flops.HEADS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=corpus.SIZE, help="sentences in the corpus")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS), help=f"comma-separated subset of {CONTENDERS}")
    args = p.parse_args()
    chosen = args.contenders.split(",")
    if not set(chosen) <= set(CONTENDERS) or "hf-pipeline" not in chosen:
        p.error(f"--contenders: a subset of {','.join(CONTENDERS)} with hf-pipeline. Received: {args.contenders}")
    peaks = U.cpu_peaks()
    print(f"matmul peaks, this CPU now: {U.peaks_line(peaks)}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bertcnn-bench-") as tmp:
        tmp = Path(tmp)
        text_file = corpus.write(tmp / "corpus.txt", args.size)
        ckpt = make_checkpoint(tmp / "ckpt")
        py = sys.executable
        common = ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]

        def ours(framework: str, *extra: str) -> list[str]:
            predict = ["predict", "--checkpoint", str(ckpt), "--framework", framework, "--file", str(text_file)]
            return [py, "-m", "parity", *predict, *common, *extra]

        every = {
            "hf-pipeline": [py, str(U.ROOT / "benchmarks" / "hf_pipeline.py"), str(text_file), *common],
            "bertcnn-torch": ours("torch"),
            "bertcnn-keras": ours("keras"),
            "bertcnn-torch-bf16": ours("torch", "--mixed-precision", "bf16"),
            "bertcnn-keras-bf16": ours("keras", "--mixed-precision", "bf16"),
        }
        commands = {n: every[n] for n in chosen}
        # bf16 vs its float32 run, every text, before timing.
        checks = {n: agreement(logits_of(every[n]), logits_of(every[n.removesuffix("-bf16")]))
                  for n in chosen if n.endswith("-bf16")}  # fmt: skip
        for n, a in checks.items():
            print(f"{n} vs float32: argmax agreement {a['argmax_agreement']:.4f} on {a['texts']} texts, "
                  f"max abs logits {a['max_abs_logits']:.2e}", file=sys.stderr)  # fmt: skip
        tokens, head_flops = corpus_flops(text_file, ckpt, args.max_length)
        work = head_flops["cnn"]

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
        work_of = head_flops["hf" if name == base else "cnn"]
        results[name] = {
            "wall_s": s,
            "cpu_s": c,
            "texts_per_s": args.size / s["median"],
            "speedup_vs_pipeline": ratio,
            "cpu_ratio_vs_pipeline": cpu_ratio,
            "vs_peaks": U.against_peaks(work_of, s["median"], peaks),
            "command": " ".join(commands[name]),
            **({"vs_float32": checks[name],
                "speedup_vs_float32": U.paired_ratios(times, name.removesuffix("-bf16"), name)}
               if name in checks and name.removesuffix("-bf16") in times else {}),
        }  # fmt: skip
        v = results[name]["vs_peaks"]
        rows.append([
            name, U.spread(s), f"{args.size / s['median']:.0f}",
            f"{ratio['median']:.2f}× ({ratio['min']:.2f}–{ratio['max']:.2f})",
            U.spread(c), f"{cpu_ratio['median']:.2f}× ({cpu_ratio['min']:.2f}–{cpu_ratio['max']:.2f})",
            f"{v['achieved_gflop_s']:.0f} ({v['fraction_of_float32_peak']:.0%} / {v['fraction_of_bfloat16_peak']:.0%})",
        ])  # fmt: skip
    header = ["process", "wall, median (min–max)", "texts/s", "wall speed-up vs pipeline (per round)",
              "CPU time (min–max)", "CPU ratio vs pipeline", "GFLOP/s (of fp32 / bf16 peak)"]  # fmt: skip
    print(U.table(header, rows))
    print(f"{tokens} real tokens, {work / 1e9:.0f} GFLOP forward; peaks {U.peaks_line(peaks)}")
    print(f"load average before {load_before}, after {load_after}; {U.environment()['cpus']} CPUs")
    U.write_results(
        "predict_throughput",
        {
            "what": __doc__.splitlines()[0],
            "corpus": f"benchmarks/corpus.py: {args.size} sentences of pydoc_data.topics",
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "repeats": args.repeats,
            "real_tokens": tokens,
            "forward_flops": work,
            "matmul_peaks": peaks,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
