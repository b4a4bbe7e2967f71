"""The graph IR: nodes, graphs, shape inference, verification and printing."""

from .graph import Graph, Node, unique_name

__all__ = ["Graph", "Node", "unique_name"]
