"""The one progress display: a tqdm bar on stderr for people watching, nothing in pipes or logs.

`predict`, `evaluate`, `port` and `train` all show progress through `bar`; a command that
is not on a terminal prints plain summary lines instead (train: one per epoch), never a
redrawn line. Progress never goes to stdout, where results go.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm


def watching() -> bool:
    """Whether a person is looking at stderr (a terminal), so a live bar helps rather than litters."""
    return sys.stderr.isatty()


def bar(total: int, *, unit: str, desc: str | None = None, enabled: bool | None = None, delay: float = 0.0,
        unit_scale: bool = False) -> tqdm:  # fmt: skip
    """A tqdm bar on stderr; disabled (a no-op) unless `enabled`, which defaults to `watching()`.

    `delay`: seconds before it first appears, so a quick run shows none.
    """
    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        file=sys.stderr,
        disable=not (watching() if enabled is None else enabled),
        delay=delay,
        mininterval=0.25,
        unit_scale=unit_scale,
        dynamic_ncols=True,
        leave=True,
    )


def counter(total: int, *, unit: str, enabled: bool | None = None) -> Callable[[int, int], None] | None:
    """A `progress(done, total)` callback drawing a bar, or None when nobody watches."""
    if not (watching() if enabled is None else enabled):
        return None
    b = bar(total, unit=unit, enabled=True)

    def update(done: int, total_: int) -> None:
        b.update(done - b.n)
        if done >= total_:
            b.close()

    return update
