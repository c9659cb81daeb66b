"""Run an export in its own runtime: onnxruntime, `tf.saved_model.load`, the LiteRT interpreter.

A runner imports only its runtime (never torch, never Keras), so what is checked is
what a server would run. `export_forward` gives `bertcnn predict` an in-process
forward; `parity.serving.child.run_in_child` runs batches in a fresh process for the
parity check. A SavedModel is run there twice over: by `tf.saved_model.load`,
and by the session loader TF Serving and `saved_model_cli` use (through both of its
signatures), because the two restore variables differently and one can work where
the other does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from parity.inputs import check_inputs
from parity.serving.directory import load_config
from parity.serving.graph_check import check_saved_model
from parity.serving.manifest import (
    INPUT_NAMES,
    MULTI_LABEL_TEXT_OUTPUTS,
    OUTPUT_NAME,
    SIGNATURE,
    TEXT_INPUT,
    TEXT_OUTPUTS,
    TEXT_SIGNATURE,
    read_manifest,
)
from parity.stderr import quiet_native_stderr

RUNTIMES = {"onnx": "onnxruntime", "saved_model": "tensorflow", "litert": "ai-edge-litert"}
# What to install for each runtime (the pyproject extras).
EXTRAS = {"onnx": "bertcnn[onnx]", "saved_model": "bertcnn[tf]", "litert": "bertcnn[litert]"}
# What a `--text` export's runtime needs beyond that: the tokenizer ops in its graph.
TEXT_RUNTIMES = {"onnx": ("onnxruntime_extensions", "onnxruntime-extensions"), "saved_model": ("tensorflow_text",
                 "tensorflow-text")}  # fmt: skip


def _one_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0] == "Graph execution error:":
        # TF's header; the reason's first sentence names it ("Could not find variable fc/bias"), the rest is advice.
        return lines[1].split(". ")[0][:300]
    return (lines or [type(e).__name__])[0][:300]


def _broken(path: Path, fmt: str, e: BaseException) -> ValueError:
    return ValueError(
        f"{path} is not a loadable {fmt} model ({_one_line(e)}); re-export it with `bertcnn export`. "
        f"Received: {str(path)!r}"
    )


def _need(module: str, fmt: str, text: bool = False):
    import importlib

    try:
        with quiet_native_stderr():  # TensorFlow's start-up lines, and its CUDA probe's at the first device query
            imported = importlib.import_module(module)
            if module == "tensorflow":
                imported.config.list_physical_devices()
            return imported
    except ImportError:
        what = f"{RUNTIMES[fmt]} and {TEXT_RUNTIMES[fmt][1]} (its graph tokenizes)" if text else RUNTIMES[fmt]
        extra = "bertcnn[serving]" if text else EXTRAS[fmt]
        raise ValueError(
            f"running a {'--text ' if text else ''}{fmt} export needs {what}: pip install '{extra}'. "
            f"Received: {module} not installed"
        ) from None


def _decoded(out: dict) -> dict[str, np.ndarray]:
    """Class names as str (TensorFlow gives bytes)."""
    out = dict(out)
    if "label" in out:
        out["label"] = np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in out["label"]], object)
    return out


def _text_outputs(path: Path, outputs: Sequence[str]) -> tuple[str, ...]:
    """The --text interface's output names `outputs` hold (a single- or a multi-label model's), else refused."""
    for names in (TEXT_OUTPUTS, MULTI_LABEL_TEXT_OUTPUTS):
        if sorted(outputs) == sorted(names):
            return names
    raise ValueError(
        f"{path} does not have the --text interface: outputs {list(TEXT_OUTPUTS)} (multi-label: "
        f"{list(MULTI_LABEL_TEXT_OUTPUTS)}); re-export it with `bertcnn export --text`. Received: outputs "
        f"{sorted(outputs)}"
    )


_LOADED: list = []  # the extensions' library, loaded once and kept


def extensions_library() -> str:
    """onnxruntime-extensions' custom-op library, found without importing the package (whose import loads
    torch and transformers when they are installed): the file `get_library_path()` returns.

    Loaded here first, bound now to its own symbols (RTLD_DEEPBIND): it carries its own RE2, and when
    TensorFlow (Text) is in the same process, lazily bound calls reached TensorFlow's RE2 instead and
    the regexes silently misbehaved ("world," became world ##,). onnxruntime then reuses this handle.
    """
    import ctypes
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_extensions_pydll*")) if spec else []
    found = [p for p in found if p.suffix in (".so", ".pyd", ".dylib")]
    path = str(found[0]) if found else _need("onnxruntime_extensions", "onnx", text=True).get_library_path()
    if not _LOADED and os.name == "posix":
        mode = os.RTLD_NOW | os.RTLD_LOCAL | getattr(os, "RTLD_DEEPBIND", 0)
        _LOADED.append(ctypes.CDLL(path, mode=mode))
    return path


class OnnxRunner:
    """onnxruntime, CPU. Inputs are fed by name: onnxruntime lists them alphabetically."""

    def __init__(self, path: Path, threads: int | None = None, text: bool = False):
        ort = _need("onnxruntime", "onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not ours to show
        if threads:
            options.intra_op_num_threads = threads
        if text:  # the tokenizer's string ops: onnxruntime-extensions' custom-op library, nothing else
            options.register_custom_ops_library(extensions_library())
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise _broken(path, "onnx", e) from None
        inputs, outputs = [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        self.takes_ids = not text
        if text:
            if inputs != [TEXT_INPUT]:
                _text_outputs(path, [])
            self.text_names = _text_outputs(path, outputs)
        else:
            _check_names(path, inputs, outputs)
        self.width = _width(self.session.get_outputs()[outputs.index(OUTPUT_NAME)].shape)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if not self.takes_ids:
            raise ValueError(
                "this --text ONNX export takes strings only, and this run sends token ids (evaluate, for one): "
                "run the checkpoint, or an export made without --text (`bertcnn predict` sends it strings). "
                "Received: token ids"
            )
        return self.session.run([OUTPUT_NAME], {k: inputs[k] for k in INPUT_NAMES})[0]

    def text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """(batch,) strings -> every output of the --text interface."""
        values = self.session.run(list(self.text_names), {TEXT_INPUT: np.array(list(texts), dtype=object)})
        return _decoded(dict(zip(self.text_names, values, strict=True)))


def _complete_saved_model(path: Path) -> None:
    if not (path / "variables").is_dir() or not (path / "saved_model.pb").is_file():
        raise ValueError(
            f"{path} is not a complete SavedModel: saved_model.pb and variables/ are both needed; re-export it. "
            f"Received: {sorted(p.name for p in path.iterdir()) if path.is_dir() else 'not a folder'}"
        )


class SavedModelRunner:
    """`tf.saved_model.load` and its `serving_default` signature, in eager TensorFlow."""

    def __init__(self, path: Path, threads: int | None = None, text: bool = False):
        tf = _need("tensorflow", "saved_model")
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        _complete_saved_model(path)
        check_saved_model(path, text=text)  # before TensorFlow runs any of it
        if text:
            _need("tensorflow_text", "saved_model", text=True)  # registers the TF Text ops the graph uses
        try:
            loaded = tf.saved_model.load(str(path))
            self.signature = loaded.signatures[SIGNATURE]
            self.text_signature = loaded.signatures[TEXT_SIGNATURE] if text else None
        except Exception as e:  # TF raises many types for broken protos and checkpoints
            raise _broken(path, "saved_model", e) from None
        self._keep = loaded  # the signature holds weak references to the loaded object's variables
        self._tf = tf
        self._path = path
        spec = self.signature.structured_input_signature[1]
        _check_names(path, list(spec), list(self.signature.structured_outputs))
        self.width = _width(self.signature.structured_outputs[OUTPUT_NAME].shape.as_list())

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        out = self.signature(**{k: self._tf.constant(inputs[k]) for k in INPUT_NAMES})
        return out[OUTPUT_NAME].numpy()

    def text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The `serving_text` signature: (batch,) strings -> every output of the --text interface."""
        out = self.text_signature(text=self._tf.constant(list(texts), self._tf.string))
        return _decoded({k: out[k].numpy() for k in _text_outputs(self._path, list(out))})


SESSION_LOADER = (
    "the session loader (tf.compat.v1.saved_model.loader.load, how TF Serving, saved_model_cli and the "
    "C++/Java/Go APIs load a SavedModel)"
)


class SavedModelSessionRunner:
    """A SavedModel loaded into a TF1 session, fed by the signature_def's tensor names: what TF Serving runs.

    Unlike `tf.saved_model.load`, which rebuilds the saved objects and binds the functions to
    them, this loader imports the graph and runs its restore op on `variables/`: a variable the
    graph reads but the restore op does not assign fails here only ("Could not find variable").
    Inputs are cast to each signature's declared dtype, as TF Serving does with JSON numbers.
    """

    def __init__(self, path: Path, threads: int | None = None, text: bool = False):
        tf = _need("tensorflow", "saved_model")
        _complete_saved_model(path)
        check_saved_model(path, text=text)  # before TensorFlow runs any of it
        if text:
            _need("tensorflow_text", "saved_model", text=True)
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads or 0)
        self.session = tf.compat.v1.Session(graph=tf.Graph(), config=config)
        try:
            self._meta = tf.compat.v1.saved_model.loader.load(self.session, [tf.saved_model.SERVING], str(path))
        except Exception as e:
            raise ValueError(
                f"{path} does not load under {SESSION_LOADER}: {_one_line(e)}; re-export it with `bertcnn export`. "
                f"Received: {str(path)!r}"
            ) from None
        self._path, self._tf, self._signatures = path, tf, {}
        self._signature(SIGNATURE)

    def _signature(self, name: str) -> tuple[dict[str, tuple[str, type]], str]:
        """(input name -> (tensor name, numpy dtype), output tensor name), checked on first use."""
        if name not in self._signatures:
            if name not in self._meta.signature_def:
                raise ValueError(
                    f"{self._path} lacks the signature {name!r} that `bertcnn export` writes; re-export it. "
                    f"Received: {sorted(self._meta.signature_def)}"
                )
            sig = self._meta.signature_def[name]
            _check_names(self._path, list(sig.inputs), list(sig.outputs))
            feeds = {k: (v.name, self._tf.dtypes.as_dtype(v.dtype).as_numpy_dtype) for k, v in sig.inputs.items()}
            self._signatures[name] = (feeds, sig.outputs[OUTPUT_NAME].name)
        return self._signatures[name]

    def __call__(self, inputs: Mapping[str, np.ndarray], signature: str = SIGNATURE) -> np.ndarray:
        feeds, fetch = self._signature(signature)
        return self.session.run(fetch, {name: np.asarray(inputs[k], dtype) for k, (name, dtype) in feeds.items()})

    def text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """`serving_text` as TF Serving runs it: the signature_def's tensor names, strings fed as bytes."""
        if TEXT_SIGNATURE not in self._meta.signature_def:
            raise ValueError(f"{self._path} lacks the {TEXT_SIGNATURE!r} signature of a --text export; re-export it. "
                             f"Received: {sorted(self._meta.signature_def)}")  # fmt: skip
        sig = self._meta.signature_def[TEXT_SIGNATURE]
        fetch = {k: sig.outputs[k].name for k in _text_outputs(self._path, list(sig.outputs))}
        data = np.array([t.encode("utf-8") for t in texts], dtype=object)
        return _decoded(self.session.run(fetch, {sig.inputs[TEXT_INPUT].name: data}))


