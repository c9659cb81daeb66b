"""A SavedModel runs only the ops `bertcnn export` writes: a stranger's graph that writes a file is refused unrun.

`parity.serving.allowed_ops` is data, regenerated here from real exports of every supported shape of the
model (both heads, padding masks on and off, every activation, kernels of width 1 and wider).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.commands import main
from parity.config import SUPPORTED_ACTIVATIONS, BertCnnConfig
from tests.helpers import TINY, tiny_checkpoint

pytest.importorskip("tensorflow", reason="the tf extra is not installed: pip install 'bertcnn[tf]'")

# Every head, pooling and activation the config supports; kernel sets alternate (width 1 pads nothing).
GRID = [
    dict(head_hidden_size=head, mask_padding=mask, hidden_act=act, kernel_sizes=kernels)
    for i, (head, mask, act) in enumerate(
        (h, m, a) for h in (None, 7) for m in (True, False) for a in SUPPORTED_ACTIVATIONS
    )
    for kernels in [((1, 2) if i % 2 else (2, 3, 5))]
]


def exported_ops(tmp: Path, grid=GRID, *, text: bool = False) -> dict[str, set[str]]:
    """role -> ops, over `bertcnn export --format saved_model [--text]` of a tiny checkpoint of every `grid` config."""
    from parity.serving.graph_check import ROLES, saved_model_ops

    out: dict[str, set[str]] = {r: set() for r in ROLES}
    flag = ["--text"] if text else []
    for i, changes in enumerate(grid):
        where = tmp / ("text" if text else "ids")
        ck = tiny_checkpoint(where / f"ck{i}", BertCnnConfig(**{**TINY, **changes}),
                             tokenizer=wordpiece_with_specials(where) if text else None)  # fmt: skip
        assert main(["export", "--checkpoint", str(ck), "--format", "saved_model", *flag, str(where / f"ex{i}")]) == 0
        for role, ops in saved_model_ops(where / f"ex{i}" / "saved_model").items():
            out[role] |= ops
    return out


def wordpiece_with_specials(tmp: Path):
    """The tiny BERT WordPiece tokenizer with its special tokens registered (matched in raw text, as BERT's are)."""
    from tokenizers import AddedToken, Tokenizer

    from tests.helpers import tiny_wordpiece_tokenizer

    tmp.mkdir(parents=True, exist_ok=True)
    tiny_wordpiece_tokenizer(tmp)
    tok = Tokenizer.from_file(str(tmp / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, normalized=False) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")])
    return tok


@pytest.mark.slow
def test_the_allowed_ops_are_what_the_exporter_writes(tmp_path, capsys):
    import tensorflow as tf

    from bertcnn_tf import BertCNN
    from parity.serving.allowed_ops import EARLIER_EXPORTS, SAVED_MODEL_OPS, TENSORFLOW, TEXT_OPS
    from parity.serving.graph_check import saved_model_ops
    from tests.helpers import random_tensors, saved_model_before_issue_21

    found = exported_ops(tmp_path)
    capsys.readouterr()
    regenerated = {role: sorted(ops) for role, ops in found.items()}
    stale = f"parity/serving/allowed_ops.py is stale (recorded with TensorFlow {TENSORFLOW}, this is {tf.__version__})"
    assert {role: sorted(ops) for role, ops in SAVED_MODEL_OPS.items()} == regenerated, (
        f"{stale}; regenerated:\n{json.dumps(regenerated, indent=1)}"
    )
    earlier = {}
    for i, changes in enumerate(GRID[::5]):  # both heads and poolings, all activations, both kernel sets; the old way
        config = BertCnnConfig(**{**TINY, **changes})
        saved_model_before_issue_21(BertCNN._from_tensors(config, random_tensors(config)), tmp_path / f"old{i}")
        for role, ops in saved_model_ops(tmp_path / f"old{i}").items():
            if ops - found[role]:
                earlier[role] = sorted(set(earlier.get(role, ())) | (ops - found[role]))
    assert {role: sorted(ops) for role, ops in EARLIER_EXPORTS.items()} == earlier, f"{stale}; earlier: {earlier}"
    multi = dict(problem_type="multi_label_classification", thresholds=(0.3, 0.5, 0.7))  # sigmoid and `selected`
    text_grid = [*GRID[::5], {**GRID[0], **multi}]
    text = {role: sorted(ops - found[role]) for role, ops in exported_ops(tmp_path, text_grid, text=True).items()}
    text = {role: ops for role, ops in text.items() if ops}
    assert {role: sorted(ops) for role, ops in TEXT_OPS.items()} == text, f"{stale}; --text: {text}"


def test_text_ops_are_allowed_only_in_text_exports():
    """The tokenizer's ops (regexes, hash tables, TF Text) are refused in an export whose manifest is not --text."""
    from parity.serving.allowed_ops import TEXT_OPS, allowed

    assert TEXT_OPS["serve"] and not TEXT_OPS["serve"] & allowed("serve")
    assert TEXT_OPS["serve"] <= allowed("serve", text=True)


# -- the check, on graphs written by hand ---------------------------------------------------------------------
def _meta_graph(nodes, functions, save="save_node", restore="restore_node"):
    """A MetaGraphDef: `nodes` [(name, op, called function)], `functions` {name: [(op, called function)]}."""
    from tensorflow.core.protobuf import meta_graph_pb2

    mg = meta_graph_pb2.MetaGraphDef()
    mg.saver_def.save_tensor_name = f"{save}:0"
    mg.saver_def.restore_op_name = restore

    def fill(node, name, op, calls):
        node.name, node.op = name, op
        if calls:
            node.attr["f"].func.name = calls

    for name, op, calls in nodes:
        fill(mg.graph_def.node.add(), name, op, calls)
    for fname, body in functions.items():
        f = mg.graph_def.library.function.add()
        f.signature.name = fname
        for i, (op, calls) in enumerate(body):
            fill(f.node_def.add(), f"n{i}", op, calls)
    return mg


def _refused(mg) -> str:
    from parity.serving import graph_check

    ops = graph_check.graph_ops(mg)
    return sorted(op for role, found in ops.items() for op in found if op not in _allowed(role))


def _allowed(role):
    from parity.serving.allowed_ops import allowed

    return allowed(role)


OURS = [("save_node", "StatefulPartitionedCall", "save_fn"), ("restore_node", "StatefulPartitionedCall", "restore_fn"),
        ("sig", "StatefulPartitionedCall", "serve_fn")]  # fmt: skip
FUNCTIONS = {"save_fn": [("SaveV2", None), ("MergeV2Checkpoints", None)], "restore_fn": [("RestoreV2", None)],
             "serve_fn": [("MatMul", None)]}  # fmt: skip


@pytest.mark.parametrize(
    ("graph", "refused"),
    [
        ((OURS, FUNCTIONS), []),  # the saver may write checkpoints; the signature computes
        ((OURS, {**FUNCTIONS, "serve_fn": [("MatMul", None), ("SaveV2", None)]}), ["SaveV2"]),  # a signature saving
        ((OURS, {**FUNCTIONS, "serve_fn": [("StatefulPartitionedCall", "save_fn")]}), ["MergeV2Checkpoints", "SaveV2"]),
        ((OURS, {**FUNCTIONS, "loose": [("WriteFile", None)]}), ["WriteFile"]),  # no graph node calls it; a loader may
        (([*OURS, ("x", "PyFunc", None)], FUNCTIONS), ["PyFunc"]),
        ((OURS, {**FUNCTIONS, "restore_fn": [("RestoreV2", None), ("WriteFile", None)]}), ["WriteFile"]),
        ((OURS, {**FUNCTIONS, "serve_fn": [("MatMul", None), ("While", "cond")], "cond": [("ReadFile", None)]}),
         ["ReadFile", "While"]),
    ],
    ids=["ours", "serve-saves", "serve-calls-save", "unreached", "graph-node", "restore-writes", "nested"],
)  # fmt: skip
def test_ops_are_checked_where_they_run(graph, refused):
    assert _refused(_meta_graph(*graph)) == refused


# -- a stranger's SavedModel ---------------------------------------------------------------------------------
def hostile_export(directory: Path, marker: Path) -> Path:
    """An export directory whose SavedModel has our interface, and writes `marker` each time it is called."""
    import tensorflow as tf

    from parity.serving.manifest import INPUT_NAMES
    from tests.helpers import word_tokenizer

    class Stranger(tf.Module):
        def __init__(self):
            super().__init__()
            self.bias = tf.Variable(tf.zeros((3,)))

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int64, name=n) for n in INPUT_NAMES])
        def serve(self, input_ids, attention_mask, token_type_ids):
            tf.io.write_file(str(marker), "written by a SavedModel graph")
            first = tf.cast(input_ids[:, :1], tf.float32) * 0.0  # every other op here is one our exports use
            return {"logits": tf.matmul(first, tf.reshape(self.bias, (1, 3)))}

    directory.mkdir()
    module = Stranger()
    tf.saved_model.save(module, str(directory / "saved_model"), signatures={"serving_default": module.serve})
    manifest = {"format": "saved_model", "framework": "keras", "model_file": "saved_model",
                "source_sha256": "0" * 64, "source": "elsewhere"}  # fmt: skip
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (directory / "config.json").write_text(BertCnnConfig(**TINY).to_json())
    word_tokenizer([f"w{i}" for i in range(4, 99)]).save(str(directory / "tokenizer.json"))
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "evaluate", "report"])
def test_a_strangers_saved_model_is_refused_unrun(tmp_path, capsys, command):
    """Its signature calls tf.io.write_file: nothing of it runs, the file is never written."""
    marker = tmp_path / "written"
    export = hostile_export(tmp_path / "ex", marker)
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "w5 w6", "label": 1}\n')
    argv = {
        "predict": ["predict", "--checkpoint", str(export), "w5 w6"],
        "evaluate": ["evaluate", "--checkpoint", str(export), "--eval", str(data)],
        "report": ["report", "--checkpoint", str(tiny_checkpoint(tmp_path / "ck")), "--artifact", str(export)],
    }[command]
    rc = main(argv)
    captured = capsys.readouterr()
    assert not marker.exists()
    assert rc == 2 and len(captured.err.strip().splitlines()) == 1, captured.err[-3000:]
    assert "runs the TensorFlow op 'WriteFile' in its serve graph" in captured.err
    assert str(export / "saved_model") in captured.err and "PARITY" not in captured.out


