"""`bertcnn export --text`: the tokenizer inside the artifact gives the checkpoint's `tokenizers` ids, and the
logits from strings are the PyTorch build's fed by `tokenizers` (docs/serving.md, "Strings in").

The graph tokenizers are checked against the `tokenizers` library itself (never against values computed
here), on texts that broke them while they were built, on hypothesis strings from every Unicode category,
and through real exports checked by `report --artifact` in a child process.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity.commands import main
from parity.serving.check import HARD_TEXTS
from parity.tokenize import Tokenizer
from tests.helpers import REPO, child_env, minilm_vocab_checkpoint

HAS_TF_TEXT = importlib.util.find_spec("tensorflow_text") is not None
HAS_ORT_EXT = importlib.util.find_spec("onnxruntime_extensions") is not None
needs_tf_text = pytest.mark.skipif(
    not HAS_TF_TEXT, reason="tensorflow-text not installed: pip install 'bertcnn[serving]'"
)
needs_ort_ext = pytest.mark.skipif(
    not HAS_ORT_EXT, reason="onnxruntime-extensions not installed: pip install 'bertcnn[serving]'"
)

# Texts that made a graph tokenizer disagree while it was built (each was a bug first).
FOUND = (
    "a\x00b c",  # TF Text's regex split and the ORT extensions' ops stop reading at a NUL byte
    "[SE\x00P] x",  # ... which also made a NUL-broken [SEP] look like the special token
    "chip in👈 $1",  # the ORT extensions' WordPiece kept "in" before the unknown 👈: the whole word is [UNK]
    "#MAGA🇺🇸 aƎɃ0BØqq",
    "hello world, fine",  # the ORT extensions' regexes ran TensorFlow's RE2 in a shared process: "world" "##,"
)
# Every Unicode category but surrogates (no client can send a lone surrogate), with ASCII and BERT's specials.
TEXTS = st.lists(
    st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from([" ", "a", "Z", ".", "[SEP]", "[UNK]", "…", "é", "\x00", "\t"]),
    ),
    max_size=30,
).map("".join)


@pytest.fixture(scope="module")
def spec(embedded_dir):
    from parity.serving.text_spec import read_text_spec

    return read_text_spec(embedded_dir, 24, 0)


@pytest.fixture(scope="module")
def reference(embedded_dir):
    tok = Tokenizer(embedded_dir, max_length=24)
    return lambda texts: [ids.tolist() for ids, _ in tok.encode(list(texts))]


def _rows(ids, mask) -> list[list[int]]:
    return [row[m == 1].tolist() for row, m in zip(np.asarray(ids), np.asarray(mask), strict=True)]


@pytest.fixture(scope="module")
def tf_graph(spec):
    if not HAS_TF_TEXT:
        pytest.skip("tensorflow-text not installed: pip install 'bertcnn[serving]'")
    import tensorflow as tf

    from bertcnn_tf.text import TextTokenizer

    graph = TextTokenizer(spec)

    def ids(texts):
        out = graph(tf.constant(list(texts)))
        return _rows(out["input_ids"].numpy(), out["attention_mask"].numpy())

    return ids


@pytest.fixture(scope="module")
def onnx_graph(spec):
    if not HAS_ORT_EXT:
        pytest.skip("onnxruntime-extensions not installed: pip install 'bertcnn[serving]'")
    import onnxruntime as ort

    from parity.serving.onnx_text import tokenizer_model
    from parity.serving.runners import extensions_library

    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    session = ort.InferenceSession(
        tokenizer_model(spec).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def ids(texts):
        input_ids, mask, _ = session.run(None, {"text": np.array(list(texts), dtype=object)})
        return _rows(input_ids, mask)

    return ids


@pytest.mark.parametrize("runtime", ["tf_graph", "onnx_graph"])
def test_graph_ids_are_the_tokenizers_ids_on_hard_texts(runtime, reference, request):
    ids = request.getfixturevalue(runtime)
    texts = [*HARD_TEXTS, *FOUND]
    assert ids(texts) == reference(texts)
    assert [ids([t])[0] for t in FOUND] == reference(FOUND)  # alone too: a batch of one pads nothing


@pytest.mark.parametrize("runtime", ["tf_graph", "onnx_graph"])
def test_graph_ids_are_the_tokenizers_ids_on_any_text(runtime, reference, request):
    ids = request.getfixturevalue(runtime)

    @given(st.lists(TEXTS, min_size=1, max_size=5))
    def check(texts):
        assert ids(texts) == reference(texts)

    check()


@pytest.mark.slow  # in-process twin: the onnx_graph tests run after the tf_graph ones in this module
@needs_ort_ext
@needs_tf_text
def test_onnx_tokenizer_is_right_after_tensorflow_text_loaded(tmp_path):
    """In one process with TF Text loaded first, the ORT extensions' regexes reached TensorFlow's RE2 and split
    "world," into world ##, (a fresh process: the test process's own load order is not this test's to choose)."""
    code = f"""
import numpy as np, onnxruntime as ort, tensorflow as tf
from bertcnn_tf.text import TextTokenizer
from parity.io.backbone import embedded_backbone_dir
from parity.serving.onnx_text import tokenizer_model
from parity.serving.runners import extensions_library
from parity.serving.text_spec import read_text_spec
from parity.tokenize import Tokenizer
spec = read_text_spec(embedded_backbone_dir(), 24, 0)
texts = {list(FOUND)!r}
TextTokenizer(spec)(tf.constant(texts))
options = ort.SessionOptions()
options.register_custom_ops_library(extensions_library())
session = ort.InferenceSession(tokenizer_model(spec).SerializeToString(), options, providers=["CPUExecutionProvider"])
ids, mask, _ = session.run(None, {{"text": np.array(texts, dtype=object)}})
got = [row[m == 1].tolist() for row, m in zip(ids, mask)]
want = [i.tolist() for i, _ in Tokenizer(embedded_backbone_dir(), max_length=24).encode(texts)]
assert got == want, (got, want)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


# -- refusals (before anything is written) --------------------------------------------------------------------
def test_litert_text_is_refused_naming_why(tmp_path, capsys, words_ck):
    out = tmp_path / "ex"
    assert main(["export", "--checkpoint", str(words_ck), "--format", "litert", "--text", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TF Select ops" in err and err.endswith("Received: --format litert --text")
    assert not out.exists()


def test_a_tokenizer_the_graph_cannot_reproduce_is_refused(tmp_path, capsys, words_ck):
    """A word-level tokenizer (not BERT WordPiece): exit 2 naming why, nothing written."""
    out = tmp_path / "ex"
    assert main(["export", "--checkpoint", str(words_ck), "--format", "onnx", "--text", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "its model is not WordPiece" in err and "Received: model 'WordLevel'" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda t: t["normalizer"].update(clean_text=False), "without clean_text"),
        (lambda t: t["added_tokens"][0].update(lstrip=True), "not a plain special token"),
        (lambda t: t.update(pre_tokenizer={"type": "Whitespace"}), "pre-tokenizer is not BertPreTokenizer"),
    ],
    ids=["no-clean-text", "lstrip-special", "whitespace-pre-tokenizer"],
)
def test_bert_options_the_graph_lacks_are_refused(tmp_path, embedded_dir, change, why):
    from parity.serving.text_spec import read_text_spec

    raw = json.loads((embedded_dir / "tokenizer.json").read_text(encoding="utf-8"))
    change(raw)
    (tmp_path / "tokenizer.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=why):
        read_text_spec(tmp_path, 24, 0)


# -- real exports ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_exports(tmp_path_factory, embedded_dir):
    """A tiny model over MiniLM's vocabulary (max length 40) exported --text as a SavedModel and as ONNX."""
    root = tmp_path_factory.mktemp("text")
    ck = minilm_vocab_checkpoint(root / "ck", embedded_dir)
    made = {}
    for fmt, has in (("saved_model", HAS_TF_TEXT), ("onnx", HAS_ORT_EXT)):
        if has:
            assert main(["export", "--checkpoint", str(ck), "--format", fmt, "--text", str(root / fmt)]) == 0
            made[fmt] = root / fmt
    return ck, made


