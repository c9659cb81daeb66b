"""Where the time goes: per update in both trainers and in `predict`, timed from outside (issue 17).

Data and model as `train_compare.py`: the 2,400 training tweets of `labelled_corpus.py`, the embedded
all-MiniLM-L6-v2 + seed-0 head (`bertcnn init` in-process), the default recipe (batch 32, padded to
the batch's longest row, lr 5e-5, clipping, dropout). One process per part; the library runs as is,
its methods wrapped with timers, stopped after `--updates` updates by `Run.stop`. Medians of the
steady updates; the first ones (allocation, AdamW moments, traces) apart. Parts: torch (forward,
input checks, loss, backward, clip, AdamW, rest; top ops; AdamW foreach/fused); padding (one epoch's
plan, default vs `--group-by-length`, also rounded to 16; torch updates of both interleaved); keras /
jax (`fit`: train_function vs callback vs data, traces; TensorFlow also one batch through fixed-shape
graphs, fit's own train_function, XLA); predict (`bertcnn predict` in-process, corpus.py's sentences).

    python benchmarks/profile_train.py [--parts torch,padding,keras,jax,predict] [--updates 10]

Writes benchmarks/results/profile.json (the parts not run keep their earlier results); notes: results/profile.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _util as U
import corpus
import labelled_corpus

PARTS = ("torch", "padding", "keras", "jax", "predict")
OTHER = "other (Python, loop, host syncs)"
med = statistics.median


class Clock:
    """Seconds per name, summed over the calls of wrapped callables; `mark()` ends one update."""

    def __init__(self):
        self.t: dict[str, float] = defaultdict(float)
        self.marks: list[tuple[float, dict]] = []

    def timed(self, fn, name: str, *, mark: bool = False):
        def call(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] += time.perf_counter() - t
                if mark:
                    self.mark()

        return call

    def wrap(self, owner, attr: str, name: str, *, mark: bool = False):
        setattr(owner, attr, self.timed(getattr(owner, attr), name, mark=mark))

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), dict(self.t)))

    def updates(self) -> list[dict]:
        """Per update (between marks): its wall and each name's seconds."""
        return [{"wall": t1 - t0, **{k: b[k] - a.get(k, 0.0) for k in b}}
                for (t0, a), (t1, b) in itertools.pairwise(self.marks)]  # fmt: skip


def steady(updates: list[dict], parts: dict[str, list[str]]) -> dict:
    """Median seconds per update of each part (the sum of its names), the unaccounted rest, shares."""
    wall = med(u["wall"] for u in updates)
    sec = {p: med(sum(u.get(n, 0.0) for n in names) for u in updates) for p, names in parts.items()}
    sec[OTHER] = max(wall - sum(sec.values()), 0.0)
    return {"updates": len(updates), "wall_per_update_s": U.summary([u["wall"] for u in updates]), "seconds": sec,
            "share": {p: round(s / wall, 4) for p, s in sec.items()}}  # fmt: skip


def data():
    """(config, tensors, encoded training rows, label ids), tokenised as `bertcnn train` does."""
    from parity import Tokenizer
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir

    train, _ = labelled_corpus.split(labelled_corpus.load()[0])
    names = labelled_corpus.LABELS
    config, tensors, _ = backbone_checkpoint(embedded_backbone_dir(), seed=0, num_labels=3, label_names=names)
    tok = Tokenizer(embedded_backbone_dir(), max_length=128, pad_token_id=config.pad_token_id)
    return config, tensors, tok.encode_counted([t for t, _ in train])[0], np.array([names.index(c) for _, c in train])


def make_run(d, updates: int, framework: str, *, group: bool = False):
    from parity.training import TrainingRecipe
    from parity.training.loop import Run
    from parity.training.state import initial_snapshot

    config, tensors, encoded, y = d
    recipe = TrainingRecipe(epochs=1, batch_size=32, lr=5e-5, seed=0, group_by_length=group)
    start = initial_snapshot(config, tensors, recipe, framework=framework, data_sha256="0" * 64, num_rows=len(y))
    asked = itertools.count(1)  # Run asks once before the first update, then after each
    return Run(start, encoded, y, stop=lambda: next(asked) > updates)


