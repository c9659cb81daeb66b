"""SavedModel, LiteRT and ONNX (tf2onnx) exports of the Keras build, each in its runtime, vs the PyTorch build.

A SavedModel is held to both of its loaders: `tf.saved_model.load` (eager) and the session
loader of TF Serving and `saved_model_cli`, which restores `variables/` through the graph's
own restore op (issue 21: the first export ran eagerly but not there).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from parity.config import BertCnnConfig
from parity.tolerance import tolerance_for
from tests.helpers import MINILM_VOCAB, TINY, configs, onnx_worst_gap, random_tensors, tiny_checkpoint, worst_gap

pytest.importorskip("tensorflow", reason="the tf extra is not installed: pip install 'bertcnn[tf]'")
pytest.importorskip("torch", reason="the torch extra is not installed (the reference build)")

BOUND = tolerance_for("float32", "cpu", "artifact").atol


@settings(max_examples=2)
@given(config=configs(max_layers=1))
def test_saved_model_matches_torch(config, tmp_path_factory):
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_saved_model
    from parity.serving.runners import SavedModelRunner, SavedModelSessionRunner

    tmp = tmp_path_factory.mktemp("sm")
    tensors = random_tensors(config, seed=5)
    export_saved_model(BertCNN._from_tensors(config, tensors), tmp / "saved_model")
    assert worst_gap(config, tensors, SavedModelRunner(tmp / "saved_model"), tmp) <= BOUND
    session = SavedModelSessionRunner(tmp / "saved_model")
    assert worst_gap(config, tensors, session, tmp) <= BOUND
    assert worst_gap(config, tensors, partial(session, signature="serving_int32"), tmp) <= BOUND


@settings(max_examples=2)
@given(config=configs(max_layers=1))
def test_litert_matches_torch(config, tmp_path_factory):
    pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed: pip install 'bertcnn[litert]'")
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_litert
    from parity.serving.runners import LiteRTRunner

    tmp = tmp_path_factory.mktemp("litert")
    tensors = random_tensors(config, seed=7)
    info = export_litert(BertCNN._from_tensors(config, tensors), tmp / "model.tflite")
    assert not [op for op in info["ops"] if op.startswith("Flex")]
    assert worst_gap(config, tensors, LiteRTRunner(tmp / "model.tflite"), tmp) <= BOUND


@pytest.mark.slow
@settings(max_examples=1)
@given(config=configs(max_layers=1))
def test_keras_onnx_matches_torch(config, tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'bertcnn[onnx]'")
    pytest.importorskip("tf2onnx", reason="the Keras ONNX path needs tf2onnx: pip install 'bertcnn[tf2onnx]'")
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_onnx

    def export(config, tensors, path):
        export_onnx(BertCNN._from_tensors(config, tensors), path)

    assert onnx_worst_gap(config, tmp_path_factory.mktemp("onnx"), export) <= BOUND


def test_litert_refuses_flex_ops(tmp_path, monkeypatch):
    """The pitfall put back: `x[:, :, None]` instead of expand_dims needs a Flex StridedSlice; export refuses."""
    pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed: pip install 'bertcnn[litert]'")
    import bertcnn_tf.model as keras_model
    from bertcnn_tf import BertCNN
    from bertcnn_tf.export import export_litert

    expand_dims = keras_model.ops.expand_dims
    monkeypatch.setattr(
        keras_model.ops, "expand_dims", lambda x, axis: x[:, :, None] if axis == -1 else expand_dims(x, axis)
    )
    config = BertCnnConfig(**TINY)
    with pytest.raises(ValueError, match=r"builtin ops only.*StridedSlice"):
        export_litert(BertCNN._from_tensors(config, random_tensors(config)), tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()


# -- the SavedModel where SavedModels are served (issue 21) ----------------------------------
SENTENCES = ["Call me Ishmael.", "It was the best of times, it was the worst of times.", "Hi"]


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedded_dir):
    """`bertcnn export` of a tiny model over MiniLM's vocabulary, its checkpoint, and the sentences tokenised."""
    from parity import Tokenizer
    from parity.commands import main

    tmp = tmp_path_factory.mktemp("served")
    vocab = json.loads((embedded_dir / "config.json").read_text())["vocab_size"]
    config = BertCnnConfig(**{**MINILM_VOCAB, "vocab_size": vocab})
    tensors = random_tensors(config, seed=21)
    ck = tiny_checkpoint(tmp / "ck", config, seed=21, tokenizer=embedded_dir)
    assert main(["export", "--checkpoint", str(ck), "--format", "saved_model", str(tmp / "out")]) == 0
    batch = Tokenizer(ck, max_length=config.max_position_embeddings)(SENTENCES)
    assert batch["input_ids"].shape[0] >= 2 and not batch["attention_mask"].all()  # a padded batch
    return config, tensors, ck, tmp / "out", batch


