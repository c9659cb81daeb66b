"""The baseline a user would pick instead: transformers' text-classification pipeline.

A `BertForSequenceClassification` on the same backbone (the embedded all-MiniLM-L6-v2,
classifier head freshly initialised), its own tokenizer, batch size 32, truncation at
128 tokens. Prints `label<TAB>score<TAB>text` per line, as `bertcnn predict` prints
its results, so both processes do the same I/O.

    python benchmarks/hf_pipeline.py CORPUS.txt [--batch-size 32] [--max-length 128]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    args = p.parse_args()

    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline
    from transformers.utils import logging

    from parity.io.backbone import embedded_backbone_dir

    logging.set_verbosity_error()  # the "newly initialized classifier" report is expected here
    logging.disable_progress_bar()
    backbone = embedded_backbone_dir()
    model = BertForSequenceClassification.from_pretrained(backbone, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    clf = pipeline(
        "text-classification",
        model=model,
        tokenizer=tokenizer,
        device="cpu",
        batch_size=args.batch_size,
        truncation=True,
        max_length=args.max_length,
    )
    with open(args.file, encoding="utf-8") as f:
        texts = [line for line in f.read().splitlines() if line.strip()]
    results = clf(texts)
    sys.stdout.write("".join(f"{r['label']}\t{r['score']:.6f}\t{t}\n" for r, t in zip(results, texts, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
