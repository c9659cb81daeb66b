"""Framework chatter is not ours to show: C++ log lines on stderr are filtered, everything else passes.

TensorFlow prints absl/oneDNN start-up lines and LiteRT an XNNPACK INFO line straight to
file descriptor 2, before any Python setting can reach them (TF_CPP_MIN_LOG_LEVEL does not
cover absl's pre-initialisation messages). Around the few calls that print them, stderr's
descriptor is captured to a file; afterwards the lines that match `NOISE` are dropped and
every other line (a real error, a warning we did not expect) is written to stderr as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

NOISE = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"),  # absl/glog INFO and WARNING lines (E and F pass)
    re.compile(r"To enable the following instructions: .* in other operations, rebuild TensorFlow .*"),
    re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."),
    # The `tensorflow` wheel (GPU-capable; TF Text requires it) on a machine without a usable GPU logs this one
    # E line at import and then runs on the CPU, as `tensorflow-cpu` does silently. Only this line of this file.
    re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"),
)


def is_noise(line: str) -> bool:
    """A whole line of framework chatter (never an error line)."""
    return any(p.fullmatch(line.rstrip("\r\n")) for p in NOISE)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture file descriptor 2 (where native code writes) for the block; then write back, in order, every
    line that is not framework noise (also when the block raises). No descriptor 2: left alone."""
    fd = 2
    try:
        os.fstat(fd)
    except OSError:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            for line in held:
                if not is_noise(line.decode("utf-8", "replace")):
                    os.write(fd, line)
