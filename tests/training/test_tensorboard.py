"""`TensorBoardLog`: metrics records read back with TensorBoard's own reader (`EventAccumulator`).

Every `TAGS` key lands at the record's step with the float32 of its value, other keys nowhere; a
resumed run (`start_step`) replaces the points an interrupted run left past it, which without the
purge show twice; files follow the umask, sort after earlier ones, and writing loads no framework.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from parity.training.tensorboard import PREFIX, TAGS, TensorBoardLog

RECORDS = [
    {"step": 1, "epoch": 0, "batch": 0, "loss": 1.0986123, "lr": 2.1e-5, "grad_norm": 0.7312, "clipped": False},
    {"step": 2, "epoch": 0, "batch": 1, "loss": 0.9137, "lr": 1.7e-5, "grad_norm": 3.25, "clipped": True},
    {"epoch": 0, "step": 2, "eval_loss": 0.8123, "eval_accuracy": 0.6667, "eval_macro_f1": 0.5714, "best_epoch": 0},
    {"step": 3, "epoch": 1, "batch": 0, "loss": 0.4321, "lr": 1.3e-7, "grad_norm": 1e-3, "clipped": False},
    {"epoch": 1, "step": 3, "eval_loss": 0.7, "eval_accuracy": 1 / 3, "eval_macro_f1": 0.1, "best_epoch": 1},
]


def _scalars(logdir) -> dict:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _steps(run, value):
    return [{"step": s, "loss": value(s), "lr": 1e-5 * s, "grad_norm": 0.1 * s} for s in run]


def test_each_tag_reads_back_at_its_step_as_float32_and_other_keys_are_absent(tmp_path):
    with TensorBoardLog(tmp_path / "new" / "logs") as log:
        for record in RECORDS:
            log(record)
    got = _scalars(tmp_path / "new" / "logs")
    expected = {tag: [(r["step"], np.float32(r[key])) for r in RECORDS if key in r] for key, tag in TAGS.items()}
    assert got == expected
    assert all(len(points) >= 2 for points in got.values())
    assert not {"epoch", "batch", "clipped", "best_epoch"} & {t.rsplit("/", 1)[-1] for t in got}


def test_a_resumed_run_replaces_the_points_past_its_start(tmp_path):
    with TensorBoardLog(tmp_path) as first:  # interrupted after step 5; its last save was step 3
        for r in _steps(range(1, 6), lambda s: 1.0 + s / 7):
            first(r)
    with TensorBoardLog(tmp_path, start_step=3) as second:
        for r in _steps(range(4, 7), lambda s: 2.0 + s / 9):
            second(r)
    assert len(os.listdir(tmp_path)) == 2
    loss = _scalars(tmp_path)[TAGS["loss"]]
    assert [s for s, _ in loss] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in loss] == [np.float32(1.0 + s / 7) for s in (1, 2, 3)] + [
        np.float32(2.0 + s / 9) for s in (4, 5, 6)
    ]


def test_without_the_purge_the_interrupted_points_show_twice(tmp_path):
    with TensorBoardLog(tmp_path) as first:
        for r in _steps(range(1, 6), lambda s: 1.0 + s / 7):
            first(r)
    with TensorBoardLog(tmp_path) as second:  # start_step=0: no SessionLog START
        for r in _steps(range(4, 7), lambda s: 2.0 + s / 9):
            second(r)
    assert [s for s, _ in _scalars(tmp_path)[TAGS["loss"]]] == [1, 2, 3, 4, 5, 4, 5, 6]


def test_a_new_file_sorts_after_one_started_in_the_same_second(tmp_path):
    # TensorBoard reads files in name order; a name that sorts first would be read before the
    # file it should purge. "~" sorts after any host name, so only a later second sorts after it.
    with TensorBoardLog(tmp_path) as first:
        first({"step": 5, "loss": 3.5})
    ahead = tmp_path / f"{PREFIX}{int(time.time()):010d}.~.0.0"
    os.rename(first.path, ahead)
    with TensorBoardLog(tmp_path, start_step=3) as second:
        second({"step": 4, "loss": 0.25})
    assert sorted(os.listdir(tmp_path)) == [ahead.name, os.path.basename(second.path)]
    assert _scalars(tmp_path)[TAGS["loss"]] == [(4, 0.25)]


def test_the_event_file_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with TensorBoardLog(tmp_path / "private") as log:
            log(RECORDS[0])
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(log.path).st_mode)
    assert mode & 0o077 == 0, oct(mode)
    assert mode & 0o600 == 0o600


def test_writing_loads_no_framework_and_the_import_needs_no_tensorboard(tmp_path):
    code = (
        "import sys; sys.modules['tensorboard'] = None\n"  # as if not installed
        "from parity.training.tensorboard import TensorBoardLog\n"
        "del sys.modules['tensorboard']\n"
        f"with TensorBoardLog({str(tmp_path)!r}) as log: log({{'step': 1, 'loss': 0.5}})\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
