"""What both trainers share around their own update: position in the plan, saves, the log.

The trainers differ only in how one update is computed (a torch loop; Keras `fit`).
Everything else — which batch comes next, when to save, what a log record holds, how
the held-out set is scored — is here, once, so the two cannot drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from parity.tokenize import row_length
from parity.training.objective import row_weights
from parity.training.plan import batch_plan, micro_batches
from parity.training.recipe import BEST_METRICS
from parity.training.schedule import linear_warmup_decay
from parity.training.state import Snapshot, TrainerState, pad_batch, save_snapshot

Progress = Callable[[dict[str, Any]], None]
# Held-out figures an epoch's log record carries (as eval_<name>) when the evaluation gives them.
EVAL_LOGGED = ("loss", "accuracy", "macro_f1", "micro_f1")
Predict = Callable[[dict[str, np.ndarray]], np.ndarray]  # model inputs -> logits (B, num_labels)


@dataclass
class Run:
    """One training run over pre-encoded rows, from `start` (a fresh or a resumed snapshot)."""

    start: Snapshot
    encoded: Sequence[tuple[np.ndarray, np.ndarray]]  # (ids, type_ids) per row, truncated, unpadded
    labels: np.ndarray  # (N,) int64 label ids; multi-label: (N, num_labels) 0/1
    out: str | os.PathLike | None = None  # training directory; None: keep everything in memory
    save_every: int | None = None  # also save every N updates (always at each epoch end and the end)
    tokenizer_from: str | os.PathLike | None = None
    evaluate: Callable[[Predict], dict[str, Any]] | None = None  # per-epoch held-out metrics
    progress: Progress | None = None  # called with each log record (updates and epochs)
    save_start: bool = False  # a new run: save the start (step 0) before the first update
    stop: Callable[[], bool] | None = None  # asked after each update: True stops the run there, saved (SIGTERM)
    started: Callable[[], None] | None = None  # called once the run is set to train (after the step-0 save)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.encoded) != len(self.labels):
            raise ValueError(f"One label per row. Received: {len(self.encoded)} rows, {len(self.labels)} labels")
        if self.save_every is not None and self.save_every < 1:
            raise ValueError(f"save_every must be a positive number of updates. Received: {self.save_every}")
        st, r = self.start.state, self.start.recipe
        if st.num_rows != len(self.labels):
            raise ValueError(
                f"The training state was saved for {st.num_rows} rows; this data has {len(self.labels)}. "
                f"Resume with the same training file. Received: {len(self.labels)} rows"
            )
        config = self.start.config
        if r.class_weights is not None and len(r.class_weights) != config.num_labels:
            raise ValueError(f"class_weights need one weight per class of the model ({config.num_labels}). "
                             f"Received: {len(r.class_weights)} weights")  # fmt: skip
        if config.multi_label != (self.labels.ndim == 2) or (config.multi_label and
                                                            self.labels.shape[1] != config.num_labels):  # fmt: skip
            raise ValueError(f"A {config.problem_type} model trains on labels of shape "
                             f"{('(N, num_labels)' if config.multi_label else '(N,)')}. "
                             f"Received: shape {self.labels.shape}")  # fmt: skip
        # Each row's weight in its update's normaliser (None: 1 each, the row count): `parity.training.objective`.
        self.row_weights = row_weights(self.labels, r.class_weights, config.multi_label)
        self.plan = batch_plan([row_length(row) for row in self.encoded], r)
        self.steps_per_epoch = r.steps_per_epoch(len(self.labels))
        self.total = r.total_steps(len(self.labels))
        self.warmup = r.warmup(len(self.labels))
        self.metrics = list(self.start.metrics)
        if r.keep_best is not None and self.evaluate is None and not st.finished:
            raise ValueError(f"keep_best={r.keep_best!r} picks the best epoch by held-out metrics: give the run an "
                             "evaluator (bertcnn train --eval FILE). Received: no evaluator")  # fmt: skip
        self.best, self.best_tensors = st.best, self.start.best_tensors  # a resumed run goes on comparing
        self.early_stopped = st.early_stopped
        # --tune-thresholds: the latest evaluation's per-label thresholds, and the kept epoch's (config.json's).
        self.thresholds = self.best_thresholds = self.start.config.thresholds
        self.agree: Callable[[bool], bool] = bool  # data parallel: True when any rank's flag is (set by the trainer)
        self.stopped = False  # the run stopped early, at a complete save, because `stop` said so
        self.saves = 0  # saves this run wrote

    @property
    def recipe(self):
        return self.start.recipe

    def factor(self, step: int) -> float:
        """lr multiplier of the update with 0-based index `step`."""
        return linear_warmup_decay(step, self.warmup, self.total)

    def remaining(self) -> list[tuple[int, int, int]]:
        """(epoch, batch, step) of every update still to do, in order."""
        st = self.start.state
        if st.finished:
            return []
        out, step = [], st.step
        for e in range(st.epoch, self.recipe.epochs):
            for b in range(st.batch if e == st.epoch else 0, self.steps_per_epoch):
                out.append((e, b, step))
                step += 1
        return out

    def batch(self, epoch: int, batch: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Inputs padded to the longest row of the batch, and the labels."""
        idx = self.plan[epoch][batch]
        return pad_batch(self.encoded, idx, self.start.config.pad_token_id), self.labels[idx]

    def micro(self, epoch: int, batch: int) -> list[tuple[dict[str, np.ndarray], np.ndarray, float]]:
        """The update's micro-batches: (inputs padded to their own longest row, labels, weight n_k / U).

        One micro-batch of weight exactly 1.0, the whole update as `batch` gives it, when
        `grad_accum` is 1; the weighted sum of the micro-batches' mean losses is the mean loss
        of the update's rows.
        """
        if self.recipe.grad_accum == 1:
            return [(*self.batch(epoch, batch), 1.0)]
        pad, update = self.start.config.pad_token_id, self.plan[epoch][batch]
        parts = micro_batches(update, self.recipe)
        if self.row_weights is not None:  # weighted: a micro-batch's share of the update's sum of row weights
            total = self.row_weights[update].sum()
            parts = [(rows_, float(self.row_weights[rows_].sum() / total)) for rows_, _ in parts]
        return [(pad_batch(self.encoded, rows_, pad), self.labels[rows_], w) for rows_, w in parts]

    def position_after(self, epoch: int, batch: int, step: int) -> TrainerState:
        nxt = (epoch, batch + 1) if batch + 1 < self.steps_per_epoch else (epoch + 1, 0)
        return replace(self.start.state, step=step + 1, epoch=nxt[0], batch=nxt[1], finished=step + 1 >= self.total)

    def log(self, record: dict[str, Any]) -> None:
        self.metrics.append(record)
        if self.progress is not None:
            self.progress(record)

    def log_update(self, epoch: int, batch: int, step: int, loss: float, grad_norm: float | None) -> None:
        record = {"step": step + 1, "epoch": epoch, "batch": batch, "loss": float(loss),
                  "lr": self.recipe.lr * self.factor(step)}  # fmt: skip
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
            mx = self.recipe.max_grad_norm
            record["clipped"] = bool(mx is not None and grad_norm > mx)
        self.log(record)

    def end_of_epoch(self, epoch: int, step: int, predict: Predict, current: Callable[[], Snapshot]) -> bool:
        """Held-out metrics for the epoch that just ended (when an evaluator is set); True: stop early.

        With `keep_best`, an epoch better than every earlier one (strictly, as HF's
        `metric_for_best_model` and Keras' `ModelCheckpoint(save_best_only=True)`) becomes
        the kept one; with `early_stopping` N, N epochs in a row without one end the run
        (Keras' `EarlyStopping(patience=N)`).
        """
        if self.evaluate is None:
            return False
        result = self.evaluate(predict)
        if self.recipe.tune_thresholds:
            self.thresholds = tuple(result["thresholds"])
        record = {"epoch": epoch, "step": step + 1}
        record.update({f"eval_{k}": result[k] for k in EVAL_LOGGED if k in result})
        r, early = self.recipe, False
        if r.keep_best is not None:
            value = float(result[r.keep_best])
            old = None if self.best is None else self.best["value"]
            if old is None or (value > old if BEST_METRICS[r.keep_best] else value < old):
                self.best = {"epoch": epoch, "step": step + 1, "value": value}
                self.best_thresholds = self.thresholds
                self.best_tensors = {k: np.array(v) for k, v in current().tensors.items()}
            record["best_epoch"] = self.best["epoch"]
            patience = r.early_stopping
            # All ranks evaluated the same weights on the same rows; agreeing costs one reduction a epoch.
            early = bool(self.agree(patience is not None and epoch - self.best["epoch"] >= patience))
            early = early and step + 1 < self.total
            if early:
                record["early_stopped"] = True
                self.early_stopped = True
        self.log(record)
        return early

    def stamp(self, snap: Snapshot) -> Snapshot:
        """`snap` with what the run decided about it: the log so far, the kept epoch, its weights, an early stop."""
        kept = self.best_thresholds if self.recipe.keep_best is not None and self.best else self.thresholds
        if kept is not None:  # the thresholds chosen for the weights DIR's checkpoint holds
            snap = replace(snap, config=snap.config.replace(thresholds=kept))
        if self.recipe.keep_best is None:
            return replace(snap, metrics=list(self.metrics))
        state = replace(snap.state, best=self.best, early_stopped=self.early_stopped,
                        finished=snap.state.finished or self.early_stopped)  # fmt: skip
        return replace(snap, state=state, best_tensors=self.best_tensors, metrics=list(self.metrics))

    def begin(self) -> bool:
        """Before the first update: a new run's step-0 save; True when a stop was asked already (DIR is whole).

        Up to here an interrupt stops at once (start-up); `started` says that from now on
        it stops after an update, with a save.
        """
        if self.save_start and self.out is not None:
            self.save(self.start)
        if self.started is not None:
            self.started()
        self.stopped = self._stop_asked()
        return self.stopped

    def after_update(
        self, epoch: int, batch: int, step: int, predict: Predict, snapshot: Callable[[], Snapshot]
    ) -> bool:
        """After update `step`: the epoch's evaluation, the saves; True when the run stops here (saved first).

        A stop asked during the last update changes nothing: the run ends there anyway. Under
        data parallel every rank asks at the same updates and all stop at the same one. An
        early stop (`early_stopping`) ends the run finished, at the epoch's save.
        """
        taken: list[Snapshot] = []

        def current() -> Snapshot:  # one copy of the weights per update at most
            if not taken:
                taken.append(snapshot())
            return taken[0]

        early = batch + 1 == self.steps_per_epoch and self.end_of_epoch(epoch, step, predict, current)
        stop = not early and step + 1 < self.total and self._stop_asked()
        if self.wants_save(batch, step) or (stop and self.out is not None):
            self.save(current())
        self.stopped = stop
        return stop or early

    def _stop_asked(self) -> bool:
        return bool(self.agree(bool(self.stop is not None and self.stop())))

    def wants_save(self, batch: int, step: int) -> bool:
        if self.out is None:
            return False
        end_of_epoch = batch + 1 == self.steps_per_epoch
        return end_of_epoch or (self.save_every is not None and (step + 1) % self.save_every == 0)

    def save(self, snap: Snapshot) -> None:
        save_snapshot(self.out, self.stamp(snap), tokenizer_from=self.tokenizer_from)
        self.saves += 1


