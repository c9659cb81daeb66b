"""Serving: export directories (model file, config, tokenizer, manifest), their runtimes, and their check.

Framework-neutral at import: the runtimes (onnxruntime, TensorFlow, ai-edge-litert)
and the builds are imported inside the functions that need them.
"""

from parity.serving.manifest import FORMATS, MANIFEST_NAME, Manifest, is_export, read_manifest
from parity.serving.runners import export_forward

__all__ = ["FORMATS", "MANIFEST_NAME", "Manifest", "export_forward", "is_export", "read_manifest"]
