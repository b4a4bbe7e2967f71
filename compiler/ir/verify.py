"""Structural and shape checks, run after import and between passes."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from ..errors import ModelError
from .graph import Graph, Node

Shape = tuple[int, ...]


def infer_shape(node: Node, input_shapes: Sequence[Shape]) -> Shape:
    """The output shape of `node` given its inputs' shapes; a ModelError names the node."""
    from ..ops import opdef

    definition = opdef(node.op)
    if definition.arity is not None and len(input_shapes) != definition.arity:
        raise ModelError.at(node, f"expects {definition.arity} input(s), got "
                                  f"{len(input_shapes)}")
    try:
        return tuple(int(d) for d in definition.infer_shape(node, input_shapes))
    except (ValueError, KeyError, IndexError) as exc:
        raise ModelError.at(node, f"shape error: {exc}") from None


def verify(graph: Graph) -> None:
    """Raise ModelError on the first inconsistency found."""
    from ..ops import OPS

    if not graph.nodes or graph.nodes[0].op != "input":
        raise ModelError("the graph must start with its input node")
    seen: dict[str, Shape] = {}
    for node in graph.nodes:
        if node.name in seen:
            raise ModelError.at(node, f"duplicate node name '{node.name}'")
        if node.op not in OPS:
            raise ModelError.at(node, f"unknown IR op '{node.op}'")
        if node.op == "input" and node is not graph.nodes[0]:
            raise ModelError.at(node, "only one input node is allowed")
        missing = [i for i in node.inputs if i not in seen]
        if missing:
            raise ModelError.at(node, f"uses {missing} before they are defined "
                                      "(or they do not exist)")
        for key, value in node.params.items():
            if not np.all(np.isfinite(value)):
                raise ModelError.at(node, f"parameter '{key}' contains NaN or Inf")
        shape = infer_shape(node, [seen[i] for i in node.inputs])
        if shape != tuple(node.shape):
            raise ModelError.at(node, f"recorded shape {list(node.shape)} but inputs give "
                                      f"{list(shape)}")
        if node.op == "if" and not np.all(node.params.get("theta", 0) > 0):  # or missing
            raise ModelError.at(node, "firing threshold must be positive")
        if node.op == "if" and "spike_bits" in node.attrs:
            _check_spike_bits(node)
        seen[node.name] = shape
    if graph.output not in seen:
        raise ModelError(f"graph output '{graph.output}' is not a node")
    if not nx.is_directed_acyclic_graph(graph.to_networkx()):
        raise ModelError("the graph has a cycle")


def _check_spike_bits(node: Node) -> None:
    """Graded neurons store B only when B > 1 (binary ones have no attr)."""
    from ..ops.neuron import MAX_SPIKE_BITS

    bits = node.attrs["spike_bits"]
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= MAX_SPIKE_BITS:
        raise ModelError.at(node, f"spike_bits must be an integer in 2..{MAX_SPIKE_BITS} "
                            f"(binary neurons store none), got {bits!r}")
    if node.attrs.get("reset", "subtract") != "subtract":
        raise ModelError.at(node, "graded neurons reset by subtraction; reset "
                            f"'{node.attrs.get('reset')}' is binary only")
