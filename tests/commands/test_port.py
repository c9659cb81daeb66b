"""`bertcnn port`: bit-exact round trips between every format pair, strictness, atomic output.

A destination's suffix names its format (an unknown suffix is refused, not made a folder). A model
trained with the seeds' class ports as `bertcnn port seed.pt ck/ --backbone HF_BERT_DIR`: the BERT
sizes come from the backbone's config.json, the head from the tensors, the tokenizer from the
backbone, and pooling is the seeds' (mask_padding=False) unless asked otherwise.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from parity.commands import main
from parity.commands import port as port_command
from parity.commands.port import port
from parity.config import BertCnnConfig
from parity.io import formats as F
from parity.io.checkpoint import load_checkpoint, save_checkpoint
from parity.io.safetensors import read_safetensors, write_safetensors
from parity.tokenize import Tokenizer
from tests.helpers import TINY, random_inputs, random_tensors, seed_model, tiny_checkpoint, tiny_hf_bert

NAMES = {
    F.DIR: "ckpt",
    F.SAFETENSORS: "w.safetensors",
    F.TORCH: "w.pt",
    F.KERAS: "m.keras",
    F.KERAS_WEIGHTS: "w.weights.h5",
}


def _digest(path):
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def _assert_same(got, want):
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert (got[k].dtype, got[k].shape) == (v.dtype, v.shape), k
        assert got[k].tobytes() == v.tobytes(), k


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One file of every format per dtype, written from the same canonical tensors."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        root = tmp_path_factory.mktemp(dtype)
        config = BertCnnConfig(**TINY, head_hidden_size=7)
        tensors = random_tensors(config, seed=3, dtype=F.np_dtype(dtype))
        tiny_checkpoint(root / "src", config, seed=3, dtype=F.np_dtype(dtype))
        (root / "config.json").write_text(config.to_json())
        paths = {}
        for fmt, name in NAMES.items():
            port(root / "src", root / name)
            paths[fmt] = root / name
        out[dtype] = (root, tensors, paths)
    return out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("src_fmt", list(NAMES))
def test_every_pair_round_trips_bit_exact(sources, tmp_path, dtype, src_fmt):
    root, tensors, paths = sources[dtype]
    cfg = ["--config", str(root / "config.json")]
    for i, name in enumerate(NAMES.values()):
        dst, back = tmp_path / f"{i}-{name}", tmp_path / f"back-{i}"
        before = _digest(paths[src_fmt])
        assert main(["port", str(paths[src_fmt]), str(dst), *cfg]) == 0
        assert main(["port", str(dst), str(back), *cfg]) == 0
        assert _digest(paths[src_fmt]) == before  # the source is never modified
        _, got = load_checkpoint(back)
        _assert_same(got, tensors)


def test_seed_class_state_dict_to_keras_predicts_like_the_seed(tmp_path):
    import keras

    config = BertCnnConfig(**TINY, mask_padding=False)  # the seed max-pools over padding
    torch.manual_seed(0)
    seed = seed_model(config).eval()
    torch.save(seed.state_dict(), tmp_path / "seed.pt")
    (tmp_path / "config.json").write_text(config.to_json())
    assert (
        main(["port", str(tmp_path / "seed.pt"), str(tmp_path / "ckpt"), "--config", str(tmp_path / "config.json")])
        == 0
    )
    assert main(["port", str(tmp_path / "ckpt"), str(tmp_path / "m.keras")]) == 0
    model = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    inputs = random_inputs(config, [7, 4, 5])
    with torch.no_grad():
        want = seed(torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])).numpy()
    got = keras.ops.convert_to_numpy(model(inputs["input_ids"], inputs["attention_mask"]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_strict_lists_missing_unexpected_and_misshaped_with_shapes(tmp_path, capsys):
    config = BertCnnConfig(**TINY)
    sd = {k: torch.from_numpy(v) for k, v in random_tensors(config).items()}
    del sd["fc.bias"]
    sd["classifier.weight"] = torch.zeros(3, 4)
    sd["bert.pooler.dense.bias"] = torch.zeros(13)
    torch.save(sd, tmp_path / "bad.pt")
    (tmp_path / "config.json").write_text(config.to_json())
    rc = main(["port", str(tmp_path / "bad.pt"), str(tmp_path / "out"), "--config", str(tmp_path / "config.json")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "missing: fc.bias (expected shape (3,))" in err
    assert "unexpected: classifier.weight (shape (3, 4))" in err
    assert "wrong shape: bert.pooler.dense.bias: expected (12,), got (13,)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "config.json"]


def test_strict_refusal_is_one_summary_line_then_the_tensors(tmp_path, capsys):
    from safetensors.numpy import save_file

    config = BertCnnConfig(**{**TINY, "num_labels": 2})
    tensors = random_tensors(config)
    save_file({k: v for k, v in tensors.items() if k != "fc.bias"}, str(tmp_path / "w.safetensors"))
    (tmp_path / "c.json").write_text(config.to_json())
    assert (
        main(["port", str(tmp_path / "w.safetensors"), str(tmp_path / "o"), "--config", str(tmp_path / "c.json")]) == 2
    )
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith("bertcnn port: error: ") and first.endswith(
        "Received: 1 missing, 0 unexpected, 0 mis-shaped tensors"
    )
    assert rest == ["  missing: fc.bias (expected shape (2,))"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [("num_filters", 6, "num_filters: config 6, tensors 5"),
     ("vocab_size", 98, "vocab_size: config 98, tensors 99"),
     ("num_hidden_layers", 1, "num_hidden_layers: config 1, tensors 2")],
)  # fmt: skip
def test_config_that_disagrees_with_tensors_is_refused_by_name(tmp_path, capsys, field, value, says):
    config = BertCnnConfig(**TINY)
    write_safetensors(tmp_path / "w.safetensors", random_tensors(config).items(), {"format": "pt"})
    (tmp_path / "config.json").write_text(config.replace(**{field: value}).to_json())
    rc = main(
        ["port", str(tmp_path / "w.safetensors"), str(tmp_path / "o.pt"), "--config", str(tmp_path / "config.json")]
    )
    assert rc == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()


def test_config_flag_that_contradicts_the_checkpoint_is_refused(sources, tmp_path, capsys):
    _, _, paths = sources["float32"]
    other = tmp_path / "config.json"
    other.write_text(BertCnnConfig(**TINY).to_json())  # head_hidden_size None vs 7
    assert main(["port", str(paths[F.DIR]), str(tmp_path / "x.pt"), "--config", str(other)]) == 2
    assert "head_hidden_size (--config None, ckpt 7)" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", [F.TORCH, F.KERAS_WEIGHTS])
def test_config_free_formats_ask_for_config(sources, tmp_path, capsys, fmt):
    _, _, paths = sources["float32"]
    assert main(["port", str(paths[fmt]), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "carries no model config; pass --config" in err and err.count("\n") == 1


def test_existing_destination_needs_force_and_failures_leave_nothing(sources, tmp_path, capsys, monkeypatch):
    _, tensors, paths = sources["float32"]
    dst = tmp_path / "out.safetensors"
    dst.write_bytes(b"keep me")
    assert main(["port", str(paths[F.DIR]), str(dst)]) == 2
    assert "pass --force" in capsys.readouterr().err and dst.read_bytes() == b"keep me"

    def boom(path, *a, **k):
        path.write_bytes(b"half")
        raise ValueError("disk full. Received: simulated")

    monkeypatch.setattr(port_command, "write_safetensors", boom)
    assert main(["port", str(paths[F.TORCH]), str(tmp_path / "ck"), "--config", str(paths[F.DIR] / "config.json")]) == 2
    assert main(["port", str(paths[F.DIR]), str(dst), "--force"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"] and dst.read_bytes() == b"keep me"
    monkeypatch.undo()
    assert main(["port", str(paths[F.DIR]), str(dst), "--force"]) == 0
    _assert_same(read_safetensors(dst).tensors, tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]


def test_dtype_kept_unless_asked_and_overflow_refused(tmp_path, capsys):
    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config)
    tiny_checkpoint(tmp_path / "f32", config)
    assert main(["port", str(tmp_path / "f32"), str(tmp_path / "h.safetensors"), "--dtype", "float16"]) == 0
    got = read_safetensors(tmp_path / "h.safetensors").tensors
    _assert_same(got, {k: v.astype(np.float16) for k, v in tensors.items()})
    tensors["fc.bias"][0] = 1e6  # beyond float16's max (65504)
    save_checkpoint(tmp_path / "big", config, tensors)
    assert main(["port", str(tmp_path / "big"), str(tmp_path / "b.safetensors"), "--dtype", "float16"]) == 2
    assert "overflows 1 finite values" in capsys.readouterr().err
    assert not (tmp_path / "b.safetensors").exists()


def test_tokenizer_travels_between_directories(tmp_path, embedded_dir):
    tiny_checkpoint(tmp_path / "a", tokenizer=embedded_dir)
    assert main(["port", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    for name in ("tokenizer.json", "vocab.txt"):
        if (embedded_dir / name).is_file():
            assert (tmp_path / "b" / name).read_bytes() == (embedded_dir / name).read_bytes()


# -- destinations: the suffix names the format -------------------------------------------------------
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


# -- the seeds' state_dict with --backbone, --config, --tokenizer ------------------------------------
@pytest.fixture(scope="module")
def seed_saved(tmp_path_factory):
    """A seed-class model whose BERT was 'fine-tuned' away from the backbone, saved as its state_dict."""
    d = tmp_path_factory.mktemp("seed")
    bert = tiny_hf_bert(d / "hf")
    torch.manual_seed(0)
    seed = seed_model(bert.replace(num_filters=4, kernel_sizes=(2, 3), num_labels=5)).eval()
    torch.save(seed.state_dict(), d / "seed.pt")
    return d, seed


def test_backbone_gives_config_tokenizer_and_the_seeds_logits(seed_saved, tmp_path, capsys):
    d, seed = seed_saved
    assert main(["port", str(d / "seed.pt"), str(tmp_path / "ck"), "--backbone", str(d / "hf")]) == 0
    err = capsys.readouterr().err
    assert "note: mask_padding=False: the seeds' pooling" in err and "tokenizer carried from the backbone" in err
    config = BertCnnConfig.from_json_file(tmp_path / "ck" / "config.json")
    assert config == BertCnnConfig(**{**TINY, "kernel_sizes": (2, 3), "num_filters": 4, "num_labels": 5}).replace(
        mask_padding=False
    )
    assert {"tokenizer.json", "vocab.txt"} <= {p.name for p in (tmp_path / "ck").iterdir()}

    from bertcnn_torch import BertCNN

    batch = Tokenizer(tmp_path / "ck")(["Call me Ishmael.", "Hi", "it was the best of times"])
    with torch.no_grad():
        want = seed(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])).numpy()
        got = BertCNN.from_pretrained(tmp_path / "ck").eval()(**{k: torch.from_numpy(v) for k, v in batch.items()})
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)  # same function: padding counts in the max


def test_mask_padding_is_a_choice_and_a_hf_config_json_is_understood(seed_saved, tmp_path, capsys):
    d, _ = seed_saved
    argv = ["port", str(d / "seed.pt"), str(tmp_path / "ck"), "--config", str(d / "hf" / "config.json")]
    assert main([*argv, "--mask-padding"]) == 0
    err = capsys.readouterr().err
    assert "mask_padding=False" not in err and "has no tokenizer" in err and "--tokenizer HF_BERT_DIR" in err
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["mask_padding"] is True
    assert not (tmp_path / "ck" / "tokenizer.json").exists()
    # attach one afterwards
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "ck2"), "--tokenizer", str(d / "hf")]) == 0
    assert Tokenizer(tmp_path / "ck2")(["hi"])["input_ids"].tolist() == [[2, 10, 3]]


def test_keras_seed_head_read_off_the_tensors(tmp_path, capsys):
    tiny_hf_bert(tmp_path / "hf")
    want = BertCnnConfig(**TINY, head_hidden_size=7, mask_padding=False)
    sd = {k: torch.from_numpy(v) for k, v in random_tensors(want).items()}
    sd["bert.embeddings.position_ids"] = torch.arange(TINY["max_position_embeddings"])[None]  # old transformers
    torch.save(sd, tmp_path / "seed.pt")
    assert (
        main(["port", str(tmp_path / "seed.pt"), str(tmp_path / "m.safetensors"), "--backbone", str(tmp_path / "hf")])
        == 0
    )
    assert "bert.embeddings.position_ids (an index buffer" in capsys.readouterr().err
    assert main(["port", str(tmp_path / "m.safetensors"), str(tmp_path / "ck")]) == 0
    assert BertCnnConfig.from_json_file(tmp_path / "ck" / "config.json") == want


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--no-mask-padding"], "--mask-padding/--no-mask-padding only apply when the config is built from"),
        (["--tokenizer", "."], "--tokenizer must be a folder with tokenizer.json"),
    ],
)
def test_refusals_are_one_line_exit_2(tmp_path, capsys, extra, fragment):
    ck = BertCnnConfig(**TINY)
    (tmp_path / "c.json").write_text(ck.to_json())
    sd = {k: torch.from_numpy(v) for k, v in random_tensors(ck).items()}
    torch.save(sd, tmp_path / "w.pt")
    assert (
        main(["port", str(tmp_path / "w.pt"), str(tmp_path / "out"), "--config", str(tmp_path / "c.json"), *extra]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and "Received: " in err
    assert not (tmp_path / "out").exists()


# -- `bertcnn port SRC DST --labels a,b,c`: names the classes of an existing checkpoint, weights untouched.
def test_labels_name_the_classes_and_the_weights_stay_bit_identical(tmp_path, capsys):
    config = BertCnnConfig.from_json_file(tiny_checkpoint(tmp_path / "ck", tokenizer="words") / "config.json")
    assert config.label_names is None and config.num_labels == 3
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "named"), "--labels", "neg,neutral,pos"]) == 0
    named = BertCnnConfig.from_json_file(tmp_path / "named" / "config.json")
    assert named.label_names == ("neg", "neutral", "pos") and named.replace(label_names=None) == config
    a, b = (
        load_file(str(tmp_path / "ck" / "model.safetensors")),
        load_file(str(tmp_path / "named" / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert (tmp_path / "named" / "tokenizer.json").is_file()


def test_labels_must_name_every_class_and_need_a_destination_with_a_config(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "two"), "--labels", "neg,pos"]) == 2
    assert "must name every one of the model's 3 classes" in capsys.readouterr().err
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "w.pt"), "--labels", "a,b,c"]) == 2
    assert "holds no config" in capsys.readouterr().err
    assert not (tmp_path / "two").exists() and not (tmp_path / "w.pt").exists()


def test_force_replaces_only_what_the_project_wrote(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "ck", tokenizer="words")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"jpg")
    assert main(["port", str(tmp_path / "ck"), str(photos), "--force"]) == 2
    assert "a folder bertcnn did not write" in capsys.readouterr().err and (photos / "a.jpg").exists()
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "copy")]) == 0
    assert main(["port", str(tmp_path / "ck"), str(tmp_path / "copy"), "--force"]) == 0  # its own checkpoint
