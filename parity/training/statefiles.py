"""Every file of a training state, read as untrusted data and checked before any of it is used.

`parity.training.state.load_snapshot` reads a training directory through these: a save
that was truncated, garbled, edited, mixed from two saves or written for another model
is refused with one line naming the file, what is wrong and how to go on (a ValueError:
exit 2 on the command line), and nothing is written. Each check is structural (JSON
shapes, safetensors headers through the project's own validating reader, tensor names,
shapes and dtypes, the position in the plan, one log record per update) and then by
content: trainer_state.json records the sha256 of every other file of the save, and a
digest of its own content, so a flipped byte anywhere is found.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from parity.config import BertCnnConfig
from parity.io.checkpoint import load_checkpoint
from parity.io.files import read_json, sha256_file
from parity.io.safetensors import read_safetensors, read_safetensors_header
from parity.layout import expected_shapes
from parity.training.recipe import LATER_FIELDS, TrainingRecipe

__all__ = [
    "check_files",
    "check_position",
    "checked",
    "damaged",
    "read_last",
    "read_metrics",
    "read_model",
    "read_moments",
    "read_recipe",
    "read_rng",
    "read_state",
]

T = TypeVar("T")
STATE_KEYS = ("step", "epoch", "batch", "framework", "data_sha256", "num_rows", "finished")
OPTIONAL_STATE_KEYS = ("best", "early_stopped")  # written since keep_best; older saves lack them
_SHA = re.compile(r"[0-9a-f]{64}")
_SEED = re.compile(r"keras/seed_generator/(0|[1-9][0-9]*)")
_FLAGS = ("clipped", "early_stopped")  # the log's true/false fields
MAX_RNG_BYTES = 1 << 20  # a few seed states: anything larger is not one of ours
_SHOW = 100


def damaged(path: Path, what: str, received: Any) -> ValueError:
    """The one message for a damaged state file: which, what is wrong, what to do."""
    shown = received if isinstance(received, str) else repr(received)
    if len(shown) > _SHOW:
        shown = shown[:_SHOW] + "..."
    return ValueError(
        f"{path}: {what}; expected the file as `bertcnn train` saved it. The save is damaged or was changed after "
        f"it was written: restore the directory from a copy, or start a new run without --resume (another --out, "
        f"or --force). Received: {shown}"
    )


def _reason(path: Path, e: BaseException) -> str:
    """The heart of a reader's one-line message, without its own file prefix and Received tail."""
    text = (str(e).splitlines() or [type(e).__name__])[0]
    for prefix in (f"{path}: ", f"{path.parent}: "):
        text = text.removeprefix(prefix)
    return text.rsplit(" Received: ", 1)[0].rstrip(". ") or type(e).__name__


def checked(path: Path, build: Callable[[], T]) -> T:
    """`build()`, with a ValueError/TypeError it raises turned into the damaged-file line for `path`."""
    try:
        return build()
    except (ValueError, TypeError) as e:
        raise damaged(path, _reason(path, e), path.name) from None


def _json(path: Path) -> Any:
    if not path.is_file():
        raise damaged(path, "the file is missing", sorted(p.name for p in path.parent.iterdir()))
    return checked(path, lambda: read_json(path, what="a training-state JSON file written by `bertcnn train`"))


def read_state(path: Path, digest: Callable[[Mapping[str, Any]], str]) -> tuple[dict[str, Any], dict[str, str]]:
    """trainer_state.json -> (the TrainerState fields, {file name: sha256}); its own digest checked."""
    raw = _json(path)
    if not isinstance(raw, dict):
        raise damaged(path, "not a JSON object", type(raw).__name__)
    unknown = sorted(set(raw) - {*STATE_KEYS, *OPTIONAL_STATE_KEYS, "files", "digest"})
    missing = [k for k in STATE_KEYS if k not in raw]
    if unknown or missing:
        raise damaged(path, f"keys differ from a trainer state's ({', '.join(STATE_KEYS)})",
                      f"missing {missing}, unknown {unknown}")  # fmt: skip
    if "digest" in raw and raw["digest"] != digest(raw):
        raise damaged(path, "its content does not match the digest recorded in it (an edited or damaged file)",
                      raw["digest"])  # fmt: skip
    files = raw.get("files", {})
    ok = isinstance(files, dict) and all(
        isinstance(k, str) and Path(k).name == k and k not in ("", ".", "..") and isinstance(v, str)
        and _SHA.fullmatch(v) for k, v in files.items()
    )  # fmt: skip
    if not ok:
        raise damaged(path, "`files` must map each file name of the save to its sha256 (64 hex digits)", files)
    sha = raw["data_sha256"]
    if not (isinstance(sha, str) and (sha == "" or _SHA.fullmatch(sha))):
        raise damaged(path, "`data_sha256` must be the training file's sha256 (64 hex digits)", sha)
    return {k: raw[k] for k in (*STATE_KEYS, *OPTIONAL_STATE_KEYS) if k in raw}, files


