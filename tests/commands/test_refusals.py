"""Inputs that raised tracebacks (exit 1) are refused in one line, exit 2, before any work is written."""

from __future__ import annotations

import shutil

import pytest

from parity.commands import main


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("content", ['{"model": {"type": "WordPiece"', "{}", "\x00\x01 not json"])
def test_a_damaged_tokenizer_is_refused_naming_it(words_ck, tmp_path, capsys, command, content):
    """train and port said so already; predict and evaluate raised the tokenizers library's bare Exception."""
    ck = shutil.copytree(words_ck, tmp_path / "ck")
    (ck / "tokenizer.json").write_text(content)
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "w5 w6", "label": 1}\n')
    args = ["w5 w6"] if command == "predict" else ["--eval", str(data)]
    rc = main([command, "--checkpoint", str(ck), "--framework", "torch", *args])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "" and len(captured.err.strip().splitlines()) == 1, captured.err[-2000:]
    assert str(ck / "tokenizer.json") in captured.err and "not a readable tokenizer" in captured.err
    assert "Received:" in captured.err


def test_init_refuses_a_head_too_large_to_build(tmp_path, capsys):
    """--num-filters 1000000000: 4.6 trillion parameters, a MemoryError traceback before; now refused first."""
    rc = main(["init", str(tmp_path / "ck"), "--num-filters", "1000000000"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err[-2000:]
    assert "2,000,000,000 parameters" in err and "--num-filters" in err and "num_filters=1000000000" in err
    assert not (tmp_path / "ck").exists() and list(tmp_path.iterdir()) == []
