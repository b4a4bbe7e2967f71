"""convert: ANN -> SNN. Every ReLU/Clip(0, a) with a threshold becomes an integrate-and-fire
neuron with reset by subtraction, firing at theta and emitting spikes of amplitude theta.
A final Softmax is dropped (it does not change the argmax of the decoded output).

Before:  %relu1 : f32[N,16,8,8] = relu[theta=1.734](%conv1)
After:   %relu1 : f32[N,16,8,8] = if[theta=1.734, v0=0, reset=subtract](%conv1)
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..ir.graph import Graph, Node
from .rewrite import rebuild

NAME = "convert"


def _neuron(node: Node) -> Node:
    if "theta" not in node.params:
        raise ModelError.at(node, "activation has no threshold; run normalize-thresholds "
                            "before convert")
    if node.op == "clip" and node.attrs.get("min") != 0.0:
        raise ModelError.at(node, f"Clip(min={node.attrs.get('min')}) cannot become a spiking "
                            "neuron: IF neurons output rates in [0, theta], so min must be 0")
    theta = node.params["theta"]
    return Node(node.name, "if", node.inputs, attrs={"reset": "subtract"},
                params={"theta": theta, "v0": np.zeros_like(theta)}, shape=node.shape,
                source=node.source, meta=node.meta)


def convert(graph: Graph) -> Graph:
    renames: dict[str, str] = {}
    nodes = []
    dropped_softmax = False
    for node in graph.nodes:
        if node.op in ("relu", "clip"):
            node = _neuron(node)
        elif node.op == "softmax" and node.name == graph.output:
            renames[node.name] = node.inputs[0]
            dropped_softmax = True
            continue
        nodes.append(node)
    out = rebuild(graph, nodes, renames)
    return out.with_meta(stage="snn", output_softmax=dropped_softmax)
