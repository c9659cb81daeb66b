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
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^[IW]\d{4} [\d:. ]+\d+ (port|cpu_feature_guard|cuda_\w+|gpu_\w+)\.cc:\d+\] "),
    re.compile(r"^To enable the following instructions: .* in other operations, rebuild TensorFlow"),
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
)


def is_noise(line: str) -> bool:
    return any(p.search(line) for p in NOISE)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Capture fd 2 for the block; re-emit what is not framework noise (also when the block raises)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [ln for ln in capture.read().decode("utf-8", "replace").splitlines() if not is_noise(ln)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