def widths(run, bucket: int | None = None) -> list[int]:
    w = [max(len(run.encoded[i][0]) for i in b) for b in run.plan[0]]
    return [-(-x // bucket) * bucket for x in w] if bucket else w


def plan_stats(run, bucket: int | None = None) -> dict:
    real = sum(len(ids) for ids, _ in run.encoded)
    padded = sum(len(b) * w for b, w in zip(run.plan[0], widths(run, bucket), strict=True))
    return {"padding_fraction": round(1 - real / padded, 4), "padded_tokens": padded, "real_tokens": real,
            "distinct_widths": len(set(widths(run, bucket))), "batches": len(run.plan[0])}  # fmt: skip


# -- the parts, each in its own process ------------------------------------------------------------
def part_torch(a) -> dict:
    import torch
    import torch.nn.functional as F

    import bertcnn_torch.model as M
    from bertcnn_torch.train import TorchTrainer

    run = make_run(data(), a.updates, "torch")
    tr, c = TorchTrainer(run), Clock()
    for owner, attr, name in [(M, "check_inputs", "check"), (M, "_np", "to_numpy"), (tr.model, "forward", "forward"),
                              (F, "cross_entropy", "loss"), (torch.Tensor, "backward", "backward"),
                              (torch.nn.utils, "clip_grad_norm_", "clip"), (tr.optimizer, "step", "adamw"),
                              (tr.optimizer, "zero_grad", "zero_grad"), (tr.scheduler, "step", "scheduler"),
                              (run, "batch", "batch"), (run, "log_update", "log")]:  # fmt: skip
        c.wrap(owner, attr, name)
    c.wrap(run, "begin", "begin", mark=True)
    c.wrap(run, "after_update", "after_update", mark=True)
    tr.fit()
    ups = c.updates()
    for u in ups:  # both run inside forward (to_numpy as check_inputs' arguments)
        u["forward"] -= u.get("check", 0.0) + u.get("to_numpy", 0.0)
    parts = {"forward (encoder + CNN head)": ["forward"], "input checks in forward (to numpy + check_inputs)":
             ["check", "to_numpy"], "loss": ["loss"], "backward": ["backward"], "clip_grad_norm_": ["clip"],
             "AdamW step": ["adamw"], "zero_grad + LambdaLR step": ["zero_grad", "scheduler"],
             "batch padding (numpy)": ["batch"], "log + after_update": ["log", "after_update"]}  # fmt: skip
    out = {"threads": torch.get_num_threads(), "first_updates_s": [u["wall"] for u in ups[:2]],
           "first_updates_adamw_s": [u["adamw"] for u in ups[:2]], "steady": steady(ups[2:], parts),
           "mean_width": float(np.mean(widths(run)[2 : len(ups)]))}  # fmt: skip
    # 3 more updates, op by op
    out["top_ops_self_cpu_share"] = U.top_ops(lambda: [tr.update(run.micro(0, step), step) for step in range(3)], 14)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in tr.groups]
    kinds = {"as shipped (foreach/fused None)": {}, "foreach=True": {"foreach": True}, "fused=True": {"fused": True}}
    opts = {k: torch.optim.AdamW(groups, lr=1e-9, **kw) for k, kw in kinds.items()}
    for o in opts.values():  # their moments exist (and were touched) before the timing, as in a run
        o.step(), o.step()
    times = U.interleaved({k: o.step for k, o in opts.items()}, 5, log=io.StringIO())
    out["adamw_step_s"] = {k: U.summary(v) for k, v in times.items()}
    out["trained_params"] = sum(p.numel() for g in tr.groups for p in g["params"])
    out["word_embedding_params"] = tr.model.bert.embeddings.word_embeddings.weight.numel()
    return out


def part_padding(a) -> dict:
    from bertcnn_torch.train import TorchTrainer

    d = data()
    runs = {"default": make_run(d, 0, "torch"), "group_by_length": make_run(d, 0, "torch", group=True)}
    out = {k: {"epoch_plan": plan_stats(r), "epoch_plan_widths_rounded_to_16": plan_stats(r, 16)}
           for k, r in runs.items()}  # fmt: skip
    tr = TorchTrainer(runs["default"])
    tr.model.train()
    for step in range(2):  # warm-up: AdamW's first two steps create and first touch the moments
        tr.update(runs["default"].micro(0, 74 - step), step)
    times: dict[str, list[float]] = {n: [] for n in runs}
    tokens: dict[str, list[int]] = {n: [] for n in runs}
    for i in range(a.updates + 2):  # the first batches of each plan, interleaved, order alternating
        for name in list(runs)[i % 2 :] + list(runs)[: i % 2]:
            inputs, labels = runs[name].batch(0, i)
            t = time.perf_counter()
            tr.update([(inputs, labels, 1.0)], i)
            times[name].append(time.perf_counter() - t)
            tokens[name].append(int(inputs["input_ids"].size))
    # s = a + b x padded tokens, fitted on every timed update, predicts each whole epoch plan.
    slope, icpt = np.polyfit([*tokens["default"], *tokens["group_by_length"]],
                             [*times["default"], *times["group_by_length"]], 1)  # fmt: skip
    for name, r in runs.items():
        out[name].update(sampled_updates=len(times[name]), sampled_padded_tokens=sum(tokens[name]),
                         sampled_s_per_update=U.summary(times[name]),
                         predicted_epoch_s=float(sum(icpt + slope * len(b) * w
                                                     for b, w in zip(r.plan[0], widths(r), strict=True))))  # fmt: skip
    d, g = out["default"], out["group_by_length"]
    out["ratio_default_over_grouped"] = {
        "sampled_s_per_update": d["sampled_s_per_update"]["median"] / g["sampled_s_per_update"]["median"],
        **{k: d[k] / g[k] for k in ("sampled_padded_tokens", "predicted_epoch_s")},
    }
    out["linear_fit"] = {"intercept_s": float(icpt), "s_per_1k_padded_tokens": float(slope * 1000)}
    return out


def part_keras(a) -> dict:
    import keras

    import bertcnn_tf.train as KT

    backend = keras.backend.backend()
    run = make_run(data(), a.updates if backend == "tensorflow" else 4, "keras")
    if backend == "jax":  # batches 0, 1, 0, 1: two new widths (compiles), then two seen ones
        run.plan[0][2:4] = run.plan[0][0:2]
    tr, c = KT.KerasTrainer(run), Clock()
    traces, calls, model = [], [], tr.model
    step_fn, make = model.train_step, model.make_train_function

    def traced(*args):  # runs only while the step is being traced
        traces.append(str(tuple(args[-1][0]["input_ids"].shape)))
        return step_fn(*args)

    def make_timed(force=False):
        make(force)
        fn = model.train_function
        if getattr(fn, "timed", False):
            return

        def call(*args):
            n, t = len(traces), time.perf_counter()
            out = fn(*args)
            if backend == "jax":  # dispatch is asynchronous: wait here, not in the callback's float()
                import jax

                jax.block_until_ready(out)
            calls.append({"s": time.perf_counter() - t, "traced": len(traces) > n})
            return out

        call.timed = True
        model.train_function = call

    model.train_step, model.make_train_function = traced, make_timed
    for owner, attr, name in [(KT.PlanCallback, "on_train_batch_begin", "cb_begin"), (tr, "sync", "sync"),
                              (run, "log_update", "log"), (run, "after_update", "after_update"),
                              (KT.PlanDataset, "__getitem__", "batch")]:  # fmt: skip
        c.wrap(owner, attr, name)
    c.wrap(KT.PlanCallback, "on_train_batch_end", "cb_end", mark=True)
    c.mark()
    t = time.perf_counter()
    tr.fit()
    out: dict = {"backend": backend, "fit_s": time.perf_counter() - t, "traces": [*traces], "calls": [*calls]}
    ups = c.updates()  # the first includes fit's set-up
    for u, call in zip(ups, calls, strict=True):
        u["train_function"] = call["s"]
        u["read"] = u["cb_end"] - u.get("sync", 0) - u.get("log", 0) - u.get("after_update", 0)
    seen = [u for u, call in zip(ups, calls, strict=True) if not call["traced"]][1 if backend == "tensorflow" else 0 :]
    parts = {"train_function (forward + backward + AdamW)": ["train_function"],
             "callback: reading loss + grad norm": ["read"], "callback: JAX state sync": ["sync"],
             "callback: log + after_update + batch_begin": ["log", "after_update", "cb_begin"]}  # fmt: skip
    out["steady"] = steady(seen, parts)
    out["batch_s_inside_train_function"] = med(u.get("batch", 0.0) for u in seen)
    out["traced_call_cost_s"] = [k["s"] - out["steady"]["seconds"][next(iter(parts))] for k in calls if k["traced"]]
    out["distinct_widths_in_run"] = len(set(widths(run)[: len(calls)]))
    if backend == "tensorflow":
        out["one_batch"] = tf_one_batch(model, run, step_fn)
    return out


def tf_one_batch(model, run, step_fn) -> dict:
    """One batch of median width, interleaved: fixed-shape graphs, fit's own train_function, XLA.

    (Not torch's update too: in a process with TensorFlow, whose idle threads spin, it ran 10x slower.)
    """
    import keras
    import tensorflow as tf

    from bertcnn_tf.train import PlanDataset, _fit_input

    i = int(np.argsort(widths(run))[len(run.plan[0]) // 2])
    run.plan[0] = [run.plan[0][i]] * len(run.plan[0])  # fit's own input pipeline, serving this batch each time
    iterator = iter(_fit_input(PlanDataset(run, 0)).repeat())
    xy = next(iter(_fit_input(PlanDataset(run, 0))))

    def grads(d):
        with tf.GradientTape() as tape:
            ce = keras.losses.sparse_categorical_crossentropy(d[1], model(d[0], training=True), from_logits=True)
            loss = tf.reduce_mean(ce)
        return tape.gradient(loss, model.trainable_variables)

    fns = {"forward": tf.function(lambda d: model(d[0], training=True)),
           "forward, no dropout": tf.function(lambda d: model(d[0], training=False)),
           "forward + gradients": tf.function(grads), "train_step (+ TorchAdamW)": tf.function(step_fn),
           "train_step, XLA": tf.function(step_fn, jit_compile=True)}  # fmt: skip
    go = {n: (lambda f=f: f(xy)) for n, f in fns.items()}
    go["fit's train_function (tf.data iterator, (None, None) graph)"] = lambda: model.train_function(iterator)
    first = {}
    for name, f in go.items():  # traces and compiles
        t = time.perf_counter()
        f()
        first[name] = time.perf_counter() - t
    times = U.interleaved(go, 4, log=io.StringIO())
    return {"input_ids_shape": list(xy[0]["input_ids"].shape), "first_call_s": first,
            "s": {n: U.summary(v) for n, v in times.items()}}  # fmt: skip


def part_predict(a) -> dict:
    import parity.commands.builds as B
    import parity.commands.loading as L
    import parity.commands.predict as P
    from parity import Tokenizer
    from parity.commands import main
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir
    from parity.io.checkpoint import save_checkpoint

    c, out, first_call = Clock(), {}, L.quiet_first_call
    L.quiet_first_call = lambda f: first_call(c.timed(f, "model", mark=True))
    for owner, attr, name in [(B, "forward", "build"), (L, "read_weights", "read checkpoint"),
                              (L, "load_tokenizer", "load tokenizer"), (Tokenizer, "encode_counted", "tokenize"),
                              (Tokenizer, "pad", "pad"), (P, "output_line", "output")]:  # fmt: skip
        c.wrap(owner, attr, name)
    with tempfile.TemporaryDirectory(prefix="bertcnn-profile-") as tmp:
        texts, ck = corpus.write(Path(tmp) / "corpus.txt", a.sentences), Path(tmp) / "ck"
        config, tensors, _ = backbone_checkpoint(embedded_backbone_dir(), seed=0)  # = `bertcnn init ck`
        save_checkpoint(ck, config, tensors, tokenizer_from=embedded_backbone_dir())
        for fw in ("torch", "keras"):
            c.t.clear(), c.marks.clear()
            t = time.perf_counter()
            rt = B.runtime(fw)
            c.t["import"] = time.perf_counter() - t
            if fw == "torch":
                import bertcnn_torch.model as rt  # the torch build checks inputs in its forward
            c.wrap(rt, "check_inputs", "check_inputs")
            cmd = ["predict", "--checkpoint", str(ck), "--framework", fw, "--file", str(texts), "--no-progress",
                   "--batch-size", "32", "--max-length", "128"]  # fmt: skip
            t = time.perf_counter()
            with open(Path(tmp) / "out.txt", "w") as sink, contextlib.redirect_stdout(sink):
                if main(cmd) != 0:
                    raise RuntimeError(f"bertcnn {' '.join(cmd)} failed")
            total, sec = time.perf_counter() - t, dict(c.t)
            sec["model"] -= sec["check_inputs"]  # checked inside the forward
            sec["other (read, sort, batches, write)"] = total - sum(v for k, v in sec.items() if k != "import")
            setup = ("import", "build", "read checkpoint", "load tokenizer")
            work = {k: v / (total - sum(sec[s] for s in setup[1:])) for k, v in sec.items() if k not in setup}
            out[fw] = {"texts": a.sentences, "command_s": total, "seconds": sec, "share_after_set_up": work,
                       "model_first_call_s": c.marks[0][1]["model"], "batches": len(c.marks)}  # fmt: skip
    return out


# -- the parent: one process per part ----------------------------------------------------------------
def child(part: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "KERAS_BACKEND": "jax" if part == "jax" else "tensorflow",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(U.ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    cmd = [sys.executable, __file__, "--child", part, "--updates", str(args.updates), "--sentences"]
    cmd.append(str(args.sentences))
    t, load = time.perf_counter(), U.loadavg()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=U.ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{part} failed (exit {p.returncode}):\n" + "\n".join(p.stderr.splitlines()[-20:]))
    U.log(f"{part}: {time.perf_counter() - t:.0f} s")
    found = json.loads(p.stdout.strip().splitlines()[-1])
    return {**found, "command": " ".join(["python", "benchmarks/profile_train.py", *cmd[2:]]),
            "part_wall_s": time.perf_counter() - t, "loadavg": [load, U.loadavg()],
            "measured": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--updates", type=int, default=10, help="updates per trainer profile (default: 10)")
    p.add_argument("--sentences", type=int, default=600, help="predict: sentences of benchmarks/corpus.py")
    p.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/profile.json alone")
    args = p.parse_args(argv)
    if args.child:
        warnings.filterwarnings("ignore")  # torch: "optimizer.step() has been overridden" (by our timer)
        print(json.dumps(globals()["part_keras" if args.child == "jax" else f"part_{args.child}"](args)))
        return 0
    parts = [x for x in args.parts.split(",") if x]
    if unknown := sorted(set(parts) - set(PARTS)):
        p.error(f"--parts takes {','.join(PARTS)}. Received: {unknown}")
    old = U.RESULTS / "profile.json"  # the parts not run now are kept from it: each part stands alone
    results: dict = json.loads(old.read_text()) if old.is_file() and not args.no_write else {}
    results["what"] = __doc__.splitlines()[0]
    results.pop("environment", None)
    for part in parts:
        results[part] = child(part, args)
        print(json.dumps({part: results[part].get("steady", {}).get("share")}, indent=1), flush=True)
    if not args.no_write:
        U.write_results("profile", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
