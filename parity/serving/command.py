"""`bertcnn export --checkpoint CK --format onnx|saved_model|litert OUT`: a self-contained serving directory.

OUT holds the model file(s), config.json (label names included), the tokenizer files
and manifest.json (format, framework, sha256 of CK's weights, library versions,
input/output names and dtypes). Written atomically; an existing OUT needs --force.
`--verify` runs the artifact check of `bertcnn report --artifact` right after.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from parity.checkpoint import WEIGHTS_NAME, load_checkpoint
from parity.serving.directory import check_destination, staged, write_sidecars
from parity.serving.manifest import FORMATS, MODEL_FILES, Manifest, library_versions, sha256_file, tensor_specs

# format -> builds it can come from (the first is the default).
SOURCES = {"onnx": ("torch", "keras"), "saved_model": ("keras",), "litert": ("keras",)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="the export directory to write")
    p.add_argument("--checkpoint", required=True, metavar="CK", help="canonical checkpoint to export")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument(
        "--framework",
        choices=("torch", "keras"),
        default=None,
        help="build to export from (onnx: torch by default, keras via tf2onnx; saved_model/litert: keras only)",
    )
    p.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: the exporter's)")
    p.add_argument("--verify", action="store_true", help="check the written artifact like `report --artifact`")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")


def export(
    checkpoint: str, fmt: str, out: str, *, framework: str | None = None, opset: int | None = None, force: bool = False
) -> Manifest:
    framework = framework or SOURCES[fmt][0]
    if framework not in SOURCES[fmt]:
        raise ValueError(
            f"--format {fmt} is exported from the {' or '.join(SOURCES[fmt])} build. Received: --framework {framework}"
        )
    if opset is not None and fmt != "onnx":
        raise ValueError(f"--opset applies to --format onnx only. Received: --format {fmt} --opset {opset}")
    if opset is not None and not 7 <= opset <= 30:
        raise ValueError(f"--opset must be an ONNX opset number (e.g. 17 or 18). Received: {opset}")
    dest = check_destination(out, force=force)
    if dest.resolve() == Path(checkpoint).resolve():
        raise ValueError(f"OUT must not be the checkpoint being exported. Received: {str(out)!r}")
    config, tensors = load_checkpoint(checkpoint)
    digest = sha256_file(Path(checkpoint) / WEIGHTS_NAME)
    with staged(dest) as tmp:
        model_path = tmp / MODEL_FILES[fmt]
        if framework == "torch":
            from bertcnn_torch import BertCNN
            from bertcnn_torch.export import export_onnx

            info = export_onnx(BertCNN._from_tensors(config, tensors), model_path, opset=opset)
        else:
            from bertcnn_tf import BertCNN
            from bertcnn_tf import export as tf_export

            model = BertCNN._from_tensors(config, tensors, dtype="float32")
            if fmt == "onnx":
                info = tf_export.export_onnx(model, model_path, opset=opset)
            elif fmt == "saved_model":
                info = tf_export.export_saved_model(model, model_path)
            else:
                info = tf_export.export_litert(model, model_path)
        inputs, outputs = tensor_specs(config.num_labels)
        manifest = Manifest(
            format=fmt,
            framework=framework,
            model_file=MODEL_FILES[fmt],
            source_sha256=digest,
            source=str(checkpoint),
            inputs=inputs,
            outputs=outputs,
            opset=info.get("opset"),
            versions=library_versions(),
        )
        write_sidecars(tmp, config, manifest, tokenizer_from=checkpoint)
    return manifest


def run(args: argparse.Namespace) -> int:
    manifest = export(
        args.checkpoint, args.format, args.out, framework=args.framework, opset=args.opset, force=args.force
    )
    files = sorted(p.name for p in Path(args.out).iterdir())
    opset = f", opset {manifest.opset}" if manifest.opset else ""
    print(f"wrote {args.out}: {manifest.format} from the {manifest.framework} build{opset}; {', '.join(files)}")
    if not args.verify:
        return 0
    from parity.serving.check import run_check

    return run_check(args.checkpoint, args.out)
