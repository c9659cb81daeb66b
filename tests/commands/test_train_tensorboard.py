"""`bertcnn train --tensorboard LOGDIR`: TensorBoard's own reader sees what metrics.jsonl says, in both frameworks.

Every point is compared with the record of metrics.jsonl at its step (as float32, TensorBoard's
scalar type); the two frameworks log the same tag set; a resumed run's log replaces the points a
killed run wrote past its last save; bad LOGDIRs are refused before anything is written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from parity.commands import main
from parity.training.tensorboard import TAGS, TensorBoardLog
from tests.helpers import write_jsonl

RECIPE = ["--epochs", "2", "--batch-size", "4", "--lr", "1e-2", "--warmup-steps", "2", "--max-length", "20"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train-tb")
    write_jsonl(d / "train.jsonl", 15, seed=7)
    write_jsonl(d / "eval.jsonl", 6, seed=8)
    return d


def _args(files, ck, out, logdir, framework="torch", *extra):
    return ["train", "--checkpoint", str(ck), "--train", str(files / "train.jsonl"), "--eval",
            str(files / "eval.jsonl"), "--out", str(out), "--framework", framework, "--tensorboard", str(logdir),
            *RECIPE, *extra]  # fmt: skip


def _scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(out) -> dict[str, list[tuple[int, float]]]:
    """From metrics.jsonl alone: each TAGS key's (step, float32 value), in order."""
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    found: dict[str, list] = {}
    for record in log:
        for key, tag in TAGS.items():
            if key in record:
                found.setdefault(tag, []).append((record["step"], float(np.float32(record[key]))))
    return found


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_every_point_is_the_metrics_record(framework, files, words_ck, tmp_path, capsys):
    out, logdir = tmp_path / "run", tmp_path / "logs" / framework  # logs/ made on the way, as docs/training.md runs it
    assert main(_args(files, words_ck, out, logdir, framework)) == 0
    got, want = _scalars(logdir), _expected(out)
    assert got == want
    assert sorted(got) == sorted(TAGS.values())  # loss, lr, grad norm per update; eval loss/accuracy/F1 per epoch
    assert len(got["train/loss"]) == 8 and len(got["eval/accuracy"]) == 2


def test_a_resumed_run_replaces_what_a_killed_run_logged_past_its_save(files, words_ck, tmp_path, monkeypatch):
    from parity.commands.common import EXIT_INTERRUPTED
    from parity.commands.train_ui import Interrupts

    out, logdir = tmp_path / "run", tmp_path / "tb"
    calls = iter(range(100))
    with monkeypatch.context() as m:
        m.setattr(Interrupts, "requested", lambda self: next(calls) >= 3)  # stop (saved) after update 3
        assert main(_args(files, words_ck, out, logdir)) == EXIT_INTERRUPTED
    with TensorBoardLog(logdir) as killed:  # a run killed after its save had logged two more updates
        for step in (4, 5):
            killed({"step": step, "loss": 99.0, "lr": 99.0, "grad_norm": 99.0})
    assert 99.0 in [v for _, v in _scalars(logdir)["train/loss"]]
    resume = ["train", "--resume", "--out", str(out), "--train", str(files / "train.jsonl"), "--eval",
              str(files / "eval.jsonl"), "--framework", "torch", "--tensorboard", str(logdir)]  # fmt: skip
    assert main(resume) == 0
    assert _scalars(logdir) == _expected(out)  # one point per step, the resumed run's


@pytest.mark.parametrize(
    ("where", "fragment"),
    [("file", "is a file"), ("in_out", "must not be, contain or lie inside"), ("train", "an input of this run")],
)
def test_bad_logdirs_are_refused_before_any_work(where, fragment, files, words_ck, tmp_path, capsys):
    out = tmp_path / "run"
    logdir = {"file": files / "train.jsonl", "in_out": out / "tb", "train": files}[where]
    if where == "in_out":
        out.mkdir()
    assert main(_args(files, words_ck, out, logdir)) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and err.count("\n") == 0 and "Received: " in err
    assert not out.exists() or not any(out.iterdir())
