"""`bertcnn export --checkpoint CK --format onnx|saved_model|litert OUT`: a self-contained serving directory.

OUT holds the model file(s), config.json (label names included), the tokenizer files
and manifest.json (format, framework, sha256 of CK's weights, library versions,
input/output names and dtypes). Written atomically; an existing OUT needs --force.
`--verify` runs the artifact check of `bertcnn report --artifact` right after.
`--text` puts the tokenizer in the graph (SavedModel: a `serving_text` signature; ONNX: the model
takes strings), normalising exactly as the checkpoint's `tokenizers` tokenizer
(`parity.serving.text_spec`); LiteRT cannot run those ops and is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from parity.commands import builds
from parity.commands.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_PARITY,
    FORCE_FOLDER_HELP,
    SOURCE_HELP,
    add_checkpoint,
    add_source_options,
    require,
    source_needs,
)
from parity.compare import format_table
from parity.io.destination import DIR, claim
from parity.io.files import sha256_file
from parity.io.owned import MARKER
from parity.io.reader import read_weights
from parity.serving.check import check_artifact
from parity.serving.directory import write_sidecars
from parity.serving.manifest import (
    FORMATS,
    MODEL_FILES,
    Manifest,
    library_versions,
    read_manifest,
    tensor_specs,
    text_specs,
)
from parity.serving.quantize import MODES, quantize_onnx

# format -> builds it can come from (the first is the default).
SOURCES = {"onnx": ("torch", "keras"), "saved_model": ("keras",), "litert": ("keras",)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="the export directory to write (new, or --force for a previous export)")
    add_checkpoint(p, what=f"the weights to export: {SOURCE_HELP}")
    add_source_options(p)
    p.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="onnx (onnxruntime), saved_model (TensorFlow, TF Serving) or litert (the LiteRT interpreter)",
    )
    p.add_argument(
        "--framework",
        choices=("torch", "keras"),
        default=None,
        help="build to export from (onnx: torch by default, keras via tf2onnx; saved_model/litert: keras only)",
    )
    p.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--quantize",
        choices=MODES,
        default=None,
        help="onnx only: int8 weights for every dense matmul (ONNX Runtime dynamic quantization; VNNI on CPUs that "
        "have it); int8-ffn-out-fp32 keeps the feed-forward output matmuls float32 (closer to float32, slower); "
        "checked by the int8 tolerance tier (default: float32)",
    )
    p.add_argument(
        "--text",
        action="store_true",
        help="the tokenizer in the graph: the artifact takes strings (saved_model: signature serving_text; onnx: "
        "input text), tokenizing exactly as the checkpoint's tokenizer.json (BERT WordPiece); needs TF Text / "
        "onnxruntime-extensions (the serving extra); not for litert",
    )
    p.add_argument(
        "--long-text",
        choices=("truncate",),
        default=None,
        help="a model trained with --long-text windows reads a long text whole, as windows, which an export's "
        "(batch, tokens) graph cannot hold; truncate exports it reading long texts cut at its length, recorded in "
        "the export's config.json (without it, such a model is refused)",
    )
    p.add_argument("--verify", action="store_true", help="check the written artifact like `report --artifact`")
    p.add_argument("--force", action="store_true", help=FORCE_FOLDER_HELP.format(what="an existing OUT"))


def export(
    checkpoint: str,
    fmt: str,
    out: str,
    *,
    framework: str | None = None,
    opset: int | None = None,
    force: bool = False,
    config: str | None = None,
    tokenizer: str | None = None,
    quantize: str | None = None,
    text: bool = False,
    long_text: str | None = None,
) -> Manifest:
    """Write the export directory `out` (atomically) from the `framework` build of `checkpoint`.

    `long_text="truncate"`: a model that reads long texts as windows is exported reading them cut (refused without).
    """
    framework = framework or SOURCES[fmt][0]
    if framework not in SOURCES[fmt]:
        raise ValueError(
            f"--format {fmt} is exported from the {' or '.join(SOURCES[fmt])} build. Received: --framework {framework}"
        )
    if opset is not None and fmt != "onnx":
        raise ValueError(f"--opset applies to --format onnx only. Received: --format {fmt} --opset {opset}")
    if quantize is not None and fmt != "onnx":
        raise ValueError(f"--quantize applies to --format onnx only. Received: --format {fmt} --quantize {quantize}")
    if opset is not None and not 7 <= opset <= 30:
        raise ValueError(f"--opset must be an ONNX opset number (e.g. 17 or 18). Received: {opset}")
    if text and fmt == "litert":
        raise ValueError(LITERT_TEXT)
    if text and quantize:
        raise ValueError(
            f"--text and --quantize together are not supported: quantize the ids-in export, or export --text in "
            f"float32. Received: --text --quantize {quantize}"
        )
    with claim(out, flag="OUT", kind=DIR, inputs=[checkpoint, config, tokenizer], force=force) as dest:
        return _export(checkpoint, fmt, dest, framework, opset, config, tokenizer, quantize, text, long_text)


# LiteRT has no kernels for the tokenizer's string ops (only TF Text's FastWordpieceTokenizer has one); what
# TensorFlow's converter says when it is asked for builtin ops plus custom ops (TF 2.21, docs/serving.md).
LITERT_TEXT = (
    "--text cannot be exported to --format litert: LiteRT has builtin kernels for none of the tokenizer's string "
    "ops (TF Text ships a LiteRT kernel only for FastWordpieceTokenizer; the converter asks for TF Select ops "
    "HashTableV2, LookupTableFindV2, RegexSplitWithOffsets, StaticRegexReplace, UnicodeDecode, UnsortedSegmentJoin, "
    "...); export litert without --text and tokenize in the app, or use --format saved_model|onnx --text. "
    "Received: --format litert --text"
)


def _text_spec(source, cfg, tokenizer):
    from parity.serving.text_spec import read_text_spec

    where = tokenizer or source.tokenizer_dir
    if where is None:
        raise ValueError(
            "--text puts the checkpoint's tokenizer in the graph, and this checkpoint carries none; pass --tokenizer "
            "DIR (a folder with the tokenizer.json it was trained with). Received: no tokenizer.json"
        )
    return read_text_spec(where, cfg.reading_length, cfg.pad_token_id)


def _export(checkpoint, fmt, dest, framework, opset, config, tokenizer, quantize, text=False,
            long_text=None) -> Manifest:  # fmt: skip
    source = read_weights(checkpoint, config=config)
    cfg = _reading(source.config, checkpoint, long_text)
    digest = sha256_file(source.weights_file)
    spec = _text_spec(source, cfg, tokenizer) if text else None  # refused before anything is written
    with dest.staged("export") as tmp:
        model_path = tmp / MODEL_FILES[fmt]
        if spec is not None:
            info = _export_text(framework, cfg, source.tensors, fmt, model_path, opset, spec)
        elif quantize:  # the float32 export first, then its int8 quantization in its place
            float_path = tmp / "float32.onnx"
            info = builds.runtime(framework).export(cfg, source.tensors, fmt, float_path, opset=opset)
            info |= quantize_onnx(float_path, model_path, quantize, intermediate_size=cfg.intermediate_size,
                                  hidden_size=cfg.hidden_size)  # fmt: skip
            float_path.unlink()
        else:
            info = builds.runtime(framework).export(cfg, source.tensors, fmt, model_path, opset=opset)
        if spec and fmt == "onnx":
            inputs, outputs = text_specs(cfg.num_labels, multi_label=cfg.multi_label)
        else:
            inputs, outputs = tensor_specs(cfg.num_labels, multi_label=cfg.multi_label)
        manifest = Manifest(
            format=fmt,
            framework=framework,
            model_file=MODEL_FILES[fmt],
            source_sha256=digest,
            source=str(checkpoint),
            inputs=inputs,
            outputs=outputs,
            opset=info.get("opset"),
            quantize=info.get("quantize"),
            versions=library_versions(),
            max_seq_length=cfg.max_seq_length,
            problem_type=cfg.problem_type,
            thresholds=None if cfg.thresholds is None else list(cfg.thresholds),
            text=spec is not None,
        )
        write_sidecars(tmp, cfg, manifest, tokenizer_from=tokenizer or source.tokenizer_dir)
    return manifest


def _reading(cfg, checkpoint, long_text):
    """The config the export records: a model that reads long texts as windows only with --long-text truncate."""
    if cfg.windows is None:
        return cfg
    if long_text != "truncate":
        cap = "" if cfg.max_windows is None else f" --max-windows {cfg.max_windows}"
        raise ValueError(
            f"{checkpoint} reads a text longer than {cfg.reading_length} tokens whole, as windows (trained with "
            f"--long-text windows --stride {cfg.window_stride}{cap}, recorded in its config.json); an export's graph "
            "takes (batch, tokens) and would cut such texts, giving other answers: pass --long-text truncate to "
            "export it reading them cut (its config.json says so), or serve the checkpoint itself. Received: a "
            f"windows model, window_stride={cfg.window_stride}"
        )
    return cfg.replace(window_stride=None, max_windows=None)


def _export_text(framework, cfg, tensors, fmt, model_path, opset, spec) -> dict:
    """The export with the tokenizer in its graph: the SavedModel's serving_text, or ONNX taking strings."""
    if fmt == "saved_model":
        return builds.runtime(framework).export(cfg, tensors, fmt, model_path, opset=opset, text=spec)
    from parity.serving.onnx_text import add_text

    info = builds.runtime(framework).export(cfg, tensors, fmt, model_path, opset=opset)
    return info | add_text(model_path, spec, cfg.labels, cfg.decision_thresholds if cfg.multi_label else None)