def read_recipe(path: Path) -> TrainingRecipe:
    raw = _json(path)
    names = [f.name for f in dataclasses.fields(TrainingRecipe)]
    if isinstance(raw, dict) and sorted(set(raw) | set(LATER_FIELDS)) != sorted(names):
        missing, unknown = sorted(set(names) - set(raw) - set(LATER_FIELDS)), sorted(set(raw) - set(names))
        raise damaged(path, f"keys differ from a TrainingRecipe's ({', '.join(names)})",
                      f"missing {missing}, unknown {unknown}")  # fmt: skip
    return checked(path, lambda: TrainingRecipe.from_dict(raw))


def check_position(path: Path, state, recipe: TrainingRecipe) -> None:
    """step, epoch, batch and finished must name one place in the plan of `num_rows` rows."""
    if state.num_rows < 1:
        raise damaged(path, "`num_rows` must be at least 1", state.num_rows)
    per_epoch, total = recipe.steps_per_epoch(state.num_rows), recipe.total_steps(state.num_rows)
    at = state.epoch * per_epoch + state.batch
    ends = state.step == total or (state.early_stopped and state.batch == 0)
    if not (state.batch < per_epoch and at == state.step <= total and state.finished == ends):
        raise damaged(
            path,
            f"step, epoch, batch and finished do not name one place in the plan ({per_epoch} updates per epoch, "
            f"{total} in all)",
            f"step {state.step}, epoch {state.epoch}, batch {state.batch}, finished {state.finished}",
        )


def read_model(d: Path, dtype: str):
    """config.json + model.safetensors through the checkpoint reader; tensors in the training dtype."""
    config_path, weights_path = d / "config.json", d / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise damaged(path, "the file is missing", sorted(p.name for p in d.iterdir()))
    checked(config_path, lambda: BertCnnConfig.from_dict(read_json(config_path, what="a BertCnnConfig config.json")))
    try:
        config, tensors = load_checkpoint(d)
    except (ValueError, FileNotFoundError) as e:
        raise damaged(weights_path, _reason(weights_path, e), weights_path.name) from None
    wrong = sorted({str(v.dtype) for v in tensors.values()} - {dtype})
    if wrong:
        raise damaged(weights_path, f"the weights must be in the training dtype {dtype}", wrong)
    return config, tensors


def read_last(path: Path, config: BertCnnConfig, dtype: str) -> dict[str, np.ndarray]:
    """last.safetensors (a keep_best run's training weights): exactly the weight table's tensors, in `dtype`."""
    if not path.is_file():
        raise damaged(path, "the file is missing (a keep_best run saves its training weights there)",
                      sorted(p.name for p in path.parent.iterdir()))  # fmt: skip
    expected = expected_shapes(config)

    def expect(shapes: Mapping[str, tuple]) -> None:
        if dict(shapes) != {k: tuple(v) for k, v in expected.items()}:
            odd = sorted(set(shapes) ^ set(expected)) or [k for k in expected if tuple(shapes[k]) != tuple(expected[k])]
            raise damaged(path, "the tensors do not fit the model in config.json", odd[:1])

    try:
        w = read_safetensors(path, expect)
    except ValueError as e:
        if str(e).startswith(f"{path}: ") and "expected the file as" in str(e):
            raise
        raise damaged(path, _reason(path, e), path.name) from None
    wrong = sorted({str(v.dtype) for v in w.tensors.values()} - {dtype})
    if wrong:
        raise damaged(path, f"the weights must be in the training dtype {dtype}", wrong)
    return {k: np.array(v) for k, v in w.tensors.items()}


def read_moments(path: Path, expected: Mapping[str, tuple], step: int, dtype: str) -> dict[str, np.ndarray]:
    """optimizer.safetensors: exactly the expected moments (none before the first update), names and shapes."""
    if not path.is_file():
        raise damaged(path, "the file is missing", sorted(p.name for p in path.parent.iterdir()))

    def expect(shapes: Mapping[str, tuple]) -> None:
        missing = [k for k in expected if k not in shapes]
        unknown = [k for k in shapes if k not in expected]
        wrong = [k for k in expected if k in shapes and tuple(shapes[k]) != tuple(expected[k])]
        if missing or unknown or wrong:
            first = (missing or unknown or wrong)[0]
            raise damaged(path, f"the AdamW moments do not fit the model at step {step}: {len(missing)} missing, "
                          f"{len(unknown)} unexpected, {len(wrong)} mis-shaped", first)  # fmt: skip

    try:
        metadata, _, _ = read_safetensors_header(path)
        w = read_safetensors(path, expect)
    except ValueError as e:
        if str(e).startswith(f"{path}: ") and "expected the file as" in str(e):
            raise
        raise damaged(path, _reason(path, e), path.name) from None
    if metadata.get("step", str(step)) != str(step):
        raise damaged(path, f"the moments were saved at another step than trainer_state.json's {step}",
                      metadata.get("step"))  # fmt: skip
    wrong = sorted({str(v.dtype) for v in w.tensors.values()} - {dtype})
    if wrong:
        raise damaged(path, f"the moments must be in the training dtype {dtype}", wrong)
    return {k: np.array(v) for k, v in w.tensors.items()}


