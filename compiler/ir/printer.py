"""One printer for the IR, used by dumps, `snnc inspect`, golden tests and error context.

Text form, one line per node, SSA style, then every parameter's dtype and shape (so a pass
that adds, drops or retypes parameters, like quantize-weights' int16 mantissas, shows):
    %conv3 : f32[N,64,8,8] = conv[k=3x3, s=1,1, p=1,1,1,1](%relu2)
        {weight: f32[64,32,3,3], bias: f32[64]}      (on the same line)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from .graph import Graph, Node

# MLIR-style element type names
_DTYPES = {"float32": "f32", "float64": "f64", "float16": "f16", "int8": "i8", "int16": "i16",
           "int32": "i32", "int64": "i64", "uint8": "u8", "uint16": "u16", "uint32": "u32",
           "bool": "i1"}


def dtype_text(dtype: Any) -> str:
    name = np.dtype(dtype).name
    return _DTYPES.get(name, name)


def shape_text(shape: tuple[int, ...]) -> str:
    """A node's value: float32, batch axis first."""
    return "f32[" + ",".join(["N", *map(str, shape)]) + "]"


def params_text(node: Node) -> str:
    """` {weight: f32[8,1,3,3], bias: f32[8]}`, or "" for a node without parameters."""
    if not node.params:
        return ""
    parts = [f"{k}: {dtype_text(np.asarray(v).dtype)}[{','.join(map(str, np.shape(v)))}]"
             for k, v in sorted(node.params.items())]
    return " {" + ", ".join(parts) + "}"


def node_line(node: Node) -> str:
    from ..ops import opdef

    args = ", ".join(f"%{i}" for i in node.inputs)
    settings = opdef(node.op).describe(node)
    settings = f"[{settings}]" if settings else ""
    return (f"%{node.name} : {shape_text(node.shape)} = {node.op}{settings}({args})"
            + params_text(node))


def to_text(graph: Graph) -> str:
    header = [f"# {k}: {v}" for k, v in sorted(graph.meta.items()) if _is_plain(v)]
    lines = [node_line(n) for n in graph.nodes]
    return "\n".join([*header, *lines, f"return %{graph.output}"]) + "\n"


def context(graph: Graph, name: str, around: int = 2) -> str:
    """The lines around one node, the node marked, for error messages."""
    names = [n.name for n in graph.nodes]
    k = names.index(name)
    out = []
    for j in range(max(0, k - around), min(len(names), k + around + 1)):
        out.append(("> " if j == k else "  ") + node_line(graph.nodes[j]))
    return "\n".join(out)


def _is_plain(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _param_summary(a: np.ndarray) -> dict[str, Any]:
    a = np.asarray(a)
    summary: dict[str, Any] = {"dtype": str(a.dtype), "shape": list(a.shape)}
    if a.size:
        summary.update(min=float(a.min()), max=float(a.max()))
    return summary


def node_fields(node: Node, param: Callable[[np.ndarray], Any]) -> dict[str, Any]:
    """The node as plain data, each parameter (in name order) as `param` writes it: a summary
    in IR dumps, a byte range in the artifact (runtime/artifact.py)."""
    return {
        "name": node.name,
        "op": node.op,
        "inputs": list(node.inputs),
        "shape": list(node.shape),
        "attrs": dict(node.attrs),
        "params": {k: param(v) for k, v in sorted(node.params.items())},
    }


def node_dict(node: Node) -> dict[str, Any]:
    source = None if node.source is None else {"name": node.source[0], "op": node.source[1]}
    return {**node_fields(node, _param_summary), "source": source}


def to_json(graph: Graph) -> str:
    data = {
        "format": "snnc-ir",
        "version": 1,
        "meta": {k: v for k, v in graph.meta.items() if _is_plain(v)},
        "nodes": [node_dict(n) for n in graph.nodes],
        "output": graph.output,
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


_FILL = {"input": "lightgrey", "if": "gold", "conv": "lightblue", "linear": "lightblue"}


def to_dot(graph: Graph) -> str:
    from ..ops import opdef

    lines = ["digraph snnc {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", '
             'fillcolor=white, fontname="Helvetica"];']
    for n in graph.nodes:
        detail = opdef(n.op).describe(n).replace('"', "'")
        label = f"{n.name}\\n{n.op} {shape_text(n.shape)}" + (f"\\n{detail}" if detail else "")
        fill = _FILL.get(n.op, "white")
        lines.append(f'  "{n.name}" [label="{label}", fillcolor={fill}];')
        lines.extend(f'  "{i}" -> "{n.name}";' for i in n.inputs)
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"text": to_text, "json": to_json, "dot": to_dot}
EXTENSIONS = {"text": "txt", "json": "json", "dot": "dot"}
