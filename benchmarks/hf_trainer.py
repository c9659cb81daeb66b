"""The fine-tuning baseline: transformers' `Trainer` + `BertForSequenceClassification`, bertcnn's recipe.

What a user would run instead of `bertcnn train`: the same backbone (the embedded
all-MiniLM-L6-v2, classifier head freshly initialised under `--seed`), the same data
files, and the recipe of `parity.training.TrainingRecipe` spelled in `TrainingArguments`:
AdamW (betas, epsilon, weight decay 0.01; Trainer exempts biases and LayerNorm weights,
as the recipe does: checked below), linear warmup then linear decay to 0
(`lr_scheduler_type="linear"`, warmup steps computed by the recipe), global-norm
clipping, epochs, batch size, peak lr, seed, truncation at `--max-length` and padding to
the longest row of each batch (`DataCollatorWithPadding`). The optimizer implementation is
Trainer's default (`adamw_torch_fused` with torch >= 2.8: the same AdamW formula as
`torch.optim.AdamW`), so the baseline runs as fast as Trainer runs out of the box.

    python benchmarks/hf_trainer.py --train TRAIN.jsonl --test TEST.jsonl [--epochs 3] [--batch-size 32]
        [--lr 2e-5] [--seed 0] [--warmup-steps N | --warmup-ratio R] [--group-by-length] [--limit N] [--json]

Prints held-out accuracy and macro-F1 (scikit-learn's conventions, as `bertcnn evaluate`),
the training time, samples per second and the process' own wall time (one JSON object
with `--json`). Data files: one `{"text": ..., "label": name}` object per line, as
`benchmarks/labelled_corpus.py` writes them.
"""

from __future__ import annotations

import time

T_IMPORT = time.perf_counter()  # before the heavy imports: the process' wall time is reported too

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `parity` from this checkout, not an install


