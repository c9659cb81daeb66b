"""Training state, framework-neutral: what a save holds, how it lands on disk, how a run resumes.

A training directory DIR is a canonical checkpoint (`config.json` with label names,
`model.safetensors` in the training dtype, tokenizer files), so `from_pretrained`,
`predict`, `port` and `report` take it as is, plus the state a run needs to continue:

- `optimizer.safetensors`: AdamW moments `exp_avg.<name>` / `exp_avg_sq.<name>` under
  canonical (torch) names and layout, for every trained tensor: either framework reads
  them, the Keras side through the weight table like the weights;
- `trainer_state.json`: step, epoch and batch position in the batch plan, framework,
  the training file's sha256, row count, the sha256 of every other file of the save and
  a digest of its own content; written last in a save;
- `recipe.json` (the `TrainingRecipe`), `rng.npz` (random-generator state, numbers only),
  `metrics.jsonl` (one JSON object per update, and per epoch with evaluation).

Nothing is pickled. Every save is a whole directory staged beside DIR and swapped in
with one `renameat2(RENAME_EXCHANGE)` (`parity.io.swap`; two renames where the system
cannot exchange); a failed save (a full disk, a second Ctrl-C) removes its staging folder,
and `recover` finishes or undoes a swap a kill interrupted, so what a reader finds under DIR
is always one complete save. DIR's marker (`parity.io.owned`) lists the save's files: a file
of the user's in DIR is foreign and every save keeps it. `load_snapshot` checks every file
before any is used (`parity.training.statefiles`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import BertCnnConfig
from parity.io.checkpoint import CONFIG_NAME, WEIGHTS_NAME, Card, copy_tokenizer, write_hf_files
from parity.io.destination import stage
from parity.io.files import sha256_file
from parity.io.lock import writer_lock
from parity.io.outputs import OutputError
from parity.io.owned import MARKER, read_marker, write_marker
from parity.io.safetensors import write_safetensors
from parity.io.swap import previous_of, staging_of
from parity.io.swap import recover as recover_dir
from parity.layout import check_tensors, expected_shapes, rows
from parity.tokenize import pad_rows
from parity.training.moments import MOMENTS
from parity.training.recipe import TrainingRecipe

STATE_NAME = "trainer_state.json"
LAST_NAME = "last.safetensors"  # with keep_best: the training weights, which --resume continues
OPTIMIZER_NAME = "optimizer.safetensors"
RECIPE_NAME = "recipe.json"
RNG_NAME = "rng.npz"
METRICS_NAME = "metrics.jsonl"
FRAMEWORKS = ("torch", "keras")

# BERT's pooler feeds nothing in BERT-CNN (the head reads the last hidden state): no loss
# reaches it, so neither trainer gives it to the optimizer and it keeps its checkpoint value.
UNTRAINED_PREFIX = "bert.pooler."


def trained_names(config: BertCnnConfig) -> list[str]:
    """Canonical names of the tensors the optimizer updates, in weight-table order."""
    return [r.torch_name for r in rows(config) if not r.torch_name.startswith(UNTRAINED_PREFIX)]


def moment_shapes(config: BertCnnConfig) -> dict[str, tuple[int, ...]]:
    """`exp_avg.<name>` / `exp_avg_sq.<name>` -> canonical shape: what optimizer.safetensors holds."""
    shapes = {r.torch_name: r.torch_shape for r in rows(config)}
    return {f"{m}.{n}": shapes[n] for n in trained_names(config) for m in MOMENTS}


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The dropout seed of update `step`: a pure function of (seed, step, rank).

    Re-seeding every update makes the random stream a function of the position, not of
    history, so a resumed run draws exactly the masks the uninterrupted run drew.
    """
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint32)[0])


def pad_batch(encoded: Sequence[tuple[np.ndarray, np.ndarray]], rows_: np.ndarray, pad_token_id: int) -> dict:
    """Model inputs for the rows `rows_` of `encoded`, right-padded to the longest of them (`pad_rows`).

    The trainers take pre-encoded rows, so their tests need no tokenizer file.
    """
    return pad_rows([encoded[int(i)] for i in rows_], pad_token_id)