def _export(text_exports, fmt) -> Path:
    if fmt not in text_exports[1]:
        pytest.skip(f"the {fmt} --text runtime is not installed: pip install 'bertcnn[serving]'")
    return text_exports[1][fmt]


# The SavedModel's run (both loaders, ~20 s) is slow; its serving_text is also run by the predict test below.
@pytest.mark.parametrize("fmt", [pytest.param("saved_model", marks=pytest.mark.slow), "onnx"])
def test_report_checks_ids_and_logits_from_strings(text_exports, fmt, capsys):
    ex = _export(text_exports, fmt)
    capsys.readouterr()
    assert main(["report", "--checkpoint", str(text_exports[0]), "--artifact", str(ex)]) == 0
    out = capsys.readouterr().out
    assert "PARITY OK" in out and "tokens/hard-texts" in out and "text-logits/hard-texts" in out
    if fmt == "saved_model":  # TF Serving's loader too
        assert "tokens/hard-texts (session)" in out


def test_export_verify_fails_when_a_normalisation_step_is_removed(text_exports, tmp_path, capsys, monkeypatch):
    """Without the character table (lower case, accents, Hangul ...), the graph's ids differ: --verify exits 1."""
    _export(text_exports, "onnx")
    from parity.serving import text_spec

    probe = text_spec.probe

    def without_table(*args):
        return {**probe(*args), "char_map": {}}

    monkeypatch.setattr(text_spec, "probe", without_table)
    out = tmp_path / "ex"
    rc = main(["export", "--checkpoint", str(text_exports[0]), "--format", "onnx", "--text", "--verify", str(out)])
    captured = capsys.readouterr().out
    assert rc == 1 and "PARITY FAILED" in captured
    assert "'tokens/sentences'" in captured or "'tokens/hard-texts'" in captured  # the first divergence is the ids


