"""Port speed and peak memory at BERT-base size, against the floor of what any port must do.

The floor is a process that imports Keras and reads and writes the same tensors with
safetensors: the fixed cost of starting the framework plus moving the bytes. The
target (issue 5): `bertcnn port ckpt model.keras` within 2x the floor's time, with
peak RSS at most 3x the weights + 1 GiB. Whole processes, interleaved, medians over
repeats with min-max spread.

    python benchmarks/port.py [--repeats 3] [--layers 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parity.config import BertCnnConfig  # noqa: E402
from parity.io import formats as F  # noqa: E402
from parity.layout import rows  # noqa: E402

FLOOR = """
import sys, keras
from safetensors.numpy import load_file, save_file
save_file(load_file(sys.argv[1]), sys.argv[2])
"""


def measure(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one whole child process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024


def summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=12, help="encoder layers (12 = BERT-base)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "port.json"))
    args = ap.parse_args()

    config = BertCnnConfig(num_hidden_layers=args.layers)  # BERT-base + the seed head
    rng = np.random.default_rng(0)
    tensors = [(r.torch_name, rng.standard_normal(r.torch_shape, dtype=np.float32)) for r in rows(config)]
    n_params = sum(a.size for _, a in tensors)
    weight_bytes = sum(a.nbytes for _, a in tensors)
    results: dict[str, dict] = {"floor": {"s": [], "rss": []}, "port_keras": {"s": [], "rss": []}}
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        tmp = Path(tmp)
        (tmp / "ckpt").mkdir()
        (tmp / "ckpt" / "config.json").write_text(config.to_json())
        F.write_safetensors(tmp / "ckpt" / "model.safetensors", tensors, {"format": "pt"})
        del tensors
        src = tmp / "ckpt" / "model.safetensors"
        for i in range(args.repeats):  # interleaved, so drift hits both alike
            for name, cmd in (
                ("floor", [sys.executable, "-c", FLOOR, str(src), str(tmp / f"floor{i}.safetensors")]),
                ("port_keras", [sys.executable, "-m", "parity", "port", str(tmp / "ckpt"), str(tmp / f"m{i}.keras")]),
            ):
                s, rss = measure(cmd)
                results[name]["s"].append(s)
                results[name]["rss"].append(rss)
                print(f"  run {i + 1}/{args.repeats} {name:<10} {s:6.2f} s  {rss / 2**30:5.2f} GiB", file=sys.stderr)
            for p in tmp.glob(f"*{i}*"):
                p.unlink()

    floor_s = statistics.median(results["floor"]["s"])
    port_s = statistics.median(results["port_keras"]["s"])
    port_rss = statistics.median(results["port_keras"]["rss"])
    budget = 3 * weight_bytes + 2**30
    report = {
        "what": "bertcnn port canonical checkpoint -> .keras vs floor (import keras; safetensors read+write)",
        "command": "python benchmarks/port.py " + " ".join(sys.argv[1:]),
        "parameters": int(n_params),
        "weight_bytes": int(weight_bytes),
        "repeats": args.repeats,
        "seconds": {k: summary(v["s"]) for k, v in results.items()},
        "peak_rss_bytes": {k: summary(v["rss"]) for k, v in results.items()},
        "time_ratio": port_s / floor_s,
        "time_target_ratio": 2.0,
        "rss_budget_bytes": budget,
        "meets_time": port_s <= 2 * floor_s,
        "meets_memory": port_rss <= budget,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")

    print(f"BERT-base-size port, {n_params / 1e6:.1f}M parameters ({weight_bytes / 2**20:.0f} MiB float32), "
          f"median of {args.repeats} [min-max]")  # fmt: skip
    print(f"{'':<12}{'time (s)':>22}{'peak RSS (GiB)':>24}")
    for name in results:
        t, r = report["seconds"][name], report["peak_rss_bytes"][name]
        print(
            f"{name:<12}{t['median']:>8.2f} [{t['min']:.2f}-{t['max']:.2f}]"
            f"{r['median'] / 2**30:>12.2f} [{r['min'] / 2**30:.2f}-{r['max'] / 2**30:.2f}]"
        )
    print(f"time ratio {report['time_ratio']:.2f} (target <= 2.0): {'ok' if report['meets_time'] else 'MISSED'}; "
          f"peak {port_rss / 2**30:.2f} GiB vs budget {budget / 2**30:.2f} GiB: "
          f"{'ok' if report['meets_memory'] else 'MISSED'}")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
