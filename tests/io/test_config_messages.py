"""A bad model config is refused in one line that names its file and the key, through every reader that
takes one: a checkpoint directory, --config FILE, a .safetensors file's metadata, a .keras archive, an
export directory and a training directory. Exit 2, nothing written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from parity.commands import main
from parity.config import BertCnnConfig
from parity.io.formats import CONFIG_METADATA_KEY, REGISTERED_NAME
from parity.io.safetensors import write_safetensors
from parity.layout import rows
from tests.helpers import TINY, random_tensors, tiny_checkpoint

GOOD = BertCnnConfig(**TINY, label_names=("a", "b", "c")).to_dict()
LONG = "1" * 5000

# (case, config.json's text, what the line must name besides the file: the key, or the problem)
CASES = [
    ("list", "[1, 2]", "JSON object"),
    ("string", '"config"', "JSON object"),
    ("null", "null", "JSON object"),
    ("syntax", '{"num_labels": 3,', "not valid JSON"),
    ("nested", "[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("long-number", json.dumps(GOOD)[:-1] + f', "num_filters": {LONG}}}', "4300 digits"),
    ("type", json.dumps({**GOOD, "num_labels": "3"}), "num_labels"),
    ("kernel-type", json.dumps({**GOOD, "kernel_sizes": "3,4,5"}), "kernel_sizes"),
    ("bool-for-int", json.dumps({**GOOD, "hidden_size": True}), "hidden_size"),
    ("unknown-key", json.dumps({**GOOD, "num_label": 3}), "num_label"),
    ("label-names-key", json.dumps({**GOOD, "label_names": ["a", "b", "c"]}), "label_names"),
    ("id2label-ids", json.dumps({**GOOD, "id2label": {"0": "a", "2": "b", "3": "c"}, "label2id": None}), "id2label"),
    ("id2label-long-id", json.dumps({**GOOD, "id2label": {LONG: "a"}, "label2id": None}), "id2label"),
    ("id2label-values", json.dumps({**GOOD, "id2label": {"0": ["a"], "1": "b", "2": "c"}}), "id2label"),
    ("label2id-inverse", json.dumps({**GOOD, "label2id": {"a": 1, "b": 0, "c": 2}}), "label2id"),
    ("divisible", json.dumps({**GOOD, "num_attention_heads": 5}), "num_attention_heads"),
]


def _checkpoint_dir(tmp: Path, text: str) -> tuple[list[str], Path]:
    ck = tiny_checkpoint(tmp / "ck", BertCnnConfig(**TINY, label_names=("a", "b", "c")))
    (ck / "config.json").write_text(text)
    return ["port", str(ck), str(tmp / "out.safetensors")], ck / "config.json"


def _config_file(tmp: Path, text: str) -> tuple[list[str], Path]:
    (tmp / "w.pt").write_bytes(b"never read: --config is checked first")
    bad = tmp / "bad.json"
    bad.write_text(text)
    return ["port", str(tmp / "w.pt"), str(tmp / "out.safetensors"), "--config", str(bad)], bad


def _safetensors(tmp: Path, text: str) -> tuple[list[str], Path]:
    config = BertCnnConfig(**TINY)
    tensors = random_tensors(config)
    src = tmp / "w.safetensors"
    write_safetensors(src, [(r.torch_name, tensors[r.torch_name]) for r in rows(config)], {CONFIG_METADATA_KEY: text})
    return ["port", str(src), str(tmp / "out.pt")], src


def _keras(tmp: Path, text: str) -> tuple[list[str], Path]:
    src = tmp / "m.keras"
    outer = f'{{"registered_name": "{REGISTERED_NAME}", "config": {{"dtype": "float32", "config": {text}}}}}'
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("config.json", outer)
        zf.writestr("model.weights.h5", b"")
    return ["port", str(src), str(tmp / "out.safetensors")], src


def _export_dir(tmp: Path, text: str) -> tuple[list[str], Path]:
    ex = tmp / "ex"
    ex.mkdir()
    (ex / "model.onnx").write_bytes(b"never run: the config is checked first")
    manifest = {"format": "onnx", "framework": "torch", "model_file": "model.onnx", "source_sha256": "0" * 64,
                "source": "ck"}  # fmt: skip
    (ex / "manifest.json").write_text(json.dumps(manifest))
    (ex / "config.json").write_text(text)
    return ["predict", "--checkpoint", str(ex), "some text"], ex / "config.json"


def _training_dir(tmp: Path, text: str) -> tuple[list[str], Path]:
    run = tiny_checkpoint(tmp / "run", BertCnnConfig(**TINY, label_names=("a", "b", "c")), tokenizer="words")
    (run / "recipe.json").write_text(json.dumps({"max_length": 9}))
    (run / "config.json").write_text(text)
    return ["predict", "--checkpoint", str(run), "--framework", "torch", "w5 w6"], run / "config.json"


READERS = {"checkpoint-dir": _checkpoint_dir, "config-file": _config_file, "safetensors": _safetensors,
           "keras": _keras, "export-dir": _export_dir, "training-dir": _training_dir}  # fmt: skip


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("case", "text", "names"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_config_is_refused_naming_its_file_and_key(tmp_path, capsys, reader, case, text, names):
    if reader == "keras" and case in ("syntax",):
        text = "{"  # the inner config is part of the archive's config.json: any syntax error is that file's
    argv, path = READERS[reader](tmp_path, text)
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert str(path) in lines[0] and names in lines[0] and "Received:" in lines[0], lines[0]
    assert len(lines[0]) < 1500, lines[0][:200]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_cases_are_bad_and_the_good_config_is_good():
    """The cases above are refused by the config itself, and their starting point is a valid config."""
    assert BertCnnConfig.from_dict(json.loads(json.dumps(GOOD))).labels == ("a", "b", "c")
    for _, text, _ in CASES:
        with pytest.raises((ValueError, TypeError, RecursionError)):
            BertCnnConfig.from_dict(json.loads(text))


def test_the_int_limit_in_data_names_file_and_line(tmp_path, capsys, words_ck):
    """A 5000-digit label id in a data file: the line that holds it, not Python's int-limit text."""
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "w5 w6", "label": 1}\n' + f'{{"text": "w7", "label": {LONG}}}\n')
    rc = main(["evaluate", "--checkpoint", str(words_ck), "--framework", "torch", "--eval", str(data)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{data}:2" in err and len(err.strip().splitlines()) == 1, err
    assert "Exceeds the limit" not in err


@pytest.mark.parametrize(("key", "value"), [("hidden_act", "swish"), ("num_attention_heads", "3"),
                                            ("vocab_size", 0)])  # fmt: skip
def test_a_bad_backbone_config_names_its_file(tmp_path, capsys, key, value):
    """A Hugging Face BERT's config.json, through `init --backbone` and `port --backbone`: the file and the key."""
    from tests.helpers import tiny_hf_bert

    hf = tmp_path / "hf"
    tiny_hf_bert(hf)
    raw = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps({**raw, key: value}))
    src = tmp_path / "src"
    src.mkdir()
    assert main(["port", str(tiny_checkpoint(src / "ck")), str(src / "w.pt")]) == 0  # the seeds' tensors
    capsys.readouterr()
    for argv in (["init", str(tmp_path / "ck"), "--backbone", str(hf)],
                 ["port", str(src / "w.pt"), str(tmp_path / "o.safetensors"), "--backbone", str(hf)]):  # fmt: skip
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert str(hf / "config.json") in err and key in err and "Received:" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "src"]
