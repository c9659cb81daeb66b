"""One interrupt handler for every command: SIGINT/SIGTERM stop the command, and are never lost.

`bertcnn` (`parity.commands.main`) installs `handling()` around every command: a SIGINT
or SIGTERM is recorded and raised as KeyboardInterrupt, which unwinds the command
(every staged write removes its staging on the way out) to `main`, which prints one
line and exits 130. SIGTERM gets the same clean unwinding (its default would kill the
process and leave staging folders behind).

A KeyboardInterrupt can be swallowed: raised while Python runs a callback whose errors
are only reported (a garbage-collector callback, a finaliser: JAX registers one), the
command runs on. The request stays recorded, though: long loops call
`raise_if_requested()` between steps, every writer calls it right before it publishes
its output, and `main` honours it when the command returns, so a swallowed interrupt
still stops the command before anything is published.

Standard library only: the core (numpy-free) layer, importable by every writer.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["DEBOUNCE_S", "STOPS", "clear", "handling", "raise_if_requested", "request", "requested", "signal_name"]

STOPS = (signal.SIGINT, signal.SIGTERM)
# A repeat within this many seconds is the same interrupt (torchrun forwards the terminal's Ctrl-C to
# workers that got it already; a double press): not raised again while the first one unwinds.
DEBOUNCE_S = 1.0
_signal: int | None = None  # the first stop signal since `clear`
_at = 0.0  # when the handler last raised


def request(signum: int = signal.SIGINT) -> None:
    """Record a stop request (the handler does; so does train's own handler for its abort)."""
    global _signal
    if _signal is None:
        _signal = signum


def requested() -> bool:
    """Whether SIGINT/SIGTERM arrived since the command started (even if its KeyboardInterrupt was swallowed)."""
    return _signal is not None


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt when a stop was requested: call between long steps and right before publishing."""
    if _signal is not None:
        raise KeyboardInterrupt


def signal_name() -> str:
    """`SIGINT` / `SIGTERM`: what stopped the command (`SIGINT` when it was a KeyboardInterrupt without a signal)."""
    return signal.Signals(_signal).name if _signal is not None else "SIGINT"


def clear() -> None:
    global _signal, _at
    _signal, _at = None, 0.0


def _handle(signum: int, frame: Any) -> None:
    global _at
    request(signum)
    now = time.monotonic()
    if _at and now - _at < DEBOUNCE_S:
        return  # the same interrupt again: the first one's unwinding (its clean-up) goes on undisturbed
    _at = now
    raise KeyboardInterrupt


def _unraisable(default):
    """sys.unraisablehook that keeps a swallowed KeyboardInterrupt quiet (it is recorded; `main` reports it)."""

    def hook(info) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):
            request()
            return
        default(info)

    return hook


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """SIGINT/SIGTERM -> recorded + KeyboardInterrupt for the block; handlers and request state restored after.

    Handlers can be set only in the main thread (Python's rule); elsewhere the block runs with
    the process's handlers, and `requested` still works for what reaches it.
    """
    clear()
    old: dict[int, Any] = {}
    hook = sys.unraisablehook
    if threading.current_thread() is threading.main_thread():
        for s in STOPS:
            old[s] = signal.signal(s, _handle)
    sys.unraisablehook = _unraisable(hook)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = hook
        clear()
