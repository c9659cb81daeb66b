"""Strings in: speed, size and parity of `--text` exports against the ids path with Python's tokenizer.

On the embedded MiniLM + seed-0 head (`bertcnn init`), four exports: onnx and saved_model, each
with and without `--text`. Measured:
- size of each export's model file/folder;
- the artifact check (`bertcnn report --artifact`) of each `--text` export: the worst
  `tokens/...` (texts whose ids differ) and `text-logits/...` (max abs vs the PyTorch build);
- whole processes: `bertcnn predict --checkpoint EXPORT --file corpus.txt` (1500 sentences of
  benchmarks/corpus.py, batch 32), the ids export (tokenised in Python by `tokenizers`) vs the
  `--text` export (strings sent, tokenised in its graph), interleaved rounds;
- per batch, in one process: Python tokenizer + the ids runner vs the `--text` runner on strings.

    python benchmarks/text_serving.py [--repeats 2] [--size 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _util as U
import corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
EXPORTS = {
    "onnx": ["--format", "onnx"],
    "onnx --text": ["--format", "onnx", "--text"],
    "saved_model": ["--format", "saved_model"],
    "saved_model --text": ["--format", "saved_model", "--text"],
}


def bertcnn(*argv: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(U.ROOT))
    return subprocess.run([sys.executable, "-m", "parity", *argv], check=True, capture_output=True, text=True,
                          env=env, cwd=U.ROOT, **kw)  # fmt: skip


def size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def per_batch(exports: dict[str, Path], texts: list[str], ck: Path, batch: int) -> dict:
    """Seconds per batch in one process: Tokenizer + ids runner vs the --text runner fed strings."""
    from parity.serving.runners import open_export
    from parity.tokenize import Tokenizer

    tok = Tokenizer(ck, max_length=128)
    out = {}
    for fmt in ("onnx", "saved_model"):
        ids_runner, _, _ = open_export(exports[fmt])
        text_runner, _, _ = open_export(exports[f"{fmt} --text"])
        batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        for name, fn in ((f"{fmt}: tokenizers + ids", lambda b, r=ids_runner: r(tok(b))),
                         (f"{fmt} --text: strings", lambda b, r=text_runner: r.text(b))):  # fmt: skip
            fn(batches[0])  # warm-up
            times = []
            for b in batches:
                t0 = time.perf_counter()
                fn(b)
                times.append(time.perf_counter() - t0)
            out[name] = {"median_ms": round(1000 * statistics.median(times), 2), "total_s": round(sum(times), 2)}
            U.log(f"per batch {name}: {out[name]}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--size", type=int, default=corpus.SIZE)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    texts = corpus.sentences(args.size)
    results: dict = {"environment": U.environment(), "load_before": U.loadavg()}
    with tempfile.TemporaryDirectory(prefix="bertcnn-text-") as tmp:
        root = Path(tmp)
        ck = root / "ck"
        bertcnn("init", str(ck))
        (root / "corpus.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        exports, sizes, parity = {}, {}, {}
        for name, flags in EXPORTS.items():
            exports[name] = root / name.replace(" --", "-")
            t0 = time.perf_counter()
            bertcnn("export", "--checkpoint", str(ck), *flags, str(exports[name]))
            model = exports[name] / ("model.onnx" if "onnx" in name else "saved_model")
            sizes[name] = {"MiB": size_mib(model), "export_s": round(time.perf_counter() - t0, 1)}
            U.log(f"{name}: {sizes[name]}")
            if "--text" in name:
                report = root / f"{name.replace(' --', '-')}.json"
                bertcnn("report", "--checkpoint", str(ck), "--artifact", str(exports[name]), "--json-out", str(report))
                taps = json.loads(report.read_text())["results"][0]["taps"]
                parity[name] = {
                    "texts_with_other_ids": max(t["max_abs"] for t in taps if t["name"].startswith("tokens/")),
                    "text_logits_max_abs": max(t["max_abs"] for t in taps if t["name"].startswith("text-logits/")),
                }
                U.log(f"{name}: {parity[name]}")
        wall: dict[str, list[float]] = {name: [] for name in EXPORTS}
        for r in range(args.repeats):
            for name in list(EXPORTS)[r % 4 :] + list(EXPORTS)[: r % 4]:
                t0 = time.perf_counter()
                bertcnn("predict", "--checkpoint", str(exports[name]), "--file", str(root / "corpus.txt"),
                        "--batch-size", str(args.batch_size))  # fmt: skip
                wall[name].append(time.perf_counter() - t0)
                U.log(f"round {r}: {name} {wall[name][-1]:.2f} s")
        results |= {"sizes": sizes, "parity": parity, "texts": len(texts),
                    "whole_process_s": {k: U.summary(v) for k, v in wall.items()},
                    "per_batch": per_batch(exports, texts, ck, args.batch_size), "load_after": U.loadavg()}  # fmt: skip
    path = U.write_results("text_serving", results)
    print(json.dumps({k: results[k] for k in ("sizes", "parity", "whole_process_s", "per_batch")}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