@pytest.mark.slow
def test_a_litert_model_needing_tensorflow_ops_is_refused(tmp_path, capsys):
    """A .tflite calling tf.io.write_file (a Flex op): refused naming it at open (it was a RuntimeError traceback)."""
    pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed: pip install 'bertcnn[litert]'")
    import tensorflow as tf

    from parity.serving.manifest import INPUT_NAMES
    from tests.helpers import word_tokenizer

    marker = tmp_path / "written"

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int64, name=n) for n in INPUT_NAMES])
    def serve(input_ids, attention_mask, token_type_ids):
        tf.io.write_file(str(marker), "written by a LiteRT graph")
        return {"logits": tf.matmul(tf.cast(input_ids[:, :1], tf.float32) * 0.0, tf.ones((1, 3)))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    ex = tmp_path / "ex"
    ex.mkdir()
    (ex / "model.tflite").write_bytes(converter.convert())
    manifest = {"format": "litert", "framework": "keras", "model_file": "model.tflite", "source_sha256": "0" * 64,
                "source": "elsewhere"}  # fmt: skip
    (ex / "manifest.json").write_text(json.dumps(manifest))
    (ex / "config.json").write_text(BertCnnConfig(**TINY).to_json())
    word_tokenizer([f"w{i}" for i in range(4, 99)]).save(str(ex / "tokenizer.json"))
    capsys.readouterr()
    rc = main(["predict", "--checkpoint", str(ex), "w5 w6"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err[-3000:]
    assert "FlexWriteFile" in err and str(ex / "model.tflite") in err and not marker.exists()
