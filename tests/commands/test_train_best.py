"""`bertcnn train --keep-best / --early-stopping / --grad-accum` on the command line.

What DIR holds afterwards is judged from metrics.jsonl, not from the summary under test:
the kept epoch is the first one with the best logged eval metric; `predict`/`evaluate`
read the kept weights, `--resume` the last ones; refusals come before anything is written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from parity.commands import main
from parity.io.checkpoint import load_checkpoint
from parity.io.safetensors import read_safetensors
from tests.helpers import write_jsonl

RECIPE = ["--epochs", "4", "--batch-size", "4", "--lr", "3e-1", "--dtype", "float64", "--max-length", "20",
          "--framework", "torch"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train-best")
    write_jsonl(d / "train.jsonl", 17, seed=3)
    write_jsonl(d / "eval.jsonl", 11, seed=4)
    return d


def _args(files, ck, out, *extra):
    return ["train", "--checkpoint", str(ck), "--train", str(files / "train.jsonl"), "--eval",
            str(files / "eval.jsonl"), "--out", str(out), "--json", *RECIPE, *extra]  # fmt: skip


def _evals(out) -> list[dict]:
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [m for m in log if "eval_loss" in m]


@pytest.mark.parametrize("metric", ["loss", "accuracy"])
def test_keep_best_keeps_the_logged_best_epoch(metric, files, words_ck, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(files, words_ck, out, "--keep-best", metric)) == 0
    summary = json.loads(capsys.readouterr().out)
    evals = _evals(out)
    values = [m[f"eval_{metric}"] for m in evals]
    best = int(np.argmin(values) if metric == "loss" else np.argmax(values))  # the first best: ties keep the earlier
    assert summary["kept"] == {"epoch": best, "step": evals[best]["step"], "metric": metric, "value": values[best]}
    assert [m["best_epoch"] for m in evals][-1] == best
    _, kept = load_checkpoint(out)
    last = read_safetensors(out / "last.safetensors").tensors
    same = all(np.array_equal(kept[k], last[k]) for k in kept)
    assert same == (best == len(evals) - 1)


def test_early_stopping_ends_the_run_and_says_so(files, words_ck, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(_args(files, words_ck, out, "--keep-best", "accuracy", "--early-stopping", "1", "--epochs", "8"))
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    evals = _evals(out)
    acc = [m["eval_accuracy"] for m in evals]
    # Independently: the first epoch e with no accuracy above the best of epochs < e ends the run.
    stop = next((e for e in range(1, 8) if max(acc[: e + 1]) <= max(acc[:e])), None)
    if stop is None:
        pytest.skip(f"accuracy rose every epoch ({acc}): nothing to stop")
    assert len(evals) == stop + 1 and summary["early_stopped"] and summary["finished"]
    assert evals[-1]["early_stopped"] is True and summary["steps"] < 8 * 5
    assert main(["train", "--resume", "--out", str(out), "--train", str(files / "train.jsonl"),
                 "--framework", "torch"]) == 0  # fmt: skip
    assert "nothing to do" in capsys.readouterr().out


def test_grad_accum_on_the_command_line_equals_the_whole_batch(files, words_ck, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    base = [x if x != "3e-1" else "1e-2" for x in RECIPE] + ["--no-dropout"]
    common = ["train", "--checkpoint", str(words_ck), "--train", str(files / "train.jsonl"), "--json"]
    assert main([*common, "--out", str(a), *base, "--batch-size", "8"]) == 0
    assert main([*common, "--out", str(b), *base, "--batch-size", "2", "--grad-accum", "4"]) == 0
    sa, sb = (json.loads(x) for x in capsys.readouterr().out.replace("}\n{", "}\0{").split("\0"))
    assert sa["steps"] == sb["steps"] == 4 * 3  # 17 rows: 3 updates of <= 8 per epoch, the last of 1
    _, ta = load_checkpoint(a)
    _, tb = load_checkpoint(b)
    assert max(float(np.abs(ta[k] - tb[k]).max()) for k in ta) <= 1e-10


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--keep-best", "loss"], "add --eval FILE"),
        (["--early-stopping", "2"], "add --keep-best"),
        (["--keep-best", "f1"], "invalid choice"),
        (["--grad-accum", "0"], "--grad-accum"),
    ],
)
def test_refusals_exit_2_before_writing(extra, fragment, files, words_ck, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--checkpoint", str(words_ck), "--train", str(files / "train.jsonl"), "--out", str(out),
            *RECIPE, *extra]  # fmt: skip
    with pytest.raises(SystemExit) if fragment in ("invalid choice", "--grad-accum") else _Returns() as r:
        r.code = main(args)
    err = capsys.readouterr().err
    assert fragment in err.strip().splitlines()[-1]  # one line (argparse prints its usage above it)
    assert not out.exists()


class _Returns:
    """`main` returns its exit code (argparse's own refusals raise SystemExit(2) instead)."""

    code = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        assert self.code == 2
        return False


def test_resume_of_a_keep_best_run_needs_its_eval_file(files, words_ck, tmp_path, capsys, monkeypatch):
    from parity.commands.common import EXIT_INTERRUPTED
    from parity.commands.train_ui import Interrupts

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(Interrupts, "requested", lambda self: True)  # as if SIGTERM came at once: saved at step 0
        assert main(_args(files, words_ck, out, "--keep-best", "loss")) == EXIT_INTERRUPTED
    resume = ["train", "--resume", "--out", str(out), "--train", str(files / "train.jsonl"), "--framework", "torch"]
    before = (out / "trainer_state.json").read_bytes()
    capsys.readouterr()
    assert main(resume) == 2
    err = capsys.readouterr().err
    assert "--resume needs the same --eval FILE" in err and err.strip().endswith("Received: no --eval")
    assert (out / "trainer_state.json").read_bytes() == before
    assert main([*resume, "--eval", str(files / "eval.jsonl"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["finished"] and summary["kept"]["metric"] == "loss"
