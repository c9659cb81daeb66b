"""Header bombs: files small on disk that declare gigabytes. Every size is bounded from what the file
declares against what the model expects and against the bytes really there, before anything is allocated:
refused with one line naming the file, exit 2, and the reader's peak memory stays small."""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.formats import REGISTERED_NAME
from parity.io.keras_h5 import h5_datasets
from parity.io.reader import read_weights
from parity.layout import rows
from tests.helpers import TINY

MIB = 1024 * 1024
# A model whose word embeddings alone are 120 MB: what a hostile config plus an unwritten h5 declares.
BIG = BertCnnConfig(**dict(TINY, vocab_size=2_500_007))


def peak_of(call) -> tuple[BaseException | None, int]:
    """(what `call()` raised, the peak bytes it allocated through Python and numpy)."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except Exception as e:  # the test asserts what was raised
        raised = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


def write_h5(path, config: BertCnnConfig, *, unwritten=(), storage=None) -> None:
    """A Keras-layout weights file for `config`; datasets in `unwritten` are declared at full size, never written.

    `storage` maps a dataset to "chunked" (gzip) or "external" (its bytes in another file).
    """
    by_path = {r.keras_path: r for r in rows(config)}
    storage = storage or {}
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        for ds, kp in h5_datasets(config).items():
            shape = by_path[kp].op.keras_shape(by_path[kp].torch_shape)
            if ds in unwritten:
                f.create_dataset(ds, shape=shape, dtype="f4")
            elif storage.get(ds) == "chunked":
                f.create_dataset(ds, data=np.zeros(shape, "f4"), compression="gzip")
            elif storage.get(ds) == "external":
                outside = Path(path).with_name("outside.bin")
                outside.write_bytes(bytes(int(np.prod(shape)) * 4))
                f.create_dataset(ds, shape=shape, dtype="f4", external=[(str(outside), 0, int(np.prod(shape)) * 4)])
            else:
                f.create_dataset(ds, data=rng.standard_normal(shape).astype("f4"))


def _port(argv: list[str], capsys) -> tuple[int, str]:
    rc = main(["port", *argv])
    return rc, capsys.readouterr().err


def test_unwritten_h5_datasets_are_refused_before_they_are_read(tmp_path, capsys):
    """A 120 MB model declared in a file of a few KB: HDF5 would hand back its fill value, allocated in full."""
    src, cfg = tmp_path / "w.weights.h5", tmp_path / "config.json"
    cfg.write_text(BIG.to_json())
    write_h5(src, BIG, unwritten={"bert/embeddings/word_embeddings/vars/0"})
    assert src.stat().st_size < 200_000
    raised, peak = peak_of(lambda: read_weights(src, config=cfg))
    assert isinstance(raised, ValueError), raised
    assert str(src) in str(raised) and "word_embeddings" in str(raised) and "never written" in str(raised)
    assert peak < 20 * MIB, peak
    rc, err = _port([str(src), str(tmp_path / "out.safetensors"), "--config", str(cfg)], capsys)
    assert rc == 2 and err.count("\n") == 1 and str(src) in err and "Received:" in err
    assert not (tmp_path / "out.safetensors").exists()


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_h5_datasets_must_hold_their_bytes_in_the_file(tmp_path_factory, data):
    """Any mix of unwritten, compressed and external datasets: refused, naming the file and a dataset."""
    config = BertCnnConfig(**TINY, head_hidden_size=data.draw(st.sampled_from([None, 7])))
    names = sorted(h5_datasets(config))
    odd = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True), label="odd datasets")
    kinds = {ds: data.draw(st.sampled_from(["unwritten", "chunked", "external"]), label=ds) for ds in odd}
    d = tmp_path_factory.mktemp("h5")
    src = d / "w.weights.h5"
    write_h5(src, config, unwritten={k for k, v in kinds.items() if v == "unwritten"},
             storage={k: v for k, v in kinds.items() if v != "unwritten"})  # fmt: skip
    with pytest.raises(ValueError) as e:
        read_weights(src, config=config)
    msg = str(e.value)
    assert msg.startswith(f"{src}: dataset ") and any(ds in msg for ds in odd) and "Received:" in msg


def test_a_written_h5_is_read(tmp_path):
    """The storage check passes what it should: a file with every dataset written is read, values intact."""
    write_h5(tmp_path / "w.weights.h5", BertCnnConfig(**TINY))
    w = read_weights(tmp_path / "w.weights.h5", config=BertCnnConfig(**TINY))
    assert set(w.tensors) == {r.torch_name for r in rows(BertCnnConfig(**TINY))}


def keras_archive(path, config: BertCnnConfig | None, h5: bytes = b"", config_json: bytes | None = None) -> None:
    cfg = {"registered_name": REGISTERED_NAME, "config": {"config": config.to_dict() if config else {},
                                                          "dtype": "float32"}}  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", json.dumps(cfg) if config_json is None else config_json)
        zf.writestr("model.weights.h5", h5)


def test_a_keras_archive_with_unwritten_weights_is_refused(tmp_path, capsys):
    h5 = tmp_path / "inner.h5"
    write_h5(h5, BIG, unwritten={"bert/embeddings/word_embeddings/vars/0"})
    src = tmp_path / "m.keras"
    keras_archive(src, BIG, h5.read_bytes())
    raised, peak = peak_of(lambda: read_weights(src))
    assert isinstance(raised, ValueError) and str(raised).startswith(f"{src}: dataset "), raised
    assert peak < 20 * MIB, peak


def _lying_zip(path: Path, name: str, payload: bytes, declared: int) -> None:
    """An archive whose `name` member is `payload`, deflated, with `declared` as its uncompressed size."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr(zipfile.ZipInfo(name), payload, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("model.weights.h5", b"")
        zf.filelist[1].file_size = declared  # the central directory, written at close, is what readers trust