class LiteRTRunner:
    """The LiteRT interpreter (ai-edge-litert) through its `serving_default` signature."""

    def __init__(self, path: Path, threads: int | None = None, text: bool = False):
        interpreter = _need("ai_edge_litert.interpreter", "litert")
        try:
            self.interpreter = interpreter.Interpreter(model_path=str(path), num_threads=threads)
            self.runner = self.interpreter.get_signature_runner("serving_default")
        except Exception as e:
            raise _broken(path, "litert", e) from None
        ops = sorted({op["op_name"] for op in self.interpreter._get_ops_details()})
        foreign = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
        if foreign:  # TensorFlow ops (Flex) or custom ones: bertcnn's LiteRT exports are builtin ops only
            raise ValueError(
                f"{path} needs ops outside LiteRT's builtins ({', '.join(foreign[:5])}), which `bertcnn export` never "
                f"writes and this interpreter does not run; re-export the model with `bertcnn export`. "
                f"Received: {foreign[0]}"
            )
        sig = self.interpreter.get_signature_list()["serving_default"]
        _check_names(path, sig["inputs"], sig["outputs"])
        out = self.runner.get_output_details()[OUTPUT_NAME]
        self.width = _width([int(d) if d >= 0 else None for d in out.get("shape_signature", out["shape"])])
        self._delegated = False

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        x = {k: inputs[k] for k in INPUT_NAMES}
        if self._delegated:
            return self.runner(**x)[OUTPUT_NAME]
        with quiet_native_stderr():  # the first run prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            out = self.runner(**x)[OUTPUT_NAME]
        self._delegated = True
        return out