def run(args: argparse.Namespace) -> int:
    framework = args.framework or SOURCES[args.format][0]
    needs = export_needs(args.format, framework, args.verify, args.quantize, text=args.text)
    require("export", [*needs, *source_needs(args.checkpoint, "reading --checkpoint")])
    manifest = export(
        args.checkpoint,
        args.format,
        args.out,
        framework=args.framework,
        opset=args.opset,
        force=args.force,
        config=args.config,
        tokenizer=args.tokenizer,
        quantize=args.quantize,
        text=args.text,
        long_text=args.long_text,
    )
    files = sorted(p.name for p in Path(args.out).iterdir() if p.name != MARKER)
    opset = f", opset {manifest.opset}" if manifest.opset else ""
    opset += f", {manifest.quantize} weights" if manifest.quantize else ""
    opset += f", max_seq_length {manifest.max_seq_length}" if manifest.max_seq_length else ""
    opset += ", strings in (tokenizer in the graph)" if manifest.text else ""
    opset += ", long texts cut (the model was trained reading windows)" if args.long_text else ""
    print(f"wrote {args.out}: {manifest.format} from the {manifest.framework} build{opset}; {', '.join(files)}")
    if not args.verify:
        return 0
    return verify(args.checkpoint, args.out)


def verify(checkpoint: str | None, export_dir: str, *, write_json=None, as_json: bool = False) -> int:
    """The artifact check, printed as the report prints a run: exit 0 pass, 1 parity failure, 3 not checked.

    One code path for `bertcnn report --checkpoint CK --artifact OUT` and `bertcnn export --verify`.
    """
    if checkpoint is None:
        raise ValueError(
            "--artifact needs --checkpoint CK, the checkpoint the export was made from. Received: no --checkpoint"
        )
    manifest = read_manifest(export_dir)  # a broken or hostile export is refused (exit 2) before anything is printed
    require("report --artifact", [*builds.needs("torch", "the PyTorch reference"),
                                  *runtime_needs(manifest.format, manifest.text)])  # fmt: skip
    source = read_weights(checkpoint)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr if as_json else stdout):
        print(f"artifact: {export_dir}; reference: PyTorch build of {checkpoint}", flush=True)
        run = check_artifact(source, export_dir, builds.runtime("torch").logits)
        print(format_table(run) + "\n")
        if run.limitation:
            print(f"{run.label}: NOT CHECKED against {checkpoint}: {run.limitation}")
        elif not run.passed:
            print(f"{run.label}: the first output that disagrees is {run.first_divergence!r}")
        complete = run.limitation is None
        doc = {"passed": run.passed, "complete": complete, "source": str(checkpoint), "artifact": str(export_dir),
               "results": [run.to_dict()], "skipped": []}  # fmt: skip
        if write_json is not None:  # report --json-out
            write_json(doc)
        if not complete:
            print("PARITY NOT CHECKED: the export was not compared with this checkpoint (above)")
        else:
            print("PARITY OK" if run.passed else "PARITY FAILED")
    if as_json:
        stdout.write(json.dumps(doc, indent=2) + "\n")
    if not complete:
        return EXIT_INCOMPLETE
    return EXIT_OK if run.passed else EXIT_PARITY


