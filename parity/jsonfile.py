"""The one JSON reader: small JSON files (configs, manifests, training state) parsed as data, one error line each.

At the bottom of the core (the config reads its file with it), re-exported by `parity.io.files`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 16 * 1024 * 1024  # any config.json / state file: larger is not one of ours


def read_json(path: str | os.PathLike, *, what: str = "a JSON file", missing: str | None = None) -> Any:
    """Parse a small JSON file as data; every failure is one ValueError / FileNotFoundError line.

    `what` says what the file should be ("a config.json"); `missing` is the message for
    a file that does not exist (default: "<what> not found").
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(missing or f"{what[0].upper()}{what[1:]} not found. Received: {str(p)!r}")
    if p.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{p}: implausibly large; expected {what}. Received: {str(p)!r}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{p}: not valid JSON ({type(e).__name__}); expected {what}. Received: {str(p)!r}") from None
