"""predict keeps framework chatter that is not ours off the user's stderr.

TensorFlow's native start-up lines (`WARNING: All log messages before absl::InitializeLog() ...`,
`I0000 ... port.cc:153] oneDNN custom operations are on ...`) and LiteRT's `INFO: Created
TensorFlow Lite XNNPACK delegate for CPU.` are written by C++ straight to file descriptor 2, past
TF_CPP_MIN_LOG_LEVEL; before the filter in `parity.stderr`, every `predict --framework
keras` and every run of a LiteRT export printed them.
"""

from __future__ import annotations

import os

import pytest

from parity.commands import main
from tests.helpers import bertcnn
from tests.helpers import minilm_vocab_checkpoint as tiny_checkpoint


@pytest.fixture(scope="module")
def ck(tmp_path_factory, embedded_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ck", embedded_dir)


def test_the_keras_build_on_tensorflow_says_nothing_on_stderr(ck):
    r = bertcnn("predict", "--checkpoint", str(ck), "--framework", "keras", "Hello there.")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout.count("\n") == 1


def test_a_litert_export_says_nothing_on_stderr(ck, tmp_path):
    pytest.importorskip("ai_edge_litert")
    out = tmp_path / "litert"
    assert main(["export", "--checkpoint", str(ck), "--format", "litert", str(out)]) == 0
    r = bertcnn("predict", "--checkpoint", str(out), "Hello there.", "And a second text.")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout.count("\n") == 2


@pytest.mark.parametrize(
    ("line", "chatter"),
    [
        ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n", True),
        ("I0000 00:00:1796232638.728308    1736 port.cc:153] oneDNN custom operations are on. You may see ...\n", True),
        ("W0000 00:00:1796232638.728308    1736 cpu_feature_guard.cc:1] something\n", True),
        ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", True),
        ("E0000 00:00:1796232638.728308    1736 op.cc:9] a real error\n", False),  # errors are passed on
        (  # the GPU-capable `tensorflow` wheel on a machine with no GPU: it goes on on the CPU
            "E0000 00:00:1796634612.552476   31698 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
            "Failed call to cuInit: UNKNOWN ERROR (303)\n",
            True,
        ),
        ("E0000 00:00:1796634612.552476   31698 cuda_platform.cc:52] some other CUDA error\n", False),
        ("note: 3 of 9 texts were longer than 8 tokens\n", False),
        ("Fatal Python error: Segmentation fault\n", False),
    ],
)
def test_what_counts_as_chatter(line, chatter):
    from parity.stderr import is_noise

    assert is_noise(line) is chatter


def test_native_quiet_passes_every_other_line_on_in_order(capfd):
    from parity.stderr import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nkeep me\n")
        os.write(2, b"I0000 00:00:1.2 7 port.cc:153] oneDNN custom operations are on.\nand me\n")
    assert capfd.readouterr().err == "keep me\nand me\n"
