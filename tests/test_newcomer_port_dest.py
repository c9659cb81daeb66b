"""`bertcnn port`: a destination's suffix names its format; an unknown suffix is refused, not made a folder."""

import pytest

from parity.commands import main


@pytest.mark.parametrize(
    ("dest", "fragment"),
    [
        ("x.onnx", "make ONNX with `bertcnn export`"),
        ("model.kears", "Unknown weight format suffix '.kears' for the destination"),
        ("ckpt.v2", "ending in '/', e.g. ckpt.v2/"),
    ],
)
def test_unknown_destination_suffix_exits_2_and_writes_nothing(tiny_ck, tmp_path, capsys, dest, fragment):
    assert main(["port", str(tiny_ck), str(tmp_path / dest)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bertcnn port: error: ") and fragment in err
    assert err.rstrip().endswith(f"Received: {str(tmp_path / dest)!r}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_a_trailing_slash_makes_any_name_a_directory(tiny_ck, tmp_path, capsys):
    assert main(["port", str(tiny_ck), str(tmp_path / "ckpt.v2") + "/"]) == 0
    assert "(checkpoint directory)" in capsys.readouterr().out
    assert (tmp_path / "ckpt.v2" / "model.safetensors").is_file()