def process_seconds() -> float:
    """Wall seconds since this process started (interpreter start-up included), from /proc where it exists."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime: ticks after boot
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, IndexError, ValueError):
        return time.perf_counter() - T_IMPORT


def read_jsonl(path: str, labels: list[str] | None = None) -> list[tuple[str, str]]:
    """(text, label) rows; any malformed row is refused with FILE:LINE, never skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON object ({e.msg}). Received: {line[:60]!r}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise ValueError(f"{path}:{n}: expected a non-empty string `text`. Received: {line[:60]!r}")
            if not isinstance(obj.get("label"), str) or (labels is not None and obj["label"] not in labels):
                want = f"one of {labels}" if labels is not None else "a label name (string)"
                raise ValueError(f"{path}:{n}: `label` must be {want}. Received: {obj.get('label')!r}")
            rows.append((obj["text"], obj["label"]))
    if not rows:
        raise ValueError(f"{path}: no rows. Received: an empty file")
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from parity.training import TrainingRecipe

    d = TrainingRecipe()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, metavar="FILE.jsonl")
    p.add_argument("--test", metavar="FILE.jsonl", help="held-out rows: accuracy and macro-F1 (none: no evaluation)")
    p.add_argument("--labels", metavar="A,B,C", help="label ids in this order (default: sorted training labels)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    warm = p.add_mutually_exclusive_group()
    warm.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    warm.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    p.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm, help="0: no clipping")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--no-dropout", action="store_true")
    p.add_argument("--no-shuffle", action="store_true", help="file order (Trainer's sequential sampler)")
    p.add_argument("--group-by-length", action="store_true",
                   help="Trainer's LengthGroupedSampler (train_sampling_strategy='group_by_length'); default: "
                        "Trainer's own default, random batches")  # fmt: skip
    p.add_argument("--bf16", action="store_true",
                   help="TrainingArguments(bf16=True, use_cpu=True): bf16 autocast, float32 weights")  # fmt: skip
    p.add_argument("--optim", default=None, help="TrainingArguments.optim (default: Trainer's own default)")
    p.add_argument("--limit", type=int, metavar="N", help="first N rows of each file only (smoke tests)")
    p.add_argument("--out", metavar="DIR", help="Trainer's output_dir (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p.parse_args(argv)


def sampling(recipe) -> str:
    """TrainingArguments.train_sampling_strategy for the recipe's batching."""
    if not recipe.shuffle:
        return "sequential"
    return "group_by_length" if recipe.group_by_length else "random"


def run(args: argparse.Namespace) -> dict:
    from parity.training import TrainingRecipe

    recipe = TrainingRecipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        warmup_ratio=args.warmup_ratio,
        max_grad_norm=args.max_grad_norm or None,
        seed=args.seed,
        dropout=not args.no_dropout,
        shuffle=not args.no_shuffle,
        group_by_length=args.group_by_length,
        max_length=args.max_length,
    )
    train_rows = read_jsonl(args.train)
    labels = args.labels.split(",") if args.labels else sorted({lab for _, lab in train_rows})
    train_rows = read_jsonl(args.train, labels)[: args.limit]
    test_rows = read_jsonl(args.test, labels)[: args.limit] if args.test else []

    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        AutoTokenizer,
        BertForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging

    from parity.io.backbone import embedded_backbone_dir

    logging.set_verbosity_error()  # the "newly initialized classifier" report is expected here
    backbone = embedded_backbone_dir()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    label2id = {name: i for i, name in enumerate(labels)}

    def encode(rows):
        texts = [t for t, _ in rows]
        full = tokenizer(texts, truncation=False)["input_ids"]
        enc = tokenizer(texts, truncation=True, max_length=recipe.max_length)
        data = [
            {**{k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")}, "labels": label2id[lab]}
            for i, (_, lab) in enumerate(rows)
        ]
        return data, sum(len(ids) > recipe.max_length for ids in full)

    train_data, train_truncated = encode(train_rows)
    test_data, test_truncated = encode(test_rows) if test_rows else ([], 0)

    set_seed(recipe.seed)  # the classifier head's initialisation
    dropout = {} if recipe.dropout else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    model = BertForSequenceClassification.from_pretrained(
        backbone, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id, **dropout
    )
    n = len(train_data)
    warmup = recipe.warmup(n)
    extra = {"optim": args.optim} if args.optim else {}
    if args.bf16:
        extra.update(bf16=True, use_cpu=True)  # Trainer refuses bf16 without a GPU unless told it is on the CPU
    with tempfile.TemporaryDirectory(prefix="hf-trainer-") as tmp:
        targs = TrainingArguments(
            output_dir=args.out or tmp,
            num_train_epochs=recipe.epochs,
            per_device_train_batch_size=recipe.batch_size,
            per_device_eval_batch_size=recipe.batch_size,
            learning_rate=recipe.lr,
            lr_scheduler_type="linear",
            warmup_steps=warmup,  # an int: exact steps (a float < 1 would be a ratio)
            weight_decay=recipe.weight_decay,
            adam_beta1=recipe.betas[0],
            adam_beta2=recipe.betas[1],
            adam_epsilon=recipe.eps,
            max_grad_norm=recipe.max_grad_norm or 0.0,  # 0 disables clipping in Trainer
            seed=recipe.seed,
            train_sampling_strategy=sampling(recipe),
            dataloader_drop_last=False,  # the last partial batch is an update, as in the recipe
            remove_unused_columns=False,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="epoch",
            report_to="none",
            disable_tqdm=True,
            **extra,
        )
        trainer = Trainer(
            model=model,
            args=targs,
            train_dataset=train_data,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        # The recipe's no-decay set: biases and LayerNorm weights, nothing else.
        decayed = set(trainer.get_decay_parameter_names(model))
        exempt = sorted(name for name, _ in model.named_parameters() if name not in decayed)
        wrong = [x for x in exempt if not (x.endswith(".bias") or ".LayerNorm." in x)]
        if wrong:
            raise RuntimeError(f"Trainer exempts more than biases and LayerNorm weights from decay: {wrong}")
        t = time.perf_counter()
        out = trainer.train()
        train_seconds = time.perf_counter() - t
        if trainer.state.max_steps != recipe.total_steps(n):
            raise RuntimeError(f"Trainer ran {trainer.state.max_steps} updates, the recipe {recipe.total_steps(n)}")
        t = time.perf_counter()
        logits = trainer.predict(test_data).predictions if test_data else None  # (N, num_labels)
        eval_seconds = time.perf_counter() - t
        optim = str(getattr(targs.optim, "value", targs.optim))
        device = str(targs.device)
    scores = {"accuracy": None, "macro_f1": None}
    if logits is not None:
        pred, truth = np.asarray(logits).argmax(axis=-1), np.array([r["labels"] for r in test_data])
        scores = {
            "accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        }
    return {
        "contender": "hf_trainer_grouped" if recipe.group_by_length and recipe.shuffle else "hf_trainer",
        "sampling": sampling(recipe),
        "model": "transformers.BertForSequenceClassification",
        "backbone": str(backbone),
        "labels": labels,
        "train_file": args.train,
        "test_file": args.test,
        "train_rows": n,
        "test_rows": len(test_data),
        "truncated": {"train": int(train_truncated), "test": int(test_truncated)},
        "recipe": recipe.to_dict(),
        "updates": trainer.state.max_steps,
        "warmup_steps": warmup,
        "optim": optim,
        "no_decay": len(exempt),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "train_loss": float(out.training_loss),
        **scores,
        "train_seconds": train_seconds,
        "train_samples_per_second": n * recipe.epochs / train_seconds,
        "eval_seconds": eval_seconds,
        "process_seconds": process_seconds(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its logs: stdout is the result alone
            result = run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"hf_trainer: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        scored = (
            f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} on {result['test_rows']} rows"
            if result["accuracy"] is not None
            else "not evaluated"
        )
        print(
            f"HF Trainer + BertForSequenceClassification: {scored}; "
            f"{result['train_rows']} x {result['recipe']['epochs']} epochs in {result['train_seconds']:.1f} s "
            f"({result['train_samples_per_second']:.1f} samples/s), process {result['process_seconds']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