def _torch(config, tensors, batch) -> np.ndarray:
    from bertcnn_torch.runtime import logits as torch_logits

    return torch_logits(config, tensors, [batch])[0]


@pytest.mark.parametrize("signature", ["serving_default", pytest.param("serving_int32", marks=pytest.mark.slow)])
def test_saved_model_cli_run_matches_torch(served, tmp_path, signature):
    """The issue's command, as a subprocess: TensorFlow's own client loads the graph in a session."""
    config, tensors, _, out, batch = served
    cli = Path(sys.executable).parent / "saved_model_cli"
    command = [str(cli)] if cli.is_file() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    exprs = ";".join(f"{k}={v.tolist()}" for k, v in batch.items())
    args = ["run", "--dir", str(out / "saved_model"), "--tag_set", "serve", "--signature_def", signature]
    args += ["--input_exprs", exprs, "--outdir", str(tmp_path)]
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "logits.npy")
    want = _torch(config, tensors, batch)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= BOUND


def test_saved_model_signatures_and_int32(served):
    """The documented interface: int64 `serving_default` refuses int32 tensors; `serving_int32` takes them."""
    import tensorflow as tf

    config, tensors, _, out, batch = served
    sigs = tf.saved_model.load(str(out / "saved_model")).signatures
    for name, dtype in (("serving_default", tf.int64), ("serving_int32", tf.int32)):
        spec = sigs[name].structured_input_signature[1]
        assert {k: (s.dtype, tuple(s.shape)) for k, s in spec.items()} == {
            k: (dtype, (None, None)) for k in ("input_ids", "attention_mask", "token_type_ids")
        }
        assert list(sigs[name].structured_outputs) == ["logits"]
    int32 = {k: tf.constant(v.astype(np.int32)) for k, v in batch.items()}
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        sigs["serving_default"](**int32)
    got = sigs["serving_int32"](**int32)["logits"].numpy()
    assert np.abs(got - _torch(config, tensors, batch)).max() <= BOUND


def test_artifact_check_runs_the_session_loader(served, capsys, tmp_path):
    from parity.commands import main

    _, _, ck, out, _ = served
    argv = ["report", "--checkpoint", str(ck), "--artifact", str(out), "--json-out", str(tmp_path / "r.json")]
    assert main(argv) == 0
    taps = [t["name"] for t in json.loads((tmp_path / "r.json").read_text())["results"][0]["taps"]]
    assert "logits/sentences" in taps
    assert "logits/batch-17 (session)" in taps and "logits/batch-17 (session, serving_int32)" in taps
    assert "PARITY OK" in capsys.readouterr().out


@pytest.mark.slow  # 8 s: a second SavedModel export
def test_artifact_check_fails_on_the_old_export(served, capsys, tmp_path):
    """It ran under `tf.saved_model.load` (the check passed it) but not in a session: now the check says so."""
    from bertcnn_tf import BertCNN
    from parity.commands import main
    from parity.serving.runners import SavedModelRunner
    from tests.helpers import saved_model_before_issue_21

    config, tensors, ck, out, _ = served
    old = shutil.copytree(out, tmp_path / "old")
    shutil.rmtree(old / "saved_model")
    saved_model_before_issue_21(BertCNN._from_tensors(config, tensors, dtype="float32"), old / "saved_model")
    assert worst_gap(config, tensors, SavedModelRunner(old / "saved_model"), tmp_path) <= BOUND  # eager: fine
    capsys.readouterr()
    assert main(["report", "--checkpoint", str(ck), "--artifact", str(old)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "session loader" in err and "Could not find variable" in err, err


@pytest.mark.parametrize("endpoint", ["serve", "serving_default"])
def test_keras_tfsm_layer_calls_the_export(served, endpoint):
    """`keras.layers.TFSMLayer(sm, call_endpoint="serving_default")` failed: a signature takes keyword inputs only
    (`too many positional arguments`); the export now has endpoints taking the tokenizer's dict, int64 or int32."""
    import keras

    config, tensors, _, out, batch = served
    layer = keras.layers.TFSMLayer(str(out / "saved_model"), call_endpoint=endpoint)
    want = _torch(config, tensors, batch)
    for dtype in (np.int64, np.int32):
        got = np.asarray(layer({k: v.astype(dtype) for k, v in batch.items()}))
        assert got.shape == want.shape and np.abs(got - want).max() <= BOUND


@pytest.mark.slow
def test_saved_model_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, tmpfs, capsys):
    """TensorFlow reports a full disk as ResourceExhaustedError (a traceback, exit 1): it is the disk's error."""
    from parity.commands import main
    from tests.helpers import fill

    ck = tiny_checkpoint(tmp_path / "ck")
    fill(tmpfs, leave=60_000)  # the variables fit, the 490 kB saved_model.pb does not
    rc = main(["export", str(tmpfs / "exp"), "--checkpoint", str(ck), "--format", "saved_model"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err[-3000:]
    assert "the disk is full while writing" in err and "saved_model" in err
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler"]
