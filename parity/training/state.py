"""Training state, framework-neutral: what a save holds, how it lands on disk, how a run resumes.

A training directory DIR is a canonical checkpoint (`config.json` with label names,
`model.safetensors` in the training dtype, tokenizer files), so `from_pretrained`,
`predict`, `port` and `report` take it as is, plus the state a run needs to continue:

- `optimizer.safetensors`: AdamW moments `exp_avg.<name>` / `exp_avg_sq.<name>` under
  canonical (torch) names and layout, for every trained tensor: either framework reads
  them, the Keras side through the weight table like the weights;
- `trainer_state.json`: step, epoch and batch position in the batch plan, framework,
  the training file's sha256, row count; written last in a save;
- `recipe.json` (the `TrainingRecipe`), `rng.npz` (random-generator state, numbers only),
  `metrics.jsonl` (one JSON object per update, and per epoch with evaluation).

Nothing is pickled. Every save is a whole directory staged beside DIR and swapped in
with renames (`save_snapshot`); `recover` finishes or undoes a swap a kill interrupted,
so what a reader finds under DIR is always one complete save.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import BertCnnConfig
from parity.io.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint, write_checkpoint_files
from parity.io.files import fsync_tree, honour_umask, read_json
from parity.layout import check_tensors, rows
from parity.tokenize import pad_rows
from parity.training.moments import MOMENTS
from parity.training.recipe import TrainingRecipe

STATE_NAME = "trainer_state.json"
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

    def __post_init__(self) -> None:
        for name in ("step", "epoch", "batch", "num_rows"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Invalid trainer state: `{name}` must be an integer >= 0. Received: {v!r}")
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"Invalid trainer state: `framework` must be one of {FRAMEWORKS}. "
                             f"Received: {self.framework!r}")  # fmt: skip


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


def _staging(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.staging")


def _previous(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.previous")


def _is_whole(d: Path) -> bool:
    return (d / STATE_NAME).is_file()


def recover(directory: str | os.PathLike) -> None:
    """Finish or undo a save a kill interrupted, so DIR holds the newest whole save.

    A save is: stage everything in `.DIR.staging` (trainer_state.json last), rename DIR
    to `.DIR.previous`, rename the staging folder to DIR, delete `.DIR.previous`. Killed
    before the first rename: DIR is intact, the partial staging is dropped. Between the
    renames: DIR is missing and the staging folder is whole, so it becomes DIR. After:
    only the leftover `.previous` is deleted.
    """
    dest = Path(directory)
    staging, previous = _staging(dest), _previous(dest)
    if not dest.exists():
        if staging.is_dir() and _is_whole(staging):
            os.replace(staging, dest)
        elif previous.is_dir() and _is_whole(previous):
            os.replace(previous, dest)
    for leftover in (staging, previous):
        if leftover.exists() and dest.exists():
            shutil.rmtree(leftover)


def save_snapshot(directory: str | os.PathLike, snap: Snapshot, *, tokenizer_from: str | os.PathLike | None) -> Path:
    """Write `snap` as a whole directory and swap it in; DIR is never half-written."""
    from safetensors.numpy import save_file

    dest = Path(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover(dest)
    staging = _staging(dest)
    if staging.exists():
        shutil.rmtree(staging)
    # The staging folder is the only temporary place: a kill at any moment leaves nothing `recover` misses.
    # os.mkdir honours the umask (tempfile.mkdtemp would make the folder 0700).
    staging.mkdir()
    write_checkpoint_files(staging, snap.config, snap.tensors, tokenizer_from=tokenizer_from)
    check_tensors(snap.moments, moment_shapes(snap.config) if snap.moments else {}, what="Optimizer moments to save")
    ordered = {k: np.ascontiguousarray(snap.moments[k]) for k in moment_shapes(snap.config) if k in snap.moments}
    save_file(ordered, str(staging / OPTIMIZER_NAME), metadata={"step": str(snap.state.step)})
    (staging / RECIPE_NAME).write_text(snap.recipe.to_json(), encoding="utf-8")
    np.savez(staging / RNG_NAME, **snap.rng)
    (staging / METRICS_NAME).write_text("".join(json.dumps(m) + "\n" for m in snap.metrics), encoding="utf-8")
    for f in staging.iterdir():  # safetensors writes its files 0600 whatever the umask
        honour_umask(f)
    fsync_tree(staging)
    (staging / STATE_NAME).write_text(json.dumps(asdict(snap.state), indent=2) + "\n", encoding="utf-8")
    fsync_tree(staging)
    previous = _previous(dest)
    if dest.exists():
        os.replace(dest, previous)
    os.replace(staging, dest)
    if previous.exists():
        shutil.rmtree(previous)
    return dest


def has_state(directory: str | os.PathLike) -> bool:
    d = Path(directory)
    return _is_whole(d) or _is_whole(_staging(d)) or _is_whole(_previous(d))


def load_snapshot(directory: str | os.PathLike) -> Snapshot:
    """Read a training directory (recovering an interrupted swap first); strict like a checkpoint."""
    from safetensors.numpy import load_file

    d = Path(directory)
    recover(d)
    if not _is_whole(d):
        found = sorted(p.name for p in d.iterdir()) if d.is_dir() else "no directory"
        raise FileNotFoundError(
            f"No training state in {str(d)!r}: {STATE_NAME} is missing, so there is nothing to resume; "
            f"train without --resume to start. Received: {found}"
        )
    config, tensors = load_checkpoint(d)
    state = TrainerState(**_json(d / STATE_NAME))
    recipe = TrainingRecipe.from_dict(_json(d / RECIPE_NAME))
    moments = load_file(str(d / OPTIMIZER_NAME))
    check_tensors(moments, moment_shapes(config) if state.step else {}, what=f"Optimizer moments in {str(d)!r}")
    with np.load(d / RNG_NAME, allow_pickle=False) as z:
        rng = {k: z[k] for k in z.files}
    lines = (d / METRICS_NAME).read_text(encoding="utf-8").splitlines()
    return Snapshot(config, tensors, moments, recipe, state, rng, [json.loads(x) for x in lines if x.strip()])


def _json(path: Path) -> dict:
    return read_json(path, what="a training-state JSON file written by `bertcnn train`")


def initial_snapshot(
    checkpoint: str | os.PathLike, recipe: TrainingRecipe, *, framework: str, data_sha256: str, num_rows: int
) -> Snapshot:
    """Step 0: the checkpoint's weights in the training dtype, no moments, at the plan's start."""
    config, tensors = load_checkpoint(checkpoint)
    tensors = {k: v.astype(recipe.dtype) for k, v in tensors.items()}
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
    "METRICS_NAME",
    "OPTIMIZER_NAME",
    "STATE_NAME",
    "WEIGHTS_NAME",
    "Snapshot",
    "TrainerState",
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