def evaluator(
    encoded: Sequence[tuple[np.ndarray, np.ndarray]],
    labels: np.ndarray,
    label_names: Sequence[str],
    *,
    batch_size: int,
    pad_token_id: int,
    multi_label: bool = False,
    tune: bool = False,
    thresholds: Sequence[float] | None = None,
) -> Callable[[Predict], dict[str, Any]]:
    """Scores a model on held-out rows: logits in file-order batches, then the shared metrics.

    Multi-label: the labels are an (N, num_labels) 0/1 matrix, scored at `thresholds`; with
    `tune`, at per-label thresholds chosen on these rows (`tune_thresholds`), returned under
    "thresholds" for the run to save.
    """
    from parity.training.metrics import evaluate_logits
    from parity.training.multilabel import evaluate_multilabel, tune_thresholds

    def run(predict: Predict) -> dict[str, Any]:
        idx = np.arange(len(encoded))
        logits = np.concatenate([predict(pad_batch(encoded, idx[i : i + batch_size], pad_token_id))
                                 for i in range(0, len(idx), batch_size)])  # fmt: skip
        if not multi_label:
            return evaluate_logits(logits, np.asarray(labels), tuple(label_names))
        chosen = tune_thresholds(logits, labels) if tune else thresholds
        return evaluate_multilabel(logits, np.asarray(labels), tuple(label_names), chosen)

    return run
