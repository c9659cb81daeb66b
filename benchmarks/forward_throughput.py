"""Raw forward throughput, one batch of 32 x 128 tokens: both builds vs BertForSequenceClassification.

In one process, interleaved: the PyTorch build (sdpa and eager attention), the Keras
build on its compiled graph (and with XLA), and transformers' BertForSequenceClassification
(sdpa), at MiniLM size (the embedded all-MiniLM-L6-v2 weights) and BERT-base size
(random weights: speed does not depend on their values). numpy in, logits out as
numpy, so every contender pays its own conversions. The first call of each is
reported apart (tracing/compilation).

    python benchmarks/forward_throughput.py [--repeats 7] [--base-repeats 3] [--sizes minilm,base]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def contenders(size: str) -> tuple[dict, object]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from bertcnn_tf import BertCNN as KerasBertCNN
    from bertcnn_tf.runtime import predictor as keras_predictor
    from bertcnn_torch import BertCNN as TorchBertCNN
    from bertcnn_torch.runtime import predictor as torch_predictor
    from parity.config import BertCnnConfig
    from parity.io.backbone import backbone_checkpoint, embedded_backbone_dir

    if size == "minilm":
        config, tensors, _ = backbone_checkpoint(embedded_backbone_dir(), seed=0)
    else:  # BERT-base dimensions; BertCnnConfig's defaults are BERT-base
        config = BertCnnConfig()
        torch.manual_seed(0)
        tensors = {k: v.numpy() for k, v in TorchBertCNN(config).state_dict().items()}
    t_sdpa = TorchBertCNN._from_tensors(config, tensors)
    t_eager = TorchBertCNN._from_tensors(config, tensors, attn_implementation="eager")
    k_model = KerasBertCNN._from_tensors(config, tensors)
    hf = BertForSequenceClassification(
        BertConfig(**config.to_hf_dict(), num_labels=config.num_labels, attn_implementation="sdpa")
    ).eval()
    hf.bert.load_state_dict(
        {k.removeprefix("bert."): torch.from_numpy(v) for k, v in tensors.items() if k.startswith("bert.")}
    )

    def hf_forward(inputs):
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            return hf(**tensors).logits.numpy()

    return {
        "bertcnn-torch (sdpa)": torch_predictor(t_sdpa),
        "bertcnn-torch (eager attn)": torch_predictor(t_eager),
        "bertcnn-keras (tf.function)": keras_predictor(k_model),
        "bertcnn-keras (XLA)": keras_predictor(k_model, jit_compile=True),
        "HF BertForSequenceClassification (sdpa)": hf_forward,
    }, config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="rounds at MiniLM size")
    p.add_argument("--base-repeats", type=int, default=3, help="rounds at BERT-base size")
    p.add_argument("--sizes", default="minilm,base")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's, all cores)")
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = U.loadavg()
    out, rows = {}, []
    for size in args.sizes.split(","):
        runs, config = contenders(size)
        rng = np.random.default_rng(0)
        inputs = {
            "input_ids": rng.integers(1000, config.vocab_size, (args.batch, args.seq)).astype(np.int64),
            "attention_mask": np.ones((args.batch, args.seq), np.int64),
            "token_type_ids": np.zeros((args.batch, args.seq), np.int64),
        }
        first = {}
        for name, fwd in runs.items():
            t = time.perf_counter()
            fwd(inputs)
            first[name] = time.perf_counter() - t
        repeats = args.repeats if size == "minilm" else args.base_repeats
        print(f"{size}: {repeats} rounds, load {U.loadavg()}", file=sys.stderr)
        times = U.interleaved({n: (lambda f=f, x=inputs: f(x)) for n, f in runs.items()}, repeats)
        base = "HF BertForSequenceClassification (sdpa)"
        out[size] = {}
        for name, samples in times.items():
            s, ratio = U.summary(samples), U.paired_ratios(times, base, name)
            out[size][name] = {
                "forward_s": s,
                "first_call_s": first[name],
                "sequences_per_s": args.batch / s["median"],
                "speedup_vs_hf": ratio,
            }
            rows.append(
                [
                    size,
                    name,
                    U.spread(s, digits=3),
                    f"{args.batch / s['median']:.1f}",
                    f"{ratio['median']:.2f}× ({ratio['min']:.2f}–{ratio['max']:.2f})",
                    f"{first[name]:.2f} s",
                ]
            )
    load_after = U.loadavg()
    print(U.table(["size", "model", "forward, median (min–max)", "seq/s", "vs HF (per-round)", "first call"], rows))
    print(
        f"batch {args.batch} x {args.seq} tokens, torch threads {torch.get_num_threads()}; "
        f"load average before {load_before}, after {load_after}"
    )
    U.write_results(
        "forward_throughput",
        {
            "what": __doc__.splitlines()[0],
            "batch": args.batch,
            "seq_len": args.seq,
            "torch_threads": torch.get_num_threads(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "results": out,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