# Deflate's ratio is about 1000: 64 MB of spaces fit in ~64 KB.
_SPACES = b" " * (64 * MIB)


@settings(max_examples=8, deadline=None)
@given(declared=st.one_of(st.integers(0, 16 * MIB), st.integers(16 * MIB + 1, 2**44)))
def test_a_keras_config_that_inflates_past_its_declared_size_is_refused(tmp_path_factory, declared):
    """config.json declared at any size, inflating to 64 MB: never inflated whole."""
    src = tmp_path_factory.mktemp("zip") / "m.keras"
    _lying_zip(src, "config.json", _SPACES, declared)
    assert src.stat().st_size < MIB
    raised, peak = peak_of(lambda: read_weights(src))
    assert isinstance(raised, ValueError) and str(raised).startswith(f"{src}: "), raised
    assert "Received:" in str(raised) and "\n" not in str(raised)
    assert peak < 24 * MIB, peak  # the cap (16 MiB) plus one step, never the 64 MB


def test_other_zip_compressions_are_refused(tmp_path):
    """bzip2 and lzma inflate each read in one unbounded call: only stored and deflated members are read."""
    src = tmp_path / "m.keras"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("config.json", "{}", compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(ValueError, match="compressed with zip method 12"):
        read_weights(src)


def test_a_keras_config_with_a_huge_integer_names_the_file(tmp_path):
    src = tmp_path / "m.keras"
    keras_archive(src, None, config_json=b'{"registered_name": ' + b"1" * 5000 + b"}")
    with pytest.raises(ValueError) as e:
        read_weights(src)
    assert str(e.value).startswith(f"{src} (config.json): not valid JSON (it holds an integer of more than")


@pytest.mark.parametrize("where", ["checkpoint-dir", "keras"])
def test_a_config_declaring_a_huge_model_is_refused_before_its_table_is_built(tmp_path, where):
    """20,000 layers are 320,000 weight-table rows (100 million would be 1.6 billion): refused by arithmetic."""
    big = dict(BertCnnConfig(**TINY).to_dict(), num_hidden_layers=20_000)
    if where == "keras":
        src = tmp_path / "m.keras"
        keras_archive(src, None, config_json=json.dumps({"registered_name": REGISTERED_NAME,
                                                         "config": {"config": big, "dtype": "float32"}}))  # fmt: skip
    else:
        from tests.helpers import tiny_checkpoint

        src = tiny_checkpoint(tmp_path / "ck")
        (src / "config.json").write_text(json.dumps(big))
    raised, peak = peak_of(lambda: read_weights(src))
    assert isinstance(raised, ValueError) and str(raised).startswith(str(src)), raised
    assert "past the 2,000,000,000 parameters" in str(raised) and "num_hidden_layers=20000" in str(raised)
    assert peak < 20 * MIB, peak
