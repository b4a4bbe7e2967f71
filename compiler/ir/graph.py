"""The snnc graph IR: small immutable nodes holding plain data.

Every node produces exactly one value, named after the node; a node names its inputs, and edges
are derived from those names, never stored twice. Shapes are per sample (no batch axis): a conv
map is (C, H, W), a feature vector (F,). Parameters are float32 numpy arrays that passes never
mutate: a pass builds a new node with `dataclasses.replace` and a new graph with `Graph.replace`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np


@dataclass(frozen=True, eq=False)
class Node:
    """One IR operation.

    `attrs` holds JSON-able settings (ints, floats, strings, lists); `params` holds arrays.
    `source` is the (name, op_type) of the ONNX node this came from, for error messages.
    `meta` is where passes record what they learned (e.g. calibrated ranges), as in torch.fx.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    shape: tuple[int, ...] = ()
    source: tuple[str, str] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)

    def with_params(self, **params: np.ndarray) -> Node:
        return self.replace(params={**self.params, **params})

    def with_attrs(self, **attrs: Any) -> Node:
        return self.replace(attrs={**self.attrs, **attrs})

    @property
    def origin(self) -> str:
        """How to name this node to a user: the ONNX node it came from, if any."""
        if self.source is None:
            return f"IR node '{self.name}' ({self.op})"
        return f"node '{self.source[0]}' ({self.source[1]})"


@dataclass(frozen=True, eq=False)
class Graph:
    """A single-input, single-output DAG of nodes kept in topological order."""

    nodes: tuple[Node, ...]
    output: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {n.name: n for n in self.nodes})

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def node(self, name: str) -> Node:
        return self._by_name[name]  # type: ignore[attr-defined]

    @property
    def input(self) -> Node:
        return self.nodes[0]

    @property
    def output_node(self) -> Node:
        return self.node(self.output)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def to_networkx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n.name)
            g.add_edges_from((i, n.name) for i in n.inputs)
        return g

    def replace(self, nodes: Iterable[Node] | None = None, **changes: Any) -> Graph:
        """A new graph; nodes are re-sorted topologically and unused nodes are dropped."""
        new_nodes = tuple(self.nodes if nodes is None else nodes)
        output = changes.pop("output", self.output)
        return Graph(_sorted_live(new_nodes, output), output, changes.pop("meta", self.meta))

    def with_meta(self, **meta: Any) -> Graph:
        return self.replace(meta={**self.meta, **meta})


def _sorted_live(nodes: tuple[Node, ...], output: str) -> tuple[Node, ...]:
    """Topological order (stable w.r.t. the given order), keeping the input node and every node
    the output depends on. Dangling inputs are kept for the verifier to report."""
    by_name = {n.name: n for n in nodes}
    g = nx.DiGraph()
    for n in nodes:
        g.add_node(n.name)
        g.add_edges_from((i, n.name) for i in n.inputs if i in by_name)
    if output not in by_name or not nx.is_directed_acyclic_graph(g):
        return nodes  # the verifier reports what is wrong
    live = nx.ancestors(g, output) | {output, nodes[0].name}
    position = {n.name: k for k, n in enumerate(nodes)}
    order = nx.lexicographical_topological_sort(g.subgraph(live), key=position.__getitem__)
    return tuple(by_name[name] for name in order)


def unique_name(graph_names: Iterable[str], base: str) -> str:
    """`base`, or `base_1`, `base_2`, ... whichever is not yet taken."""
    taken = set(graph_names)
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"
