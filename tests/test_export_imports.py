"""`parity.serving` loads no framework and no runtime at import (the CLI imports it for every predict)."""

from __future__ import annotations

import subprocess
import sys


def test_serving_imports_no_framework():
    code = (
        "import sys\n"
        "import parity.serving, parity.serving.check, parity.serving.directory, parity.serving.runners\n"
        "heavy = ('torch', 'tensorflow', 'keras', 'jax', 'transformers', 'onnxruntime', 'onnx', 'ai_edge_litert')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
