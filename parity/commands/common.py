"""What every command shares: exit codes, the usage error, argument types, the missing-package check."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Iterable

# 3: a report that could not run every check it was asked for (a Keras backend crashed);
# what finished is still reported. Kept apart from 1, which means a measured parity failure.
EXIT_OK, EXIT_PARITY, EXIT_INPUT, EXIT_INCOMPLETE = 0, 1, 2, 3


class UsageError(ValueError):
    """Bad command-line input."""


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def csv_ints(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers like 3,4,5."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 3,4,5. Received: {text!r}") from None


def label_list(text: str) -> tuple[str, ...]:
    """argparse type: distinct, non-empty comma-separated class names."""
    names = tuple(x.strip() for x in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct, non-empty comma-separated label names like neg,pos. Received: {text!r}"
        )
    return names


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(command: str, needs: Iterable[tuple[str, str, str]]) -> None:
    """Refuse, before any work, a run that would die halfway for want of a package; name the fix.

    `needs`: (module, what needs it, pyproject extra) for every optional package the run would import.
    """
    missing, seen = [], set()
    for module, why, extra in needs:
        if module not in seen and not installed(module):
            missing.append((module, why, extra))
        seen.add(module)
    if missing:
        extras = ",".join(dict.fromkeys(extra for _, _, extra in missing))
        raise ValueError(
            f"bertcnn {command} needs packages that are not installed: "
            + "; ".join(f"{m} (for {why})" for m, why, _ in missing)
            + f". Install them with `pip install 'bertcnn[{extras}]'` (in a clone: `pip install -e '.[{extras}]'`). "
            f"Received: {len(missing)} missing"
        )
