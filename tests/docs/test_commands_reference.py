"""docs/commands.md and `bertcnn CMD --help` agree: every flag of every command, with its metavar, in both.

The reference is written for people (a table per command); this test reads each command's
section and its parser and fails on a flag the docs lack, a flag the docs invent, or a
different metavar (the one vocabulary: `--checkpoint CK` everywhere, `--json` a flag).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from parity.commands import COMMANDS, build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


def parser_flags(command: str) -> dict[str, str]:
    """--flag -> 'METAVAR' ('' for switches) as the command's parser defines them."""
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    out = {}
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        for option in action.option_strings:
            if action.nargs == 0:
                out[option] = ""
            else:
                out[option] = (
                    action.metavar or "{" + ",".join(action.choices) + "}"
                    if action.choices
                    else action.metavar or action.dest.upper()
                )
    return out


def doc_flags(command: str) -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## `bertcnn {command}`")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    found = {}
    for first_cell in re.findall(r"^\| ([^|]*`--[^|]*) \|", section, re.M):
        for flag, metavar in re.findall(r"`(--[a-z0-9-]+)( [^`]*)?`", first_cell):
            found[flag] = metavar.strip()
    return found


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_reference_lists_every_flag_of_the_help_and_no_other(command):
    ours, docs = parser_flags(command), doc_flags(command)
    assert sorted(set(ours) - set(docs)) == [], "flags missing from docs/commands.md"
    assert sorted(set(docs) - set(ours)) == [], "flags in docs/commands.md that --help does not have"
    assert {f: m for f, m in docs.items() if m != ours[f]} == {}, "metavars differ between the docs and --help"


def test_one_vocabulary_across_commands():
    """The same option means the same thing, and is spelt the same, in every command that has it."""
    flags = {c: parser_flags(c) for c in COMMANDS}
    for option in ("--checkpoint", "--config", "--tokenizer", "--threads", "--framework"):
        spelt = {c: f[option] for c, f in flags.items() if option in f}
        assert len(set(spelt.values())) == 1, (option, spelt)
    for command in ("predict", "evaluate", "train", "report"):
        assert flags[command].get("--json") == "", f"{command}: --json is a switch (JSON on stdout)"
