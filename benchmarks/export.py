"""Export time and artifact size per format, at MiniLM and BERT-base size.

Each export is one fresh `bertcnn export` process (imports, checkpoint load, export,
writing the directory), as a user runs it; the formats are interleaved, the order
rotated each round. Sizes: MiniLM = the embedded all-MiniLM-L6-v2 + seed-0 head;
BERT-base = random weights of BERT-base size (with the MiniLM tokenizer files);
tiny = a 2-layer toy model, to smoke-test this script in seconds.

    python benchmarks/export.py [--repeats 3] [--sizes minilm,base] [--formats onnx,onnx-keras,saved_model,litert]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# name -> `bertcnn export` arguments
FORMATS = {
    "onnx": ["--format", "onnx", "--framework", "torch"],
    "onnx-keras": ["--format", "onnx", "--framework", "keras"],
    "saved_model": ["--format", "saved_model"],
    "litert": ["--format", "litert"],
}


def make_checkpoint(size: str, directory: Path) -> Path:
    import numpy as np

    from parity.config import BertCnnConfig
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir, init_head
    from parity.io.checkpoint import save_checkpoint
    from parity.layout import expected_shapes

    backbone = embedded_backbone_dir()
    if size == "minilm":
        config, tensors, _ = backbone_checkpoint(backbone, seed=0)
    else:
        config = BertCnnConfig() if size == "base" else BertCnnConfig(
            hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96
        )  # fmt: skip
        rng = np.random.default_rng(0)
        tensors = {
            k: (rng.standard_normal(shape) * 0.02).astype(np.float32)
            for k, shape in expected_shapes(config).items()
            if k.startswith("bert.")
        }
        tensors |= init_head(config, 0)
    return save_checkpoint(directory, config, tensors, tokenizer_from=backbone)


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="minilm,base", help="comma-separated: tiny, minilm, base")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--out", default="export", help="results file name under benchmarks/results/")
    args = p.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        p.error(f"unknown formats {unknown}; choose from {list(FORMATS)}")

    results, rows = {}, []
    load_before = U.loadavg()
    with tempfile.TemporaryDirectory(prefix="bertcnn-bench-export-") as tmp:
        tmp = Path(tmp)
        for size in args.sizes.split(","):
            ckpt = make_checkpoint(size, tmp / f"ck-{size}")
            weights = (ckpt / "model.safetensors").stat().st_size
            artifact: dict[str, int] = {}

            def runner(fmt: str, size=size, ckpt=ckpt, artifact=artifact):
                def go() -> None:
                    out = tmp / f"{size}-{fmt}"
                    shutil.rmtree(out, ignore_errors=True)
                    cmd = [sys.executable, "-m", "parity", "export", "--checkpoint", str(ckpt), *FORMATS[fmt], str(out)]
                    subprocess.run(cmd, check=True, cwd=U.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    from parity.serving import read_manifest

                    artifact[fmt] = size_of(out / read_manifest(out).model_file)

                return go

            print(f"{size}: checkpoint weights {weights / 2**20:.1f} MiB", file=sys.stderr)
            times = U.interleaved({f: runner(f) for f in formats}, args.repeats)
            for fmt, samples in times.items():
                s = U.summary(samples)
                results[f"{size}/{fmt}"] = {"wall_s": s, "artifact_bytes": artifact[fmt], "weights_bytes": weights}
                rows.append([
                    size, fmt, U.spread(s), f"{artifact[fmt] / 2**20:.1f} MiB",
                    f"{artifact[fmt] / weights:.3f}×",
                ])  # fmt: skip
    header = ["size", "format", "export wall, median (min–max)", "artifact", "vs model.safetensors"]
    print(U.table(header, rows))
    U.write_results(
        args.out,
        {
            "what": __doc__.splitlines()[0],
            "repeats": args.repeats,
            "loadavg_before": load_before,
            "loadavg_after": U.loadavg(),
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
