"""The canonical checkpoint: a directory with `config.json` + `model.safetensors`.

The tensors are the PyTorch build's state_dict (the seed's names, torch layout);
both builds read and write this format, and the Keras layout is derived from it
through `parity.layout`. safetensors holds no code, so a checkpoint is safe to open.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.config import MODEL_TYPE, MODELING_MODULE, BertCnnConfig
from parity.io.card import CARD_NAME, card_text
from parity.io.destination import stage
from parity.io.files import fsync_tree, honour_umask_tree, read_json
from parity.io.formats import DIR, FORMAT_HELP, Weights, config_from, floating_dtype
from parity.io.lock import writer_lock
from parity.io.outputs import DIR as FOLDER
from parity.io.outputs import check_existing, ours
from parity.io.owned import MARKER, read_marker, write_marker
from parity.io.safetensors import read_safetensors
from parity.io.shards import INDEX_NAME, read_shards, shard_bytes, write_shards
from parity.io.swap import recover, staging_of
from parity.layout import check_tensors, expected_shapes, rows, strict_check

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODELING_FILE = f"{MODELING_MODULE}.py"  # the Hugging Face modeling code (auto_map), bertcnn_torch's own file
# One file up to this size, shards above it: Hugging Face's default for `save_pretrained(max_shard_size=)`.
DEFAULT_SHARD_SIZE = "50GB"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# A training directory's recipe (`parity.training.state.RECIPE_NAME`), read here for one field only: the
# length a run trained at, in a directory saved before config.json recorded it as `max_seq_length`.
RUN_RECIPE_NAME = "recipe.json"


def save_checkpoint(
    directory: str | os.PathLike,
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    *,
    tokenizer_from: str | os.PathLike | None = None,
    max_shard_size: int | str = DEFAULT_SHARD_SIZE,
    card: Card | None = None,
) -> Path:
    """Write a canonical checkpoint (`save_pretrained`); every file lands whole or not at all.

    Weights above `max_shard_size` go to Hugging Face's sharded layout (`parity.io.shards`). `card`
    describes the model for its `README.md` (`parity.io.card`); into someone else's folder that
    already has a README.md, none is written.

    A new, empty or bertcnn-written folder is staged beside `directory` and swapped in whole
    (`parity.io.destination`; files of the user's inside are kept). Into any other existing folder
    the files are put one by one, as Hugging Face's `save_pretrained` does, each whole; the
    folder's marker then lists them, and only them, as this project's.
    """
    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    limit = shard_bytes(max_shard_size)
    card = card or Card()
    dest = Path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    flag = "save_pretrained"
    with writer_lock(dest, flag=flag):
        recover(dest)
        if not os.path.lexists(dest) or ours(dest) is not None:
            with stage(dest, kind=FOLDER, marker="checkpoint", flag=flag, replace=True, keep_foreign=True) as tmp:
                write_checkpoint_files(tmp, config, tensors, tokenizer_from=tokenizer_from, limit=limit, card=card)
        else:
            if not dest.is_dir():
                check_existing(dest, flag=flag, kind=FOLDER, force=True)  # a file or a pipe: refused, one line
            _into_their_folder(dest, config, tensors, tokenizer_from, limit, card)
    return dest


def _into_their_folder(dest: Path, config, tensors, tokenizer_from, limit: int, card: Card) -> None:
    """The files staged, then moved into someone's existing folder one by one; the marker lists ours."""
    previous = read_marker(dest)
    ours_before = previous.files if previous and previous.complete else {}
    if (dest / WEIGHTS_NAME).exists() and WEIGHTS_NAME not in ours_before and _sharded(config, tensors, limit):
        raise ValueError(
            f"{dest} holds a {WEIGHTS_NAME} bertcnn did not write, and every reader (transformers' too) would take it "
            f"before the shards of this save; move it away or save to another folder. Received: {dest / WEIGHTS_NAME}"
        )
    if (dest / CARD_NAME).exists() and CARD_NAME not in ours_before:
        card = None  # the folder's own README.md stays
    staging = staging_of(dest)
    staging.mkdir()
    try:
        write_marker(staging, "checkpoint", complete=False)  # a kill now leaves what `recover` removes
        write_checkpoint_files(staging, config, tensors, tokenizer_from=tokenizer_from, limit=limit, card=card)
        honour_umask_tree(staging)
        fsync_tree(staging)
        names = sorted(p.name for p in staging.iterdir() if p.name != MARKER)
        for name in names:
            os.replace(staging / name, dest / name)
        kept = [n for n in (previous.files if previous and previous.complete else {}) if n not in names]
        write_marker(dest, "checkpoint", only=[*names, *(n for n in kept if (dest / n).is_file())])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class Card:
    """What a checkpoint's README.md says beyond its config (`parity.io.card.card_text`)."""

    source: str | None = None  # where the weights came from, for the prose
    base_model: str | None = None  # the hub id of the BERT it starts from, for the hub's metadata
    metrics: tuple = ()  # a training run's records (`metrics.jsonl`)


def write_checkpoint_files(
    directory: Path,
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    *,
    tokenizer_from=None,
    limit: int | None = None,
    card: Card | None = Card(),
) -> None:
    """Every file of a checkpoint into a folder being staged: config.json, the weights (weight-table order; one
    model.safetensors, or shards above `limit` bytes), the tokenizer, the modeling code and the card."""
    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    ordered = [(r.torch_name, np.ascontiguousarray(tensors[r.torch_name])) for r in rows(config)]
    # The project's own writer: a full disk is an OSError (safetensors' save_file raises its own error type).
    write_shards(directory, ordered, limit or shard_bytes(DEFAULT_SHARD_SIZE), {"format": "pt"}, WEIGHTS_NAME)
    if tokenizer_from is not None:
        copy_tokenizer(tokenizer_from, directory, max_length=config.max_seq_length)
    write_hf_files(directory, config, dtype=_dtype_of(ordered), card=card)


def write_hf_files(directory: Path, config: BertCnnConfig, *, dtype: str, card: Card | None = Card()) -> None:
    """What makes a folder of weights a Hugging Face model too (DESIGN decision 21): config.json (with model_type,
    architectures and auto_map), the modeling code auto_map names, and the model card (unless `card` is None)."""
    (directory / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    shutil.copyfile(modeling_source(), directory / MODELING_FILE)
    if card is not None:
        text = card_text(config, name=_published_name(directory), dtype=dtype, source=card.source,
                         base_model=card.base_model, metrics=card.metrics)  # fmt: skip
        (directory / CARD_NAME).write_text(text, encoding="utf-8")


def modeling_source() -> Path:
    """`bertcnn_torch/modeling_bertcnn.py`, found without importing bertcnn_torch (which imports torch)."""
    spec = importlib.util.find_spec("bertcnn_torch")
    where = [Path(p) / MODELING_FILE for p in (spec.submodule_search_locations or [])] if spec else []
    found = next((p for p in where if p.is_file()), None)
    if found is None:  # pragma: no cover - the file ships in the same distribution as parity
        raise FileNotFoundError(f"bertcnn_torch/{MODELING_FILE} is missing: reinstall bertcnn. Received: {where}")
    return found


def _published_name(directory: Path) -> str:
    """The name a folder being staged (`.NAME.staging`, `parity.io.swap`) will have."""
    name = directory.name
    if name.startswith(".") and name.endswith(".staging") and len(name) > len("..staging"):
        return name[1 : -len(".staging")]
    return name


def _dtype_of(ordered) -> str:
    return str(floating_dtype(a for _, a in ordered))


def _sharded(config: BertCnnConfig, tensors: Mapping[str, np.ndarray], limit: int) -> bool:
    return sum(int(np.asarray(tensors[r.torch_name]).nbytes) for r in rows(config)) > limit


def load_checkpoint(directory: str | os.PathLike) -> tuple[BertCnnConfig, dict[str, np.ndarray]]:
    """Read and strictly validate a canonical checkpoint: config and tensors must agree (own, writable arrays)."""
    w = read_dir(Path(directory))
    return w.config, {k: np.array(v) for k, v in w.tensors.items()}


def read_dir(path: Path, expect_for: Callable[[BertCnnConfig], Callable] | None = None) -> Weights:
    """A canonical checkpoint directory as `Weights` (tensors memory-mapped, names and shapes checked first)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Checkpoint not found; expected {FORMAT_HELP}. Received: {str(path)!r}")
    present = sorted(p.name for p in path.iterdir())
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: {CONFIG_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(make one with `bertcnn init`). Received: {present}"
        )
    raw = read_json(path / CONFIG_NAME, what="a BertCnnConfig config.json")
    if is_hf_config(raw):
        raise ValueError(
            f"{path} is a Hugging Face model (model_type {raw['model_type']!r}), not a bertcnn checkpoint; make one "
            f"with `bertcnn init CK_DIR --backbone {path}` (a new CNN head on this BERT), or, for a model fine-tuned "
            f"from it with the seeds' class, `bertcnn port MODEL.pt CK_DIR --backbone {path}`. "
            f"Received: model_type={raw['model_type']!r}"
        )
    sharded = not (path / WEIGHTS_NAME).is_file() and (path / INDEX_NAME).is_file()  # transformers' order, too
    if not (path / WEIGHTS_NAME).is_file() and not sharded:
        raise FileNotFoundError(
            f"{path}: {WEIGHTS_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
            f"(or Hugging Face's shards and {INDEX_NAME}). Received: {present}"
        )
    config = _with_run_length(path, config_from(raw, path / CONFIG_NAME))
    if expect_for is None:
        expect = lambda shapes: strict_check(shapes, config, what=f"Checkpoint {str(path)!r}")  # noqa: E731
    else:
        expect = expect_for(config)
    w = read_shards(path / INDEX_NAME, expect) if sharded else read_safetensors(path / WEIGHTS_NAME, expect)
    w.config, w.format = config, DIR
    w.tokenizer_dir = path if has_tokenizer(path) else None
    return w


def _with_run_length(path: Path, config: BertCnnConfig) -> BertCnnConfig:
    """`config`, with the run's max_length from recipe.json where config.json does not record the length."""
    recipe = path / RUN_RECIPE_NAME
    if config.max_seq_length is not None or not recipe.is_file():
        return config
    raw = read_json(recipe, what="a training recipe (recipe.json, written by `bertcnn train`)")
    n = raw.get("max_length") if isinstance(raw, dict) else None
    if n is None:
        return config
    try:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"Invalid TrainingRecipe: `max_length` must be a positive integer. Received: {n!r}")
        return config.replace(max_seq_length=min(n, config.max_position_embeddings))
    except ValueError as e:
        raise ValueError(f"{recipe}: {str(e).splitlines()[0]}") from None


def is_hf_config(raw: object) -> bool:
    """Another Hugging Face model's config.json (a BERT, say): it names a `model_type` other than ours."""
    return isinstance(raw, dict) and "model_type" in raw and raw["model_type"] != MODEL_TYPE


def has_tokenizer(directory: str | os.PathLike) -> bool:
    return any((Path(directory) / n).is_file() for n in TOKENIZER_FILES)


def copy_tokenizer(src: str | os.PathLike, dest: str | os.PathLike, *, max_length: int | None = None) -> list[str]:
    """Copy whichever tokenizer files `src` has; returns their names.

    `max_length` (the model's `max_seq_length`): the copies truncate there for every reader, not only
    ours: `tokenizer.json`'s own truncation (the `tokenizers` library, as a server in any language loads
    it) and `tokenizer_config.json`'s `model_max_length` (Hugging Face's `AutoTokenizer`, `truncation=True`).
    A file that is not a JSON object is copied as it is (its readers refuse it, not the copy).
    """
    src, dest = Path(src), Path(dest)
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
            copied.append(name)
            if max_length is not None and name in _TRUNCATES:
                _truncating(dest / name, _TRUNCATES[name](max_length))
    return copied


# tokenizer file -> the keys that make its reader truncate at n tokens ([CLS] and [SEP] included).
_TRUNCATES = {
    # What `tokenizers.Tokenizer.enable_truncation(max_length=n)` writes (and `parity.tokenize` does).
    "tokenizer.json": lambda n: {
        "truncation": {"direction": "Right", "max_length": n, "strategy": "LongestFirst", "stride": 0}
    },
    "tokenizer_config.json": lambda n: {"model_max_length": n},
}


def _truncating(path: Path, keys: dict) -> None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return
    if isinstance(raw, dict):
        path.write_text(json.dumps({**raw, **keys}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
