"""Build a graph node by node, each node's shape inferred as it is added. Used by tests and by
code that makes graphs from scratch (rather than importing them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .graph import Graph, Node
from .verify import infer_shape, verify


class GraphBuilder:
    def __init__(self, shape: Sequence[int], name: str = "x") -> None:
        self.nodes = [Node(name, "input", attrs={"shape": list(shape)}, shape=tuple(shape))]

    def shape(self, name: str) -> tuple[int, ...]:
        return next(n.shape for n in self.nodes if n.name == name)

    def add(self, name: str, op: str, inputs: Sequence[str],
            attrs: dict[str, Any] | None = None, source: tuple[str, str] | None = None,
            **params: Any) -> str:
        """Add a node; `params` are converted to float32 arrays. Returns its name."""
        node = Node(name, op, tuple(inputs), attrs or {},
                    {k: np.asarray(v, np.float32) for k, v in params.items()}, source=source)
        self.nodes.append(node.replace(shape=infer_shape(node, [self.shape(i) for i in inputs])))
        return name

    def neuron(self, name: str, inp: str, theta: Any, v0: Any = 0.0, **extra: Any) -> str:
        """An IF neuron with reset by subtraction."""
        theta = np.asarray(theta, np.float32)
        v0 = np.broadcast_to(np.asarray(v0, np.float32), theta.shape)
        return self.add(name, "if", [inp], {"reset": "subtract"}, theta=theta, v0=v0, **extra)

    def graph(self, output: str | None = None, **meta: Any) -> Graph:
        """The verified graph; its output is the last node unless named."""
        g = Graph(tuple(self.nodes), output or self.nodes[-1].name, meta)
        verify(g)
        return g
