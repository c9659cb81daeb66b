"""The canonical checkpoint: a directory with `config.json` + `model.safetensors`.

The tensors are the PyTorch build's state_dict (the seed's names, torch layout);
both builds read and write this format, and the Keras layout is derived from it
through `parity.layout`. safetensors holds no code, so a checkpoint is safe to open.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from parity.config import BertCnnConfig
from parity.io.destination import stage
from parity.io.files import fsync_tree, honour_umask_tree, read_json
from parity.io.formats import DIR, FORMAT_HELP, Weights, config_from
from parity.io.lock import writer_lock
from parity.io.outputs import DIR as FOLDER
from parity.io.outputs import check_existing, ours
from parity.io.owned import MARKER, read_marker, write_marker
from parity.io.safetensors import read_safetensors, write_safetensors
from parity.io.swap import recover, staging_of
from parity.layout import check_tensors, expected_shapes, rows, strict_check

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
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
) -> Path:
    """Write a canonical checkpoint (`save_pretrained`); every file lands whole or not at all.

    A new, empty or bertcnn-written folder is staged beside `directory` and swapped in whole
    (`parity.io.destination`; files of the user's inside are kept). Into any other existing folder
    the files are put one by one, as Hugging Face's `save_pretrained` does, each whole; the
    folder's marker then lists them, and only them, as this project's.
    """
    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    dest = Path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    flag = "save_pretrained"
    with writer_lock(dest, flag=flag):
        recover(dest)
        if not os.path.lexists(dest) or ours(dest) is not None:
            with stage(dest, kind=FOLDER, marker="checkpoint", flag=flag, replace=True, keep_foreign=True) as tmp:
                write_checkpoint_files(tmp, config, tensors, tokenizer_from=tokenizer_from)
        else:
            if not dest.is_dir():
                check_existing(dest, flag=flag, kind=FOLDER, force=True)  # a file or a pipe: refused, one line
            _into_their_folder(dest, config, tensors, tokenizer_from)
    return dest


def _into_their_folder(dest: Path, config, tensors, tokenizer_from) -> None:
    """The files staged, then moved into someone's existing folder one by one; the marker lists ours."""
    staging = staging_of(dest)
    staging.mkdir()
    try:
        write_marker(staging, "checkpoint", complete=False)  # a kill now leaves what `recover` removes
        write_checkpoint_files(staging, config, tensors, tokenizer_from=tokenizer_from)
        honour_umask_tree(staging)
        fsync_tree(staging)
        previous = read_marker(dest)
        names = sorted(p.name for p in staging.iterdir() if p.name != MARKER)
        for name in names:
            os.replace(staging / name, dest / name)
        kept = [n for n in (previous.files if previous and previous.complete else {}) if n not in names]
        write_marker(dest, "checkpoint", only=[*names, *(n for n in kept if (dest / n).is_file())])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_checkpoint_files(
    directory: Path, config: BertCnnConfig, tensors: Mapping[str, np.ndarray], *, tokenizer_from=None
) -> None:
    """config.json, model.safetensors (weight-table order) and the tokenizer files, into a folder being staged."""
    check_tensors(tensors, expected_shapes(config), what="Tensors to save")
    (directory / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    ordered = [(r.torch_name, np.ascontiguousarray(tensors[r.torch_name])) for r in rows(config)]
    # The project's own writer: a full disk is an OSError (safetensors' save_file raises its own error type).
    write_safetensors(directory / WEIGHTS_NAME, ordered, {"format": "pt"})
    if tokenizer_from is not None:
        copy_tokenizer(tokenizer_from, directory, max_length=config.max_seq_length)


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
    if not (path / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{path}: {WEIGHTS_NAME} is missing; a checkpoint directory holds {CONFIG_NAME} and {WEIGHTS_NAME}. "
            f"Received: {present}"
        )
    config = _with_run_length(path, config_from(raw, path / CONFIG_NAME))
    if expect_for is None:
        expect = lambda shapes: strict_check(shapes, config, what=f"Checkpoint {str(path)!r}")  # noqa: E731
    else:
        expect = expect_for(config)
    w = read_safetensors(path / WEIGHTS_NAME, expect)
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
    """A Hugging Face model's config.json (it names a `model_type`); ours never does."""
    return isinstance(raw, dict) and "model_type" in raw


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
