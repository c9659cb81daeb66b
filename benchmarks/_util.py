"""Shared by the benchmark scripts: interleaved repeats, robust summaries, result files.

The machine these run on may be shared, so every comparison is made inside one run,
with the contenders interleaved (order rotated each round), summarised by the median
and the min-max spread, and the load average saved next to the numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
# tests/helpers.py's sizes (odd and distinct, so a wrong transpose cannot pass by symmetry): smoke runs.
TINY = dict(
    vocab_size=99,
    hidden_size=12,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=37,
    max_position_embeddings=23,
    kernel_sizes=(2, 3, 5),
    num_filters=5,
    num_labels=3,
)


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return [float("nan")] * 3


def summary(samples: list[float]) -> dict:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "samples": samples,
    }


def interleaved(
    runners: dict[str, Callable[[], object]], repeats: int, *, log=sys.stderr, cpu: dict | None = None
) -> dict[str, list[float]]:
    """Wall seconds of each runner, `repeats` rounds, the order rotated every round.

    With `cpu` (a dict), also the CPU seconds (user + sys, every thread) spent by this
    process and the child processes each runner waited for: the work done, far less
    sensitive to other users of the machine than the wall time (but it counts OpenMP
    threads spinning at barriers as work).
    """
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            before, own = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
            t = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = time.process_time() - own + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if cpu is not None:
                cpu.setdefault(name, []).append(used)
            took = times[name][-1]
            print(f"  round {r + 1}/{repeats} {name}: {took:.3f} s wall, {used:.3f} s CPU, "
                  f"load {loadavg()[0]}", file=log, flush=True)  # fmt: skip
    return times


def paired_ratios(times: dict[str, list[float]], baseline: str, other: str) -> dict:
    """baseline / other per round: a speed-up measured under the same momentary load."""
    return summary([b / o for b, o in zip(times[baseline], times[other], strict=True)])


def dist_versions(dists: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each of `dists` (distribution names), those not installed left out."""
    from importlib import metadata

    found = {}
    for dist in dists:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        **dist_versions(("numpy", "torch", "transformers", "tensorflow-cpu", "tensorflow", "keras", "tokenizers")),
    }


def write_json(path: Path, data: dict) -> Path:
    """`data` as JSON at `path`, whole or not at all, with the environment it was measured in added."""
    from parity.io.destination import write_file

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**data, "environment": environment()}, indent=2) + "\n"
    return write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), flag="results", force=True)


def write_results(name: str, data: dict) -> Path:
    """benchmarks/results/NAME.json, with the environment it was measured in added."""
    path = write_json(RESULTS / f"{name}.json", data)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def failure(e: BaseException) -> str:
    """An exception as a finding to report: its type and the first line of its message."""
    from parity.io.formats import first_line

    return f"{type(e).__name__}: {first_line(e)}"


def last_json(stdout: str, what: str) -> dict:
    """The JSON object a `--json` command (`what`) printed: the whole stdout, else its last line."""
    for text in (stdout, stdout.strip().splitlines()[-1] if stdout.strip() else ""):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise RuntimeError(f"{what}: expected a JSON object on stdout. Received: {stdout[-300:]!r}")


_T0 = time.perf_counter()


def log(msg: str) -> None:
    """`msg` on stderr, stamped with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, so the printed output pastes into the README as is."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows)])


def spread(s: dict, unit: str = "s", digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def counting_runner(name: str, cmd: list[str], tmp: Path, expected_lines: int) -> Callable[[], None]:
    """Run `cmd` as a whole process, stdout to a file; refuse a run that printed a line per text fewer or more."""
    import subprocess

    def go() -> None:
        out = tmp / f"{name}.out"
        with open(out, "w") as f:
            subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, check=True, cwd=ROOT)
        lines = out.read_text(encoding="utf-8").count("\n")
        if lines != expected_lines:
            raise RuntimeError(f"{name} printed {lines} results for {expected_lines} texts")

    return go


def device_timer(device: str):
    """Start now; the returned function (given the last result) waits for the device and gives the seconds."""
    import torch

    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()

        def stop(_):
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return stop
    t0 = time.perf_counter()
    return lambda _: time.perf_counter() - t0


def matmul_ceiling(device: str = "cpu", n: int = 2048, reps: int = 5, dtype: str = "bfloat16") -> dict:
    """torch's square matmul rate on `device` in `dtype`, measured now: the peak that MFU divides by.

    Random operands (zeros run faster), 3 untimed warm-ups, the median of `reps`; torch's
    default threads, as the benchmarked processes use.
    """
    import torch

    dt = getattr(torch, dtype)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dt, generator=g)
    b = torch.randn(n, n, device=device, dtype=dt, generator=g)
    times = []
    for r in range(3 + reps):
        t = device_timer(device)
        c = a @ b
        if r >= 3:
            times.append(t(c))
    s = summary(times)
    return {"n": n, "dtype": dtype, "seconds": s, "flops_per_s": 2 * n**3 / s["median"],
            "what": f"torch.matmul {dtype} {n}^3 on {device}, median of {reps}"}  # fmt: skip


def cpu_peaks(n: int = 2048, reps: int = 5) -> dict[str, dict]:
    """This CPU's float32 and bfloat16 matmul rates, measured in this run (see `matmul_ceiling`)."""
    return {dtype: matmul_ceiling("cpu", n, reps, dtype) for dtype in ("float32", "bfloat16")}


def text_flops(config, lengths: list[int], head: str = "cnn", *, pooler: bool = True, training: bool = False) -> int:
    """Matmul FLOPs (`parity.flops`) of one forward (or training step) over texts of these real token lengths."""
    from parity import flops

    if training:
        return sum(flops.training_flops(config, t, head, pooler=pooler) for t in lengths)
    return sum(flops.forward_flops(config, t, head, pooler=pooler)["total"] for t in lengths)


def against_peaks(work_flops: int, seconds: float, peaks: dict[str, dict]) -> dict:
    """`work_flops` done in `seconds`: achieved GFLOP/s; per peak, its share and the time the work takes at it."""
    from parity import flops

    out = {"gflops": work_flops / 1e9, "achieved_gflop_s": work_flops / seconds / 1e9}
    for dtype, peak in peaks.items():
        u = flops.mfu(work_flops, 1 / seconds, peak["flops_per_s"])
        out[f"fraction_of_{dtype}_peak"] = u.mfu
        out[f"{dtype}_limit_s"] = work_flops / peak["flops_per_s"]
    return out


def peaks_line(peaks: dict[str, dict]) -> str:
    return ", ".join(f"{d} {p['flops_per_s'] / 1e9:.0f} GFLOP/s" for d, p in peaks.items())


def top_ops(fn: Callable[[], object], n: int = 12) -> dict[str, float]:
    """Each of the `n` costliest torch ops' share of the self CPU time of one call of `fn` (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    ev = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ev)
    return {e.key: round(e.self_cpu_time_total / total, 4) for e in ev[:n]}