RUNNERS = {"onnx": OnnxRunner, "saved_model": SavedModelRunner, "litert": LiteRTRunner}


def _check_names(path: Path, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    if sorted(inputs) != sorted(INPUT_NAMES) or list(outputs) != [OUTPUT_NAME]:
        raise ValueError(
            f"{path} does not have the export interface: inputs {list(INPUT_NAMES)} and output {OUTPUT_NAME!r}. "
            f"Received: inputs {sorted(inputs)}, outputs {list(outputs)}"
        )


def _width(shape: Sequence) -> int | None:
    """The logits' width a model declares, (batch, width); None when it leaves it open."""
    if len(shape) != 2:
        return -1  # not (batch, labels): never the config's width
    return shape[1] if isinstance(shape[1], int) and not isinstance(shape[1], bool) else None


def check_width(directory: str | os.PathLike, config, width: int | None) -> None:
    """The export's config.json names one class per logit its model computes, or its labels would be wrong."""
    if width is not None and width != config.num_labels:
        names = f" ({', '.join(config.labels)})" if config.label_names else ""
        computes = f"{width} logits per text" if width >= 0 else "outputs that are not (batch, classes) logits"
        raise ValueError(
            f"{Path(directory) / 'config.json'} names {config.num_labels} classes{names} but the export's model "
            f"computes {computes}, so its labels would be wrong; the config belongs to another model: re-export the "
            f"checkpoint with `bertcnn export`. Received: num_labels={config.num_labels}, {computes}"
        )


def open_export(directory: str | os.PathLike, *, threads: int | None = None):
    """(runner, manifest, config) for an export directory; broken or hostile files raise ValueError.

    The config must fit the model: as many classes as the model's logits (checked again on each output
    when the model leaves the width open)."""
    d = Path(directory)
    manifest = read_manifest(d)
    config = load_config(d)
    runner = RUNNERS[manifest.format](d / manifest.model_file, threads, text=manifest.text)
    check_width(d, config, runner.width)
    return runner, manifest, config


def full_inputs(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All three inputs as int64 (mask of ones, token types of zeros when absent)."""
    ids = np.asarray(inputs["input_ids"], dtype=np.int64)
    mask = inputs.get("attention_mask")
    types = inputs.get("token_type_ids")
    return {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids) if mask is None else np.asarray(mask, dtype=np.int64),
        "token_type_ids": np.zeros_like(ids) if types is None else np.asarray(types, dtype=np.int64),
    }


def export_forward(directory: str | os.PathLike, *, threads: int | None = None):
    """(forward, config) for an export, like a build's `runtime.forward`: numpy in, logits out.

    Inputs are checked in numpy first (ids in range, 0/1 mask, no all-padding row):
    the runtimes do not check values, and an out-of-range id would read garbage.
    """
    runner, _, config = open_export(directory, threads=threads)
    return _ids_forward(runner, config, directory), config


def _ids_forward(runner, config, directory):
    def forward(inputs: dict[str, np.ndarray], *, return_taps: bool = False) -> np.ndarray:
        if return_taps:
            raise ValueError(
                "an export computes logits only; for taps run the checkpoint it came from "
                "with --framework torch|keras. "
                f"Received: {str(directory)!r}"
            )
        x = full_inputs(inputs)
        check_inputs(x["input_ids"], x["attention_mask"], x["token_type_ids"], config)
        logits = np.asarray(runner(x), dtype=np.float32)
        check_width(directory, config, logits.shape[-1] if logits.ndim == 2 else -1)
        return logits

    return forward


def export_text_forward(directory: str | os.PathLike, *, threads: int | None = None):
    """(texts -> logits, ids forward, config) for a `--text` export: strings go into the artifact, which tokenizes
    them. The ids forward is `export_forward`'s (a --text ONNX model refuses ids: it takes strings only)."""
    runner, manifest, config = open_export(directory, threads=threads)
    if not manifest.text:
        raise ValueError(f"{directory} takes token ids, not strings: export it with --text. Received: {directory!r}")

    def forward(texts: Sequence[str]) -> np.ndarray:
        logits = np.asarray(runner.text(texts)[OUTPUT_NAME], dtype=np.float32)
        check_width(directory, config, logits.shape[-1] if logits.ndim == 2 else -1)
        return logits

    return forward, _ids_forward(runner, config, directory), config
