"""The one JSON reader: small JSON files (configs, manifests, training state) parsed as data, one error line each.

At the bottom of the core (the config reads its file with it), re-exported by `parity.io.files`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 16 * 1024 * 1024  # any config.json / state file: larger is not one of ours


def json_error(e: BaseException) -> str:
    """Why a text is not JSON Python can read, in words (the one wording for every JSON the project reads)."""
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    if isinstance(e, UnicodeDecodeError):
        return "its bytes are not UTF-8"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, ValueError) and "integer string conversion" in str(e):
        return f"it holds an integer of more than {sys.get_int_max_str_digits()} digits"
    return type(e).__name__


def parse_json(text: str | bytes, where: str | os.PathLike, what: str) -> Any:
    """`json.loads`, any failure one ValueError naming `where` (a file, or a file and the part of it)."""
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON or UTF-8, an integer over Python's digit limit
        raise ValueError(
            f"{where}: not valid JSON ({json_error(e)}); expected {what}. Received: {str(where)!r}"
        ) from None


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
    return parse_json(p.read_bytes(), p, what)
