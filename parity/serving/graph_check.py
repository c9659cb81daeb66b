"""What an export's graph may run, read from its files before any runtime executes it.

A SavedModel is a program: loading it and calling a signature runs whatever ops its graph
holds, file writes included (`tf.io.write_file` is one op). `bertcnn` runs an export only
when every op in its graph is one `bertcnn export` itself writes (`parity.serving.allowed_ops`),
checked on `saved_model.pb` as data (protobuf), before TensorFlow loads it.

Ops are checked by role, because the same graph holds code that runs at different times:
- "save": the checkpoint writer TensorFlow puts in every SavedModel (the function behind
  `saver_def.save_tensor_name`); the only place file-writing ops (SaveV2, MergeV2Checkpoints)
  may appear. No loader runs it; it runs only when a program saves the model again.
- "restore": the checkpoint reader (`saver_def.restore_op_name`), run by the session loader.
- "serve": everything else: the signatures, the functions of the saved objects, and any
  function no role reaches (a loader may still call it).
A function reached from several roles is held to each of their lists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

ROLES = ("serve", "restore", "save")


def _called(nodes: Iterable, functions: set[str]) -> set[str]:
    """Functions the nodes call: by op name, or through a function-valued attribute (f, then_branch, body...)."""
    out = set()
    for node in nodes:
        if node.op in functions:
            out.add(node.op)
        for value in node.attr.values():
            if value.HasField("func"):
                out.add(value.func.name)
            out.update(f.name for f in value.list.func)
    return out


def _closure(start: set[str], calls: Mapping[str, set[str]]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen and name in calls:
            seen.add(name)
            todo.extend(calls[name])
    return seen


def graph_ops(meta_graph) -> dict[str, dict[str, set[str]]]:
    """role -> {op: where it is (graph node or function names)} for one MetaGraphDef."""
    graph = meta_graph.graph_def
    library = {f.signature.name: f for f in graph.library.function}
    names = set(library)
    calls = {name: _called(f.node_def, names) for name, f in library.items()}
    saver = meta_graph.saver_def
    roots = {
        "save": saver.save_tensor_name.split(":")[0].lstrip("^") if saver.save_tensor_name else None,
        "restore": saver.restore_op_name.split(":")[0].lstrip("^") if saver.restore_op_name else None,
    }
    role_of_node = {n.name: next((r for r, root in roots.items() if root == n.name), "serve") for n in graph.node}
    reached: dict[str, set[str]] = {r: set() for r in ROLES}
    for role in ROLES:
        nodes = [n for n in graph.node if role_of_node[n.name] == role]
        reached[role] = _closure(_called(nodes, names), calls)
    unreached = names - set().union(*reached.values())
    reached["serve"] |= _closure(unreached, calls)
    ops: dict[str, dict[str, set[str]]] = {r: {} for r in ROLES}
    for node in graph.node:
        if node.op not in names:
            ops[role_of_node[node.name]].setdefault(node.op, set()).add(f"graph node {node.name!r}")
    for role in ROLES:
        for name in reached[role]:
            for node in library[name].node_def:
                if node.op not in names:
                    ops[role].setdefault(node.op, set()).add(f"function {name!r}")
    return ops


def read_saved_model(path: str | os.PathLike):
    """saved_model.pb as a protobuf message (TensorFlow's own schema); nothing in it runs."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(path) / "saved_model.pb"
    message = saved_model_pb2.SavedModel()
    try:
        message.ParseFromString(pb.read_bytes())
    except Exception as e:  # protobuf's DecodeError, or a message over its size limits
        raise ValueError(
            f"{pb} is not a readable SavedModel graph ({type(e).__name__}); re-export it with `bertcnn export`. "
            f"Received: {str(pb)!r}"
        ) from None
    return message


def saved_model_ops(path: str | os.PathLike) -> dict[str, set[str]]:
    """role -> the ops a SavedModel's graphs hold in that role (every meta graph: a loader picks one by tag)."""
    out: dict[str, set[str]] = {r: set() for r in ROLES}
    for meta_graph in read_saved_model(path).meta_graphs:
        for role, ops in graph_ops(meta_graph).items():
            out[role] |= set(ops)
    return out


def check_saved_model(path: str | os.PathLike, *, text: bool = False) -> None:
    """Refuse (ValueError, naming the op and where it is) a SavedModel holding an op `bertcnn export` never writes.

    `text`: the export's manifest says `--text`, whose graph also holds the tokenizer's ops (TF Text's
    among them); an export without it may not hold them.
    """
    from parity.serving.allowed_ops import TENSORFLOW, allowed

    for meta_graph in read_saved_model(path).meta_graphs:
        for role, ops in graph_ops(meta_graph).items():
            foreign = sorted(set(ops) - allowed(role, text=text))
            if foreign:
                op = foreign[0]
                where = sorted(ops[op])[0]
                others = f" (and {len(foreign) - 1} more: {', '.join(foreign[1:6])})" if len(foreign) > 1 else ""
                raise ValueError(
                    f"{path} runs the TensorFlow op {op!r}{others} in its {role} graph ({where}), and no export "
                    f"`bertcnn export` writes does (recorded with TensorFlow {TENSORFLOW}): it was made or changed by "
                    "something else, and running it could do "
                    "anything that op does (write files, say), so it is not run; re-export the model with `bertcnn "
                    f"export`, or run it with TensorFlow yourself if you trust where it came from. Received: {op}"
                )