def runtime_needs(fmt: str, text: bool = False) -> list[tuple[str, str, str]]:
    """What running a `fmt` export (`text`: a --text one) needs installed."""
    needs = {
        "onnx": [("onnxruntime", "running an ONNX export", "onnx")],
        "saved_model": [("tensorflow", "running a SavedModel", "tf")],
        "litert": [("ai_edge_litert", "running a LiteRT export", "litert")],
    }[fmt]
    if text and fmt in TEXT_MODULES:
        needs.append((TEXT_MODULES[fmt], f"running a --text {fmt} export (its graph tokenizes)", "serving"))
    return needs


TEXT_MODULES = {"onnx": "onnxruntime_extensions", "saved_model": "tensorflow_text"}


def export_needs(fmt: str, framework: str, verify_too: bool, quantize: str | None = None, text: bool = False) -> list:
    """What `bertcnn export --format fmt --framework framework [--verify] [--text]` imports."""
    why = f"--format {fmt}"
    needs = builds.needs(framework, f"exporting from the {framework} build")
    if text and fmt in TEXT_MODULES:
        needs.append((TEXT_MODULES[fmt], "--text (the tokenizer in the graph)", "serving"))
        if fmt == "onnx":
            needs.append(("onnx", "--text", "onnx"))
    if framework == "keras":
        needs.append(("tensorflow", why, "tf"))  # every Keras export is written by TensorFlow
    if fmt == "onnx" and quantize:
        needs.append(("onnxruntime", "--quantize (ONNX Runtime's quantizer)", "onnx"))
    if fmt == "onnx" and framework == "torch":
        needs += [("onnx", why, "onnx"), ("onnxscript", why, "onnx")]
    elif fmt == "onnx":
        needs += [("tf2onnx", why, "tf2onnx"), ("onnx", why, "onnx")]
    elif fmt == "litert":
        needs.append(("ai_edge_litert", why + " (the builtin-ops check)", "litert"))
    if verify_too:
        needs += [*builds.needs("torch", "--verify (the PyTorch reference)"), *runtime_needs(fmt, text)]
    return needs