@dataclass(frozen=True)
class TrainerState:
    """Where a run stands: `step` updates done; the next batch is plan[epoch][batch]."""

    step: int
    epoch: int
    batch: int
    framework: str
    data_sha256: str
    num_rows: int
    finished: bool = False
    # With `keep_best`: the epoch kept so far, {"epoch", "step", "value"} (its weights are model.safetensors).
    best: dict[str, Any] | None = None
    early_stopped: bool = False  # `early_stopping` ended the run before its last epoch (then finished too)

    def __post_init__(self) -> None:
        for name in ("step", "epoch", "batch", "num_rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Invalid trainer state: `{name}` must be an integer >= 0. Received: {v!r}")
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"Invalid trainer state: `framework` must be one of {FRAMEWORKS}. "
                             f"Received: {self.framework!r}")  # fmt: skip
        if not isinstance(self.data_sha256, str):
            raise ValueError(f"Invalid trainer state: `data_sha256` must be a string. Received: {self.data_sha256!r}")
        for name in ("finished", "early_stopped"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Invalid trainer state: `{name}` must be true or false. "
                                 f"Received: {getattr(self, name)!r}")  # fmt: skip
        b = self.best
        ok = b is None or (
            isinstance(b, dict) and sorted(b) == ["epoch", "step", "value"]
            and all(isinstance(b[k], int) and not isinstance(b[k], bool) and b[k] >= 0 for k in ("epoch", "step"))
            and isinstance(b["value"], (int, float)) and not isinstance(b["value"], bool) and np.isfinite(b["value"])
        )  # fmt: skip
        if not ok:
            raise ValueError("Invalid trainer state: `best` must be null or {epoch, step: integers >= 0, value: a "
                             f"finite number}}. Received: {b!r}")  # fmt: skip
        if self.early_stopped and (b is None or not self.finished):
            raise ValueError("Invalid trainer state: `early_stopped` needs a `best` epoch and `finished`. "
                             f"Received: best={b!r}, finished={self.finished!r}")  # fmt: skip


@dataclass
class Snapshot:
    """One whole save: the model, the optimizer, the position, the log."""

    config: BertCnnConfig
    tensors: dict[str, np.ndarray]  # canonical, in the training dtype
    moments: dict[str, np.ndarray]  # exp_avg.<name> / exp_avg_sq.<name>, canonical layout; {} before step 1
    recipe: TrainingRecipe
    state: TrainerState
    rng: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    # With `keep_best`, the best epoch's weights (what model.safetensors holds; `tensors` go to last.safetensors).
    best_tensors: dict[str, np.ndarray] | None = None

    @property
    def kept(self) -> dict[str, np.ndarray]:
        """The weights a reader of DIR gets: the best epoch's with `keep_best` (once evaluated), else the last."""
        return self.tensors if self.best_tensors is None else self.best_tensors


def _is_whole(d: Path) -> bool:
    return (d / STATE_NAME).is_file()


def recover(directory: str | os.PathLike) -> None:
    """Finish or undo a save a kill interrupted, so DIR holds the newest whole save (`parity.io.swap`).

    Only the holder of DIR's writer lock may call it: it deletes a killed save's staging folder.
    """
    recover_dir(Path(directory))


def save_snapshot(directory: str | os.PathLike, snap: Snapshot, *, tokenizer_from: str | os.PathLike | None) -> Path:
    """Write `snap` as a whole directory and swap it in: DIR is never half-written, never missing for a reader.

    Call under DIR's writer lock (`bertcnn train` holds it for the whole run). On any failure (a
    full disk, a second Ctrl-C) the staging folder is removed and DIR keeps the previous complete
    save; the error goes on to the caller. Files of the user's in DIR are kept (`parity.io.swap`).
    """
    dest = Path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover(dest)
    with stage(dest, kind="folder", marker="training directory", flag="--out", replace=True,
               keep_foreign=True) as staging:  # fmt: skip
        _write_save(staging, dest, snap, tokenizer_from)
    return dest


def adopt(directory: str | os.PathLike) -> None:
    """Give a training directory written before markers existed its marker: the files its state lists.

    Call after `load_snapshot` verified them (their sha256s are in trainer_state.json), under the lock.
    """
    d = Path(directory)
    if read_marker(d) is None:
        listed = json.loads((d / STATE_NAME).read_text(encoding="utf-8")).get("files", {})
        write_marker(d, "training directory", only=[*listed, STATE_NAME])


