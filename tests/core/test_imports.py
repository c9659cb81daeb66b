"""Dependencies point one way: each import loads only what it needs (fresh processes).

`parity.serving` loads no framework and no runtime at import (the CLI imports it for every predict).
"""

import subprocess
import sys

import pytest

CHECK = "import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; print(bad); sys.exit(bool(bad))"


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("parity", ["torch", "tensorflow", "keras", "jax", "transformers"]),
        ("parity.commands", ["torch", "tensorflow", "keras", "jax", "transformers"]),
        ("bertcnn_torch", ["tensorflow", "keras"]),
        ("bertcnn_tf", ["torch"]),
    ],
)
def test_import_isolation(module, forbidden):
    env = {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "PATH": ""}
    code = CHECK.format(module=module, forbidden=forbidden)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"{module} loaded {proc.stdout.strip()} {proc.stderr[-500:]}"


def test_serving_imports_no_framework():
    code = (
        "import sys\n"
        "import parity.serving, parity.serving.check, parity.serving.directory, parity.serving.runners\n"
        "import parity.serving.child, parity.serving.text_spec, parity.serving.onnx_text\n"
        "heavy = ('torch', 'tensorflow', 'keras', 'jax', 'transformers', 'onnxruntime', 'onnx', 'ai_edge_litert')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
