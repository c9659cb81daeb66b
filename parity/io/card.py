"""The model card (`README.md`) a checkpoint carries: YAML metadata the Hugging Face hub reads, then prose.

Written with the checkpoint (`init`, `port`, `train`, `save_pretrained`): labels, the backbone,
the run's evaluation metrics, the parity figures that hold for it, how to load it from either
side, and what `BertForSequenceClassification.from_pretrained` does to it (a trap we cannot
close: transformers loads the BERT, drops the CNN head and draws a fresh classifier).
The metadata is written as YAML flow values (JSON, with a point in every float), so no YAML
library is needed to write it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parity.config import HF_ARCHITECTURE, MODEL_TYPE, BertCnnConfig
from parity.tolerance import tolerance_for

CARD_NAME = "README.md"
# Per-epoch evaluation keys the trainer records (`parity.training.loop`) -> model-index metric types.
_METRICS = {"eval_accuracy": "accuracy", "eval_macro_f1": "f1", "eval_loss": "loss"}


def card_text(
    config: BertCnnConfig,
    *,
    name: str,
    dtype: str,
    source: str | None = None,
    base_model: str | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The card for a checkpoint named `name`: `source` says where its weights came from (for the prose),
    `base_model` is a hub id of the BERT it starts from (hub metadata), `metrics` the run's records."""
    evaluated = _last_evaluation(metrics)
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": [MODEL_TYPE, "bertcnn", "text-classification", "custom_code"],
    }
    if base_model:
        meta["base_model"] = base_model
    if evaluated:
        meta["model-index"] = [{"name": name, "results": [_results(evaluated)]}]
    forward, artifact = tolerance_for("float32", "cpu", "forward"), tolerance_for("float32", "cpu", "artifact")
    meta["bertcnn"] = {
        "labels": list(config.labels),
        "max_seq_length": config.max_seq_length,
        "dtype": dtype,
        "kernel_sizes": list(config.kernel_sizes),
        "num_filters": config.num_filters,
        "mask_padding": config.mask_padding,
        "parity": {
            "torch_vs_keras_logits_atol": forward.atol,
            "torch_vs_keras_measured": forward.measured,
            "export_logits_atol": artifact.atol,
            "export_measured": artifact.measured,
            "transformers_auto_model_vs_bertcnn_torch": "the same forward code (modeling_bertcnn.py): equal logits",
        },
    }
    if source:
        meta["bertcnn"]["source"] = source
    head = "\n".join(f"{k}: {_flow(v)}" for k, v in meta.items())
    return f"---\n{head}\n---\n\n" + _prose(config, name, dtype, source, evaluated)


def _flow(value: Any) -> str:
    """`value` as a YAML flow value: JSON, but every float with a point (YAML 1.1 reads `1e-05` as a string)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        mantissa, e, exponent = repr(value).partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + e + exponent
    return json.dumps(value, ensure_ascii=False)


def _last_evaluation(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The newest record with evaluation results (the kept epoch's when the run kept its best)."""
    evaluated = [m for m in metrics if any(k in m for k in _METRICS)]
    if not evaluated:
        return {}
    best = evaluated[-1].get("best_epoch")
    kept = [m for m in evaluated if best is not None and m.get("epoch") == best]
    return dict((kept or evaluated)[-1])


def _epoch(record: Mapping[str, Any]) -> str:
    """The record's epoch as the trainer prints it (from 1; records count from 0)."""
    epoch = record.get("epoch")
    return f"epoch {epoch + 1}" if isinstance(epoch, int) else "the last epoch"


def _results(record: Mapping[str, Any]) -> dict[str, Any]:
    at = f" ({_epoch(record)})"
    metrics = [
        {"type": kind, "value": round(float(record[key]), 6), "name": f"{key.replace('_', ' ')}{at}"}
        for key, kind in _METRICS.items()
        if key in record
    ]
    # The hub's model-index requires a dataset; a run's evaluation file has no hub id, so it is named for what it is.
    dataset = {"type": "bertcnn-eval", "name": "the run's evaluation file (bertcnn train --eval)"}
    return {"task": {"type": "text-classification"}, "dataset": dataset, "metrics": metrics}


def _prose(config: BertCnnConfig, name: str, dtype: str, source: str | None, evaluated: Mapping[str, Any]) -> str:
    widths = "/".join(str(k) for k in config.kernel_sizes)
    labels = ", ".join(config.labels)
    lines = [
        f"# {name}",
        "",
        f"A BERT-CNN text classifier ({dtype}): BERT ({config.num_hidden_layers} layers, hidden "
        f"{config.hidden_size}) -> Conv1d of widths {widths} x {config.num_filters} filters -> ReLU -> max over time "
        f"-> linear, {config.num_labels} classes: {labels}. It reads "
        f"{config.reading_length} tokens per text ([CLS] and [SEP] included)."
        + (f" Weights from {source}." if source else ""),
        "",
        "## Use it",
        "",
        "With transformers alone (`trust_remote_code=True` runs `modeling_bertcnn.py` from this folder, which "
        "imports torch and transformers only; with `bertcnn_torch` imported, the classes are registered and the "
        "flag is not needed):",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, pipeline",
        "",
        f'model = AutoModelForSequenceClassification.from_pretrained("{name}", trust_remote_code=True)',
        f'classify = pipeline("text-classification", model="{name}", trust_remote_code=True)',
        "```",
        "",
        "With bertcnn (either framework: `pip install bertcnn[torch]` or `bertcnn[tf]`):",
        "",
        "```bash",
        f'bertcnn predict --checkpoint {name} --framework torch "a text"',
        "```",
        "",
        "## Not `BertForSequenceClassification`",
        "",
        f"`BertForSequenceClassification.from_pretrained` loads this folder without an error but is not this "
        f"model: transformers warns that a `{MODEL_TYPE}` config builds a `bert` model, keeps the BERT weights, "
        f"leaves out the CNN head (`convs.*`, `fc.*`: listed only as unexpected keys in the load report) and draws "
        f"a new random classifier on the pooled [CLS] vector, so its predictions are random. Load "
        f"`{HF_ARCHITECTURE}` through the Auto classes as above, or with bertcnn.",
    ]
    if evaluated:
        shown = ", ".join(f"{k.removeprefix('eval_')} {float(evaluated[k]):.4f}" for k in _METRICS if k in evaluated)
        lines += ["", "## Evaluation", "", f"On the run's evaluation file, {_epoch(evaluated)}: {shown}."]
    lines += [
        "",
        "## Parity",
        "",
        "The PyTorch and Keras builds of bertcnn compute the same function from these weights: float32 logits "
        f"agree within {tolerance_for('float32', 'cpu', 'forward').atol:g} (measured: "
        f"{tolerance_for('float32', 'cpu', 'forward').measured}); serving exports within "
        f"{tolerance_for('float32', 'cpu', 'artifact').atol:g}. `bertcnn report --checkpoint {name}` checks it.",
        "",
    ]
    return "\n".join(lines)


def read_run_metrics(path: Path) -> tuple[dict[str, Any], ...]:
    """A training run's records (`metrics.jsonl`) for a card; unreadable lines are left out (a card is prose)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    except (OSError, UnicodeDecodeError):
        return ()
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return tuple(records)