def read_rng(path: Path, framework: str) -> dict[str, np.ndarray]:
    """rng.npz: numbers only; a Keras save's dropout seed states (keras/seed_generator/<i>); a torch save: none."""
    if not path.is_file():
        raise damaged(path, "the file is missing", sorted(p.name for p in path.parent.iterdir()))
    if path.stat().st_size > MAX_RNG_BYTES:
        raise damaged(path, f"implausibly large for a few seed states (over {MAX_RNG_BYTES} bytes)",
                      path.stat().st_size)  # fmt: skip
    try:
        rng = _read_npz(path, MAX_RNG_BYTES)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        why = _reason(path, e) if isinstance(e, ValueError) else type(e).__name__
        raise damaged(path, f"not a readable .npz archive of arrays ({why})", path.name) from None
    if framework != "keras" and rng:
        raise damaged(path, f"a {framework} save carries no random state (dropout is seeded per update)", sorted(rng))
    order = sorted(rng, key=lambda k: int(m.group(1)) if (m := _SEED.fullmatch(k)) else -1)
    if order != [f"keras/seed_generator/{i}" for i in range(len(rng))]:
        raise damaged(path, "names must be keras/seed_generator/0, 1, ... (one per dropout seed generator)", order)
    for k, v in rng.items():
        if v.shape != (2,) or not np.issubdtype(v.dtype, np.integer):
            raise damaged(path, f"{k} must be a Keras seed state: 2 integers", f"{v.dtype} {v.shape}")
    return rng


def _read_npz(path: Path, cap: int) -> dict[str, np.ndarray]:
    """An .npz archive as arrays, `cap` bytes at most in all: each .npy header's shape and dtype are checked
    against the bytes its member really holds before an array is made (`np.load` allocates what a header
    declares first, then reads: a 1 MB file could ask for terabytes)."""
    from parity.io.formats import read_member

    out: dict[str, np.ndarray] = {}
    left = cap
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if name == info.filename or name in out:
                raise ValueError(f"member {info.filename!r} is not one .npy array")
            raw = read_member(zf, info, left, path)
            left -= len(raw)
            out[name] = _npy(info.filename, raw)
    return out


def _npy(member: str, raw: bytes) -> np.ndarray:
    """One .npy file's array, its header's claims checked against its length first."""
    import io

    fmt = np.lib.format
    f = io.BytesIO(raw)
    version = fmt.read_magic(f)
    read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read_header is None:
        raise ValueError(f"{member} has .npy format version {version}")
    shape, fortran, dtype = read_header(f)
    if dtype.hasobject:
        raise ValueError(f"{member} holds Python objects")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = len(raw) - f.tell()
    if declared != held:
        raise ValueError(f"{member} declares {declared} bytes of data (shape {shape}, {dtype}) but holds {held}")
    return np.frombuffer(raw, dtype, offset=f.tell()).reshape(shape, order="F" if fortran else "C").copy()


def read_metrics(path: Path, step: int) -> list[dict[str, Any]]:
    """metrics.jsonl: one JSON object per line, exactly one update record for each of the `step` updates, in order."""
    if not path.is_file():
        raise damaged(path, "the file is missing", sorted(p.name for p in path.parent.iterdir()))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise damaged(path, "not UTF-8 text", path.name) from None
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise damaged(path, f"line {i} is not valid JSON", line) from None
        ok = isinstance(record, dict) and all(
            isinstance(v, (int, float)) and not (isinstance(v, bool) and k not in _FLAGS) for k, v in record.items()
        )
        if not ok or not isinstance(record.get("step"), int) or isinstance(record.get("step"), bool):
            raise damaged(path, f"line {i} is not a log record (a JSON object of numbers with a `step`)", line)
        records.append(record)
    steps = [r["step"] for r in records if "loss" in r]
    if steps != list(range(1, step + 1)):
        raise damaged(path, f"expected one update record for each of the {step} updates done, in order",
                      f"{len(steps)} update records, steps {steps[:3]}...{steps[-3:]}")  # fmt: skip
    return records


def check_files(d: Path, files: Mapping[str, str]) -> None:
    """Each file's sha256 as recorded at the save: a flipped byte the structural checks cannot see."""
    for name, sha in files.items():
        path = d / name
        if not path.is_file():
            present = sorted(p.name for p in d.iterdir())
            raise damaged(path, "the file is missing (trainer_state.json lists it)", present)
        got = sha256_file(path)
        if got != sha:
            raise damaged(path, "its content differs from the save (sha256 recorded in trainer_state.json)",
                          f"sha256 {got[:16]}..., recorded {sha[:16]}...")  # fmt: skip
