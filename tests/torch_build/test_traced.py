"""Every length through PyTorch's own tracers: `torch.export` with named dynamic dims, `torch.jit.trace`
and the legacy (TorchScript-based) ONNX exporter, each against eager at lengths 1, 2, 5, 6, 300 and
batch 1 / 64. The widest kernel is 5, so lengths 1..5 are the ones the old pad (`max(0, K - T)`)
guarded or could not record.

`torch.jit.script` is not offered: transformers' `BertModel` does not script (`BertConfig.__init__` has
no source for TorchScript), with or without our head; a traced module is a `ScriptModule` that
`torch.jit.save`/`torch.jit.load` keep, which is tested here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from parity.config import BertCnnConfig
from tests.helpers import TINY, random_inputs, random_tensors

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

NAMES = ("input_ids", "attention_mask", "token_type_ids")
# (real lengths of the rows): 1, 2, 5 (= the widest kernel), 6, 300 tokens, batch 1 and 64, some rows padded.
CASES = {
    "1": [1],
    "2": [2],
    "5x64": [5] * 64,
    "6": [6],
    "300": [300],
    "mixed": [300, 2, 1, 6, 5],
    "64 padded": [5, 1, 3, 2] * 16,
}
BOUND = 1e-5


POOLINGS = [True, pytest.param(False, marks=pytest.mark.slow)]  # the seeds' pooling: the same code path, slow


@pytest.fixture(scope="module", params=POOLINGS, ids=["masked", "seed-pooling"])
def model(request):
    from bertcnn_torch import BertCNN

    # Widths 1 and 2 too: with padding-aware pooling, a text shorter than every width has logits = the bias alone.
    config = BertCnnConfig(
        **{**TINY, "max_position_embeddings": 512, "kernel_sizes": (1, 2, 5)}, mask_padding=request.param
    )
    return BertCNN._from_tensors(config, random_tensors(config, seed=5)).eval()


class Positional(torch.nn.Module):
    """The three inputs by position (what the tracers take)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids)


def inputs(config, lengths, seed=1):
    batch = random_inputs(config, lengths, seed=seed)
    return tuple(torch.from_numpy(batch[k]) for k in NAMES)


def worst(model, run) -> dict[str, float]:
    gaps = {}
    for case, lengths in CASES.items():
        x = inputs(model.config, lengths)
        with torch.inference_mode():
            eager = model(*x).numpy()
        gaps[case] = float(np.abs(np.asarray(run(x)) - eager).max())
    return gaps


def test_torch_export_with_named_dims_runs_every_length(model):
    """`Dim("seq", max=512)` used to fail (`Constraints violated (seq)! ... max(0, 5 + -1*...)`)."""
    dims = {"batch": torch.export.Dim("batch"), "seq": torch.export.Dim("seq", max=512)}
    dynamic = {name: {0: dims["batch"], 1: dims["seq"]} for name in NAMES}
    program = torch.export.export(Positional(model), inputs(model.config, [9, 7]), dynamic_shapes=dynamic)
    module = program.module()
    gaps = worst(model, lambda x: module(*x).detach().numpy())
    assert max(gaps.values()) <= BOUND, gaps


def test_torch_export_with_auto_dims_has_no_length_guard(model):
    """`Dim.AUTO` exported, but the program refused every input of <= 5 tokens (`Guard failed: ... != 1`)."""
    auto = torch.export.Dim.AUTO
    dynamic = {name: {0: auto, 1: auto} for name in NAMES}
    program = torch.export.export(Positional(model), inputs(model.config, [9, 7]), dynamic_shapes=dynamic)
    module = program.module()
    gaps = worst(model, lambda x: module(*x).detach().numpy())
    assert max(gaps.values()) <= BOUND, gaps


def test_jit_trace_runs_every_length_and_saves(model, tmp_path):
    """`torch.jit.trace` failed at the pad (`expected (numpy.integer, ...), got Tensor` in `torch.sym_max`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from transformers' own mask code
        traced = torch.jit.trace(Positional(model).eval(), inputs(model.config, [9, 7]))
    torch.jit.save(traced, tmp_path / "bertcnn.pt")
    loaded = torch.jit.load(tmp_path / "bertcnn.pt")
    gaps = worst(model, lambda x: loaded(*x).detach().numpy())
    assert max(gaps.values()) <= BOUND, gaps


def test_legacy_onnx_exporter_runs_every_length(model, tmp_path):
    """`torch.onnx.export(dynamo=False)` traces with TorchScript, so it failed with the trace."""
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    path = tmp_path / "legacy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Positional(model).eval(),  # the exporter restores the wrapper's mode: a training wrapper trains the model
            inputs(model.config, [9, 7]),
            str(path),
            input_names=list(NAMES),
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in NAMES},
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gaps = worst(model, lambda x: session.run(None, {k: v.numpy() for k, v in zip(NAMES, x, strict=True)})[0])
    assert max(gaps.values()) <= BOUND, gaps
