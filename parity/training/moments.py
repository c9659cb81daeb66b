"""AdamW's state, framework-neutral: moments keyed `exp_avg.<canonical>` / `exp_avg_sq.<canonical>`.

Both trainers save and load the same file: torch's per-parameter state
(`{"step", "exp_avg", "exp_avg_sq"}`, in the canonical torch layout) and the Keras
optimizer's moments (in Keras layout, turned to torch layout by the weight table's
ops, like the weights) become one flat dict of arrays plus one step count. A state
written by either framework therefore resumes in the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

MOMENTS = ("exp_avg", "exp_avg_sq")  # torch's state keys


def moment_key(kind: str, name: str) -> str:
    """`exp_avg.bert.embeddings.word_embeddings.weight`, ... (torch's state key + canonical name)."""
    if kind not in MOMENTS:
        raise ValueError(f"Unknown AdamW moment; expected one of {MOMENTS}. Received: {kind!r}")
    return f"{kind}.{name}"


def split_moments(tensors: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{moment key: array} -> {"exp_avg": {name: array}, "exp_avg_sq": {name: array}}, strict.

    Refuses keys of neither kind and names that have one moment but not the other.
    """
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in MOMENTS}
    bad = []
    for key, value in tensors.items():
        # `exp_avg_sq.` must be tried first: `exp_avg.` is not its prefix, but be explicit.
        kind = next((k for k in sorted(MOMENTS, key=len, reverse=True) if key.startswith(k + ".")), None)
        if kind is None:
            bad.append(key)
        else:
            out[kind][key[len(kind) + 1 :]] = value
    unpaired = sorted(set(out["exp_avg"]) ^ set(out["exp_avg_sq"]))
    if bad or unpaired:
        raise ValueError(
            "AdamW state keys must be `exp_avg.<canonical name>` and `exp_avg_sq.<canonical name>`, both for "
            f"every tensor. Received: {len(bad)} keys of neither kind {bad[:5]}, {len(unpaired)} tensors with "
            f"one moment only {unpaired[:5]}"
        )
    return out


def from_torch_state(
    state: Mapping[int, Mapping[str, object]], names: Sequence[str]
) -> tuple[dict[str, np.ndarray], int]:
    """torch `optimizer.state_dict()["state"]` -> ({moment key: array}, step).

    `names[i]` is the canonical name of parameter index i (torch numbers the parameters
    of all param groups in order). Parameters that never had a gradient have no state
    in torch and get no key. Every parameter with state must be at the same step:
    AdamW steps all of them together.
    """
    tensors: dict[str, np.ndarray] = {}
    steps = set()
    for index, entry in state.items():
        if not 0 <= int(index) < len(names):
            raise ValueError(f"torch AdamW state has parameter index {index}, but {len(names)} names were given. "
                             f"Received: index {index}")  # fmt: skip
        name = names[int(index)]
        for kind in MOMENTS:
            tensors[moment_key(kind, name)] = _numpy(entry[kind])
        steps.add(round(float(_numpy(entry["step"]))))
    if len(steps) > 1:
        raise ValueError(f"torch AdamW parameters are at different steps; expected one. Received: {sorted(steps)}")
    return tensors, (steps.pop() if steps else 0)


def to_torch_state(tensors: Mapping[str, np.ndarray], step: int, names: Sequence[str]) -> dict[int, dict[str, object]]:
    """({moment key: array}, step) -> torch's per-index state (numpy arrays; `step` a float32 0-d array).

    The torch trainer wraps the arrays in tensors (`torch.from_numpy`) and puts them in
    `optimizer.state_dict()["state"]` before `load_state_dict`. Every moment must belong
    to one of `names`.
    """
    moments = split_moments(tensors)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(moments["exp_avg"]) - set(index))
    if unknown:
        raise ValueError(f"AdamW state names tensors the model does not train. Received: {unknown[:5]}")
    if not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"The AdamW step must be an integer >= 0. Received: {step!r}")
    # torch keeps `step` as a float32 0-d tensor on CPU (optimizer._get_scalar_dtype()).
    return {
        index[name]: {
            "step": np.array(float(step), np.float32),
            "exp_avg": m,
            "exp_avg_sq": moments["exp_avg_sq"][name],
        }
        for name, m in moments["exp_avg"].items()
    }


def _numpy(x: object) -> np.ndarray:
    """An own copy: a torch optimizer's state tensors keep changing after this returns."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.array(x)
