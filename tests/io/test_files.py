"""Files we write honour the umask, like any other program's: 0644 under 022, 0600 under 077.

safetensors' writer creates its file 0600 whatever the umask, so a checkpoint's weights were
unreadable to a server running as another user while its config.json was readable.
"""

import os
import stat

import pytest

from parity.commands import main
from tests.helpers import tiny_hf_bert


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _modes(root):
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {p.relative_to(root.parent).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in paths}


def _expected(paths: dict, mask: int) -> dict:
    return {name: (0o777 if name.count("/") == 0 and "." not in name else 0o666) & ~mask for name in paths}


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True)
def test_init_save_pretrained_and_port_outputs_follow_the_umask(umask, tmp_path):
    tiny_hf_bert(tmp_path / "hf")
    assert main(["init", str(tmp_path / "ck"), "--backbone", str(tmp_path / "hf"), "--kernel-sizes", "2,3"]) == 0
    written = _modes(tmp_path / "ck")
    assert written["ck/model.safetensors"] == 0o666 & ~umask
    assert written == _expected(written, umask)

    from bertcnn_torch import BertCNN

    BertCNN.from_pretrained(tmp_path / "ck").save_pretrained(tmp_path / "saved")
    saved = _modes(tmp_path / "saved")
    assert saved["saved/model.safetensors"] == 0o666 & ~umask and saved == _expected(saved, umask)

    for dest in ("ported", "w.safetensors", "w.pt"):
        assert main(["port", str(tmp_path / "ck"), str(tmp_path / dest)]) == 0
        ported = _modes(tmp_path / dest)
        assert ported == _expected(ported, umask), dest
