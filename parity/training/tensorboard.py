"""TensorBoard scalars from the trainer's metrics records, one writer for both builds.

Users who come from the HF Trainer (`report_to="tensorboard"`) or Keras `fit` (its TensorBoard
callback) read training curves in TensorBoard. Both trainers hand every metrics.jsonl record to
`TensorBoardLog` (`bertcnn train --tensorboard DIR`), so a PyTorch run and a Keras run log the same
tags (`TAGS`) and overlay in one chart, and every point is the value in metrics.jsonl (stored as
float32, TensorBoard's scalar type).

Only the `tensorboard` package is used (its record format and protos, imported when a log is
opened): no torch, TensorFlow or Keras. Its `EventFileWriter` (under torch's `SummaryWriter`) is
not: it opens files through `tensorboard.compat.tf`, which imports TensorFlow whenever TensorFlow is
installed (seconds, and the Keras build's framework inside a torch run). The events are what
`SummaryWriter` writes: a `brain.Event:2` header, `simple_value` scalars, and on resume a
`SessionLog.START` at `purge_step`. Files are opened with `open`, so the umask applies.
"""

from __future__ import annotations

import itertools
import os
import socket
import time

__all__ = ["TAGS", "TensorBoardLog"]

# metrics.jsonl key -> TensorBoard tag; the same in both builds.
TAGS = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
        "eval_loss": "eval/loss", "eval_accuracy": "eval/accuracy", "eval_macro_f1": "eval/macro_f1"}  # fmt: skip

PREFIX = "events.out.tfevents."
_serial = itertools.count()  # tells apart files one process starts in the same second, as tensorboard does


def _new_event_file(logdir: str) -> str:
    """A path for a new event file whose name sorts after every event file already in `logdir`.

    TensorBoard reads a run's files in name order, and a resumed run's SessionLog START hides only
    the points read before it. Names carry whole seconds (then host, pid, a serial), so a file
    started in the same second as an earlier one may sort first: wait for the next second then
    (at most 2 s, in case an earlier file's clock ran ahead).
    """
    earlier = max((n for n in os.listdir(logdir) if n.startswith(PREFIX)), default="")
    host, pid, deadline = socket.gethostname(), os.getpid(), time.monotonic() + 2.0
    while True:
        now = time.time()
        name = f"{PREFIX}{int(now):010d}.{host}.{pid}.{next(_serial)}"
        if name > earlier or time.monotonic() >= deadline:
            return os.path.join(logdir, name)
        time.sleep(max(0.0, min(int(now) + 1.01 - now, deadline - time.monotonic())))


class TensorBoardLog:
    """Writes the `TAGS` keys of each metrics record as scalars at the record's "step".

    `start_step > 0` (a resumed run) first writes a SessionLog START at step `start_step + 1`, as
    `SummaryWriter(purge_step=start_step + 1)` does: TensorBoard then drops the points an interrupted
    earlier run wrote to this logdir at steps > start_step, and shows this run's instead.
    Each record is flushed when written, so a running TensorBoard sees it.
    """

    def __init__(self, logdir, *, start_step: int = 0):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        start_step = int(start_step)
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0. Received: {start_step}")
        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)
        self.path = _new_event_file(self.logdir)
        self._file = open(self.path, "xb")  # noqa: SIM115 (closed by close)
        self._records = RecordWriter(self._file)
        source = event_pb2.SourceMetadata(writer="parity.training.tensorboard")
        self._write(self._event(file_version="brain.Event:2", source_metadata=source))
        if start_step > 0:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(self._event(step=start_step + 1, session_log=start))
        self.flush()

    def _write(self, event) -> None:
        event.wall_time = time.time()
        self._records.write(event.SerializeToString())

    def __call__(self, record: dict) -> None:
        values = [self._summary.Value(tag=tag, simple_value=float(record[key]))
                  for key, tag in TAGS.items() if record.get(key) is not None]  # fmt: skip
        if values:
            self._write(self._event(step=int(record["step"]), summary=self._summary(value=values)))
            self.flush()

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