@pytest.mark.parametrize("fmt", ["saved_model", "onnx"])
def test_predict_sends_strings_to_a_text_export(text_exports, fmt, capsys, monkeypatch):
    """The export tokenizes (Python's tokenizer is never called) and its logits are the checkpoint's."""
    ex = _export(text_exports, fmt)
    texts = ["Call me Ishmael.", "wait… what", "你好，世界", "ÇAFÉ\tİstanbul"]
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(text_exports[0]), "--framework", "torch", "--json", *texts]) == 0
    want = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    def refuse(*a, **k):
        raise AssertionError("a --text export must tokenize in its own graph")

    monkeypatch.setattr(Tokenizer, "encode_counted", refuse)
    assert main(["predict", "--checkpoint", str(ex), "--json", *texts]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [g["text"] for g in got] == texts and [g["label"] for g in got] == [w["label"] for w in want]
    assert np.abs(np.array([g["logits"] for g in got]) - np.array([w["logits"] for w in want])).max() <= 1e-5
    assert main(["predict", "--checkpoint", str(ex), "--max-length", "9", "x"]) == 2
    assert "tokenizes in its own graph" in capsys.readouterr().err


def test_text_ops_are_refused_in_an_export_not_marked_text(text_exports, tmp_path, capsys):
    """The tokenizer's ops are allowed where the manifest says --text, and only there."""
    ex = tmp_path / "ex"
    shutil.copytree(_export(text_exports, "saved_model"), ex)
    manifest = json.loads((ex / "manifest.json").read_text())
    (ex / "manifest.json").write_text(json.dumps({**manifest, "text": False}))
    assert main(["predict", "--checkpoint", str(ex), "hello"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "runs the TensorFlow op" in err


@needs_tf_text
def test_keras_build_predicts_from_strings_in_graph(text_exports, embedded_dir):
    """`BertCNN.text_model(dir)`: ids equal `tokenizers`', logits equal the PyTorch build's on those ids."""
    from bertcnn_tf import BertCNN
    from bertcnn_torch.runtime import logits as torch_logits
    from parity.io.reader import read_weights

    w = read_weights(str(text_exports[0]))
    model = BertCNN._from_tensors(w.config, w.tensors, dtype="float32").text_model(embedded_dir)
    texts = list(HARD_TEXTS)
    out = model(texts)
    tok = Tokenizer(embedded_dir, max_length=w.config.reading_length)
    ref = tok(texts)
    np.testing.assert_array_equal(out["input_ids"].numpy(), ref["input_ids"])
    want = torch_logits(w.config, w.tensors, [ref])[0]
    assert np.abs(out["logits"].numpy() - want).max() <= 1e-5
    assert [x.decode() for x in out["label"].numpy()] == [w.config.labels[i] for i in want.argmax(-1)]
    with pytest.raises(ValueError, match="list of strings"):
        model("one string")


@pytest.mark.parametrize(("fmt", "text"), [("onnx", "yes"), ("litert", True)], ids=["not-a-bool", "litert-text"])
def test_a_manifest_claiming_text_it_cannot_be_is_refused(tmp_path, fmt, text):
    from parity.serving.manifest import MODEL_FILES, read_manifest

    (tmp_path / MODEL_FILES[fmt]).write_bytes(b"x")
    manifest = {"format": fmt, "framework": "keras", "model_file": MODEL_FILES[fmt], "source_sha256": "0" * 64,
                "source": "elsewhere", "text": text}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="text must be true or false"):
        read_manifest(tmp_path)
