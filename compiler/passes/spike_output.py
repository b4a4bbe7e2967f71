"""spike-output: decode the output from spike counts instead of the membrane potential.

By default the last layer does not spike: its potential, accumulated over T steps, is the
output (as in QCFS, Li et al. 2021 and most conversion work). With spike-count decoding the
last layer gets a ReLU here, so that normalize-thresholds and convert give it a threshold and
make it an IF layer; the class is then the neuron that spiked most. Negative logits all map to
zero spikes, which is the accuracy cost of this decoding.

Before:  %linear3 : f32[10] = linear[64->10](%relu2);  %softmax1 = softmax(%linear3)
After:   %linear3 : f32[10] = linear[64->10](%relu2);  %linear3_spikes = relu(%linear3);
         %softmax1 = softmax(%linear3_spikes)
"""

from __future__ import annotations

from ..contracts import CONVERTED, contract
from ..ir.graph import Graph, Node, unique_name
from .rewrite import rebuild

NAME = "spike-output"
CONTRACT = contract(forbids={CONVERTED})  # a ReLU for convert to make spiking


def spike_output(graph: Graph) -> Graph:
    out = graph.output_node
    last = graph.node(out.inputs[0]) if out.op == "softmax" else out
    if last.op in ("relu", "clip", "qclip", "if"):
        return graph  # already ends in an activation
    relu = Node(unique_name((n.name for n in graph.nodes), f"{last.name}_spikes"), "relu",
                (last.name,), shape=last.shape, source=last.source)
    nodes = []
    for node in graph.nodes:
        if node is out and out is not last:
            node = node.replace(inputs=(relu.name,))
        nodes.append(node)
        if node is last:
            nodes.append(relu)
    renames = {} if out is not last else {last.name: relu.name}
    if renames:  # the relu becomes the output; its own input must keep pointing at `last`
        return graph.replace(nodes, output=relu.name)
    return rebuild(graph, nodes, renames)
