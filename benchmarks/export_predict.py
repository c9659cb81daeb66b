"""Predict from the ONNX export, whole processes, vs the HF pipeline (and the PyTorch build).

`bertcnn predict --checkpoint ONNX_DIR` runs the export in onnxruntime: no torch, no
transformers, no TensorFlow in the process (checked, and recorded). Same protocol as
`predict_throughput.py`: one fresh process per contender per round, interleaved, the
1500-sentence corpus (`benchmarks/corpus.py`), batch size 32, truncation at 128
tokens. Before timing, the export's logits are compared with the PyTorch build's on
every text (`--json` output, full float precision); the bound is the artifact entry
of the tolerance table. The int8 exports (`export --quantize int8` and `int8-ffn-out-fp32`) are held
to their own tier instead, and its argmax agreement with the float32 export on every text is
recorded (`benchmarks/precision_accuracy.py` measures it on a fine-tuned model, with
held-out accuracy). Throughput is also quoted as achieved GFLOP/s against float32 and
bfloat16 matmul peaks measured at the start of the run.

    python benchmarks/export_predict.py [--repeats 5] [--size 1500] [--no-int8] [--no-torch]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U
import corpus
from predict_throughput import agreement, corpus_flops, logits_of, make_checkpoint

from parity.serving.quantize import MODES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FRAMEWORKS = ("torch", "transformers", "tensorflow", "keras", "jax")


def frameworks_loaded(predict_args: list[str]) -> list[str]:
    """What a predict process on the export imports, from inside that process."""
    code = (
        "import sys, contextlib, io\n"
        "from parity.commands import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main({predict_args!r})\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=U.ROOT)
    return json.loads(out.stdout.strip().replace("'", '"'))


def main() -> int:
    from parity.tolerance import tolerance_for

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=corpus.SIZE, help="sentences in the corpus")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--no-torch", action="store_true", help="leave the PyTorch build out of the timed contenders")
    p.add_argument("--no-int8", action="store_true", help="leave the int8 export out")
    p.add_argument("--out", default="export_predict", help="results file name under benchmarks/results/")
    args = p.parse_args()
    peaks = U.cpu_peaks()
    print(f"matmul peaks, this CPU now: {U.peaks_line(peaks)}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bertcnn-bench-") as tmp:
        tmp = Path(tmp)
        text_file = corpus.write(tmp / "corpus.txt", args.size)
        ckpt = make_checkpoint(tmp / "ckpt")
        onnx_dir = tmp / "onnx"
        int8_dirs = {} if args.no_int8 else {m: tmp / f"onnx-{m}" for m in MODES}
        py = sys.executable
        for out, extra in ((onnx_dir, []), *((d, ["--quantize", m]) for m, d in int8_dirs.items())):
            export = ["export", "--checkpoint", str(ckpt), "--format", "onnx", *extra, str(out)]
            subprocess.run([py, "-m", "parity", *export], check=True, cwd=U.ROOT, stdout=subprocess.DEVNULL)
        common = ["--file", str(text_file), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
        onnx_args = ["predict", "--checkpoint", str(onnx_dir), *common]
        int8_args = {m: ["predict", "--checkpoint", str(d), *common] for m, d in int8_dirs.items()}
        torch_args = ["predict", "--checkpoint", str(ckpt), "--framework", "torch", *common]

        # Parity first: the export's logits vs the PyTorch build's, every text.
        got, ref = logits_of([py, "-m", "parity", *onnx_args]), logits_of([py, "-m", "parity", *torch_args])
        bound = tolerance_for("float32", "cpu", "artifact").atol
        worst = float(abs(got - ref).max())
        loaded = frameworks_loaded(onnx_args)
        print(f"logits, ONNX export vs PyTorch build, {len(got)} texts: max abs {worst:.2e} (bound {bound:.0e}); "
              f"ONNX predict process loaded {loaded or 'no framework'}", file=sys.stderr)  # fmt: skip
        if len(got) != args.size or worst > bound or {"torch", "transformers"} & set(loaded):
            raise SystemExit(f"ONNX predict failed its checks: {len(got)} texts, max abs {worst:.2e}, loaded {loaded}")
        int8 = {}
        for m, a in int8_args.items():
            q = int8[m] = agreement(logits_of([py, "-m", "parity", *a]), got)
            q["bound"] = tolerance_for("int8", "cpu", "artifact").atol
            print(f"{m} export vs float32 export: argmax agreement {q['argmax_agreement']:.4f} on "
                  f"{q['texts']} texts, max abs logits {q['max_abs_logits']:.2e}", file=sys.stderr)  # fmt: skip
        tokens, head_flops = corpus_flops(text_file, ckpt, args.max_length)
        work = head_flops["cnn"]

        commands = {
            "hf-pipeline": [py, str(U.ROOT / "benchmarks" / "hf_pipeline.py"), str(text_file),
                            "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)],
            "bertcnn-onnx": [py, "-m", "parity", *onnx_args],
            **{f"bertcnn-onnx-{m}": [py, "-m", "parity", *a] for m, a in int8_args.items()},
        }  # fmt: skip
        if not args.no_torch:
            commands["bertcnn-torch"] = [py, "-m", "parity", *torch_args]

        load_before = U.loadavg()
        cpu: dict[str, list[float]] = {}
        times = U.interleaved(
            {n: U.counting_runner(n, c, tmp, args.size) for n, c in commands.items()}, args.repeats, cpu=cpu
        )
        load_after = U.loadavg()

    base, rows, results = "hf-pipeline", [], {}
    for name, samples in times.items():
        s, c = U.summary(samples), U.summary(cpu[name])
        ratio = U.paired_ratios(times, base, name)
        work_of = head_flops["hf" if name == base else "cnn"]
        v = U.against_peaks(work_of, s["median"], peaks)
        results[name] = {"wall_s": s, "cpu_s": c, "texts_per_s": args.size / s["median"],
                         "speedup_vs_pipeline": ratio, "vs_peaks": v, "command": " ".join(commands[name])}  # fmt: skip
        rows.append([name, U.spread(s), f"{args.size / s['median']:.0f}",
                     f"{ratio['median']:.2f}× ({ratio['min']:.2f}–{ratio['max']:.2f})", U.spread(c),
                     f"{v['achieved_gflop_s']:.0f} ({v['fraction_of_float32_peak']:.0%} / "
                     f"{v['fraction_of_bfloat16_peak']:.0%})"])  # fmt: skip
    header = ["process", "wall, median (min–max)", "texts/s", "speed-up vs pipeline (per round)", "CPU time",
              "GFLOP/s (of fp32 / bf16 peak)"]  # fmt: skip
    print(U.table(header, rows))
    print(f"{tokens} real tokens, {work / 1e9:.0f} GFLOP forward: {work / peaks['float32']['flops_per_s']:.1f} s at "
          f"the float32 peak; peaks {U.peaks_line(peaks)}")  # fmt: skip
    print(f"load average before {load_before}, after {load_after}")
    U.write_results(
        args.out,
        {
            "what": __doc__.splitlines()[0],
            "corpus": f"benchmarks/corpus.py: {args.size} sentences of pydoc_data.topics",
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "repeats": args.repeats,
            "parity": {"texts": len(got), "max_abs_logits": worst, "bound": bound},
            "int8_vs_float32_export": int8,
            "real_tokens": tokens,
            "forward_flops": work,
            "matmul_peaks": peaks,
            "onnx_process_loaded": loaded,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