def _write_save(staging: Path, dest: Path, snap: Snapshot, tokenizer_from) -> None:
    """Every file of a save into `staging`; trainer_state.json (with each file's sha256) last."""
    config = snap.config
    check_tensors(snap.tensors, expected_shapes(config), what="Tensors to save")
    if snap.best_tensors is not None:
        check_tensors(snap.best_tensors, expected_shapes(config), what="Best-epoch tensors to save")
    check_tensors(snap.moments, moment_shapes(config) if snap.moments else {}, what="Optimizer moments to save")

    def written(name: str, write) -> None:
        try:
            write(staging / name)
        except OSError as e:  # name the file of DIR, not the hidden staging one (main() prints the disk line)
            raise OSError(e.errno, e.strerror, str(dest / name)) from None

    how = f"`bertcnn train --framework {snap.state.framework}`, {snap.state.step} updates on {snap.state.num_rows} rows"
    card = Card(source=how, metrics=tuple(snap.metrics))  # config.json, the modeling code, README.md
    written(CONFIG_NAME, lambda p: write_hf_files(p.parent, config, dtype=snap.recipe.dtype, card=card))

    def ordered(weights):
        return [(r.torch_name, np.ascontiguousarray(weights[r.torch_name])) for r in rows(config)]

    written(WEIGHTS_NAME, lambda p: write_safetensors(p, ordered(snap.kept), {"format": "pt"}))
    if snap.recipe.keep_best is not None:
        written(LAST_NAME, lambda p: write_safetensors(p, ordered(snap.tensors), {"format": "pt"}))
    if tokenizer_from is not None:
        written("tokenizer.json", lambda p: copy_tokenizer(tokenizer_from, p.parent, max_length=config.max_seq_length))
    moments = [(k, np.ascontiguousarray(snap.moments[k])) for k in moment_shapes(config) if k in snap.moments]
    written(OPTIMIZER_NAME, lambda p: write_safetensors(p, moments, {"step": str(snap.state.step)}))
    written(RECIPE_NAME, lambda p: p.write_text(snap.recipe.to_json(), encoding="utf-8"))
    written(RNG_NAME, lambda p: np.savez(p, **snap.rng))
    written(METRICS_NAME, lambda p: p.write_text("".join(json.dumps(m) + "\n" for m in snap.metrics), "utf-8"))
    saved = sorted(f for f in staging.iterdir() if f.name != MARKER)
    record = {**asdict(snap.state), "files": {f.name: sha256_file(f) for f in saved}}
    record["digest"] = _digest(record)
    written(STATE_NAME, lambda p: p.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8"))
    written(MARKER, lambda p: write_marker(p.parent, "training directory", known=record["files"]))


def _digest(record: Mapping[str, Any]) -> str:
    """sha256 of trainer_state.json's content (without the digest itself): any change to the file shows."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def has_state(directory: str | os.PathLike) -> bool:
    d = Path(directory)
    return _is_whole(d) or _is_whole(staging_of(d)) or _is_whole(previous_of(d))


def load_snapshot(directory: str | os.PathLike, *, recover_first: bool = True) -> Snapshot:
    """Read a training directory, every file checked before any is used (`parity.training.statefiles`).

    `recover_first`: finish or undo a save a kill interrupted, if no run holds DIR's writer lock
    (a live writer's staging folder is its own; `bertcnn train` recovers under the lock and passes
    False; under torchrun rank 0 does it and the other ranks only read). A reader racing a run's save
    reads the files of one save: a save swaps in a new folder (a new inode at DIR), so a read
    that saw DIR change under it is done again.
    """
    d = Path(directory)
    if recover_first and d.parent.is_dir():
        with contextlib.suppress(OutputError, OSError), writer_lock(d):  # held or read-only: not a reader's job
            recover(d)
    deadline = time.monotonic() + READ_PATIENCE_S
    while True:
        before = _inode(d)
        try:
            snap = _read_snapshot(d)
        except (ValueError, OSError):
            after = _inode(d)
            # DIR did not change under the read (or is gone, no save under way): the error is the files' own.
            if after == before and (before is not None or not previous_of(d).exists()):
                raise
        else:
            if _inode(d) == before is not None:
                return snap
        if time.monotonic() > deadline:  # not a damaged file: saves kept landing during every read
            raise OSError(
                f"{d} was replaced by new saves during every read for {READ_PATIENCE_S:g} s (a run saving "
                f"faster than it can be read); read it again, or once the run has stopped. Received: {d}"
            )
        time.sleep(0.01)


# How long a reader keeps retrying while saves land under it: a loaded machine can take longer to read
# DIR than a run takes to save the next update (10 attempts of 10 ms were seen to run out in a suite run).
READ_PATIENCE_S = 60.0


def _inode(d: Path) -> tuple[int, int, int] | None:
    """Which folder DIR names now: a swapped-in save is a new folder (an inode number may be reused, its times not)."""
    try:
        st = os.stat(d)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _read_snapshot(d: Path) -> Snapshot:
    from parity.training import statefiles as S

    if not _is_whole(d):
        found = sorted(p.name for p in d.iterdir()) if d.is_dir() else "no directory"
        raise FileNotFoundError(
            f"No training state in {str(d)!r}: {STATE_NAME} is missing, so there is nothing to resume; "
            f"train without --resume to start. Received: {found}"
        )
    raw, files = S.read_state(d / STATE_NAME, _digest)
    state = S.checked(d / STATE_NAME, lambda: TrainerState(**raw))
    recipe = S.read_recipe(d / RECIPE_NAME)
    S.check_position(d / STATE_NAME, state, recipe)
    # The config decides what the weights must look like: a config.json changed into another valid config
    # would make the weights' reader blame model.safetensors, so its hash is checked before it is used.
    S.check_files(d, {k: v for k, v in files.items() if k == CONFIG_NAME})
    config, tensors = S.read_model(d, recipe.dtype)
    best_tensors = None
    if recipe.keep_best is not None:  # model.safetensors is the best epoch's; training continues from the last
        best_tensors, tensors = (tensors if state.best else None), S.read_last(d / LAST_NAME, config, recipe.dtype)
    expected = moment_shapes(config) if state.step else {}
    moments = S.read_moments(d / OPTIMIZER_NAME, expected, state.step, recipe.dtype)
    rng = S.read_rng(d / RNG_NAME, state.framework)
    metrics = S.read_metrics(d / METRICS_NAME, state.step)
    S.check_files(d, files)
    return Snapshot(config, tensors, moments, recipe, state, rng, metrics, best_tensors)


def initial_snapshot(
    config: BertCnnConfig,
    tensors: Mapping[str, np.ndarray],
    recipe: TrainingRecipe,
    *,
    framework: str,
    data_sha256: str,
    num_rows: int,
) -> Snapshot:
    """Step 0: the checkpoint's weights in the training dtype, no moments, at the plan's start.

    The config records how the run reads its texts, the length it trains at (`max_seq_length`) and whether longer
    ones are cut or read as windows (`window_stride`, `max_windows`): every save, port and reader reads so.
    """
    windowed = recipe.long_text == "windows"
    config = config.replace(max_seq_length=min(recipe.max_length, config.max_position_embeddings),
                            window_stride=recipe.stride if windowed else None,
                            max_windows=recipe.max_windows if windowed else None)  # fmt: skip
    tensors = {k: np.asarray(v).astype(recipe.dtype) for k, v in tensors.items()}
    state = TrainerState(step=0, epoch=0, batch=0, framework=framework, data_sha256=data_sha256, num_rows=num_rows)
    return Snapshot(config, tensors, {}, recipe, state)


def recipe_differences(saved: TrainingRecipe, given: Mapping[str, Any]) -> list[str]:
    """`field: saved X, given Y` for each recipe field given that differs from the saved one."""
    ours = saved.to_dict()
    out = []
    for k, v in given.items():
        v = list(v) if isinstance(v, tuple) else v
        if ours.get(k) != v:
            out.append(f"{k}: saved {ours.get(k)!r}, given {v!r}")
    return out


__all__ = [
    "CONFIG_NAME",
    "LAST_NAME",
    "METRICS_NAME",
    "OPTIMIZER_NAME",
    "STATE_NAME",
    "WEIGHTS_NAME",
    "Snapshot",
    "TrainerState",
    "adopt",
    "has_state",
    "initial_snapshot",
    "load_snapshot",
    "moment_shapes",
    "pad_batch",
    "recipe_differences",
    "recover",
    "save_snapshot",
    "step_seed",
    "trained_names",
]
