"""Untrusted input: code-carrying pickles, lying headers, damaged files. Clean exit 2, nothing run, nothing written."""

from __future__ import annotations

import json
import os
import pickle
import resource
import zipfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.commands import main
from parity.commands.port import port
from parity.config import BertCnnConfig
from tests.helpers import TINY, tiny_checkpoint


class _Payload:
    """Unpickling this creates `marker`: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _run(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("container", ["raw-pickle", "torch-zip"])
def test_pickle_carrying_code_is_refused_unrun(tmp_path, capsys, container):
    marker, proof = tmp_path / "pwned", tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof)))  # the payload is live: plain unpickling runs it
    assert proof.is_dir()
    src = tmp_path / "evil.pt"
    if container == "raw-pickle":
        src.write_bytes(pickle.dumps({"fc.weight": _Payload(marker)}))
    else:
        torch.save({"fc.weight": _Payload(marker)}, src)
    (tmp_path / "config.json").write_text(BertCnnConfig(**TINY).to_json())
    rc, err = _run(["port", str(src), str(tmp_path / "out"), "--config", str(tmp_path / "config.json")], capsys)
    assert rc == 2 and not marker.exists() and not (tmp_path / "out").exists()
    assert "weights_only=True" in err and err.count("\n") == 1


def _header(obj) -> bytes:
    raw = json.dumps(obj).encode()
    return len(raw).to_bytes(8, "little") + raw


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("w.safetensors", (2**62).to_bytes(8, "little") + b"{}", "header claims"),
        ("w.safetensors", _header({"fc.weight": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}}),
         "data section has 0 bytes"),
        ("w.safetensors", _header({"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}) + bytes(8),
         "a floating dtype"),
        ("w.safetensors", b"", "too short"),
        ("w.safetensors", b"\x89PNG\r\n\x1a\n" + bytes(64), "header claims"),
        ("w.pt", b"", "the file is empty"),
        ("w.pt", b"not a pickle at all", "weights_only=True"),
        ("m.keras", b"hello", "not a zip archive"),
        ("w.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(40), "not a readable Keras weights file"),
        ("w.h5", b"x", "legacy Keras 2"),
        ("w.txt", b"x", "Unknown weight format"),
    ],
)  # fmt: skip
def test_broken_files_get_one_clean_line(tmp_path, capsys, name, content, says):
    (tmp_path / name).write_bytes(content)
    (tmp_path / "config.json").write_text(BertCnnConfig(**TINY).to_json())
    rc, err = _run(
        ["port", str(tmp_path / name), str(tmp_path / "out"), "--config", str(tmp_path / "config.json")], capsys
    )
    assert rc == 2 and says in err
    assert err.count("\n") == 1 and err.startswith("bertcnn port: error:") and "Received:" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "config.json"])


def test_truncated_file_and_directory_without_config(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck")
    data = (tmp_path / "ck" / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    rc, err = _run(["port", str(tmp_path / "cut.safetensors"), str(tmp_path / "o.pt")], capsys)
    assert rc == 2 and "bytes" in err and err.count("\n") == 1
    (tmp_path / "ck" / "config.json").unlink()
    rc, err = _run(["port", str(tmp_path / "ck"), str(tmp_path / "o.pt")], capsys)
    assert rc == 2 and "config.json is missing" in err
    assert not (tmp_path / "o.pt").exists()


def test_foreign_keras_archive_is_not_deserialised(tmp_path, capsys):
    """A Lambda layer's config would run code if deserialised; we only read JSON and refuse."""
    src = tmp_path / "lambda.keras"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {"function": "os.system"}}))
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"")
    rc, err = _run(["port", str(src), str(tmp_path / "o.pt")], capsys)
    assert rc == 2 and "not a bertcnn model" in err


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("valid")
    tiny_checkpoint(root / "ck")
    (root / "config.json").write_text(BertCnnConfig(**TINY).to_json())
    out = {}
    for name in ("w.safetensors", "w.pt", "m.keras", "w.weights.h5"):
        port(root / "ck", root / name)
        out[name] = (root / name).read_bytes()
    out["ck/model.safetensors"] = (root / "ck" / "model.safetensors").read_bytes()
    return root, out


_mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("head"), st.binary(min_size=1, max_size=16)),
)


def _mutate(data: bytes, m) -> bytes:
    kind, arg = m
    if kind == "truncate":
        return data[: int(arg * len(data))]
    if kind == "head":
        return arg + data[len(arg) :]
    b = bytearray(data)
    for pos, x in arg:
        b[min(int(pos * len(b)), len(b) - 1)] ^= x
    return bytes(b)


@pytest.mark.parametrize("name", ["w.safetensors", "ck/model.safetensors", "w.pt", "m.keras", "w.weights.h5"])
@settings(max_examples=15, deadline=None)
@given(m=_mutations)
def test_corrupted_inputs_fail_cleanly(valid_files, tmp_path_factory, name, m):
    root, originals = valid_files
    work = tmp_path_factory.mktemp("fuzz")
    src = work / name
    if name.startswith("ck/"):
        tiny_checkpoint(work / "ck")
        src = work / "ck"
    (work / name).write_bytes(_mutate(originals[name], m))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        port(src, work / "out.safetensors", config=root / "config.json" if name.endswith((".pt", ".h5")) else None)
    except (ValueError, FileNotFoundError):
        assert not (work / "out.safetensors").exists()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200 * 1024  # KiB: no header-driven allocation
    assert not [p for p in work.iterdir() if ".port-" in p.name]
