"""Small helpers shared by passes: find producers and consumers, and redirect uses."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..ir.graph import Graph, Node


def rename_uses(nodes: list[Node], renames: Mapping[str, str]) -> list[Node]:
    """Point every input that names a key of `renames` at its value instead."""
    out = []
    for n in nodes:
        if any(i in renames for i in n.inputs):
            n = n.replace(inputs=tuple(renames.get(i, i) for i in n.inputs))
        out.append(n)
    return out


def rebuild(graph: Graph, nodes: list[Node], renames: Mapping[str, str]) -> Graph:
    """A graph of `nodes` with uses redirected by `renames` (the output too)."""
    output = renames.get(graph.output, graph.output)
    return graph.replace(rename_uses(nodes, renames), output=output)


def sole_consumer(graph: Graph, name: str) -> bool:
    """True if exactly one node reads `name` and it is not the graph output."""
    return len(graph.consumers(name)) == 1 and name != graph.output


def along_axis(c: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """If the constant `c`, broadcast to `shape`, varies only along `axis`, that vector."""
    full = np.broadcast_to(c, shape)
    index = tuple(slice(None) if k == axis else 0 for k in range(len(shape)))
    vector = full[index]
    expand = tuple(slice(None) if k == axis else None for k in range(len(shape)))
    if np.array_equal(full, np.broadcast_to(vector[expand], shape)):
        return np.ascontiguousarray(vector, dtype=np.float32)
    return None


def channel_axis(node: Node) -> int:
    """The axis of a layer's output that its weight rows index: 0 for conv, last for linear."""
    return len(node.shape) - 1 if node.op == "linear" else 0
