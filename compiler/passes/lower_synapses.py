"""lower-synapses: replace the linear ops between spiking populations by dense synapse matrices,
the form Loihi synapses (and Lava's Dense) take.

A population is an IF node or the graph output. Its input current is a linear function of the
spikes of the IF nodes upstream (through conv, pooling, add, concat, flatten, ...):

    z_P = sum_j W_j @ flat(out_j) + b,   W_j = d z_P / d out_j   (found by probing with unit inputs)

Each source j becomes `flatten -> linear(W_j)`; several sources are summed with `add`; a reshape
restores P's shape. Where the ops from j to P amount to one sliding window (convs and average
pools), its geometry goes in the linear node's meta['window'] (compiler/conv_window.py), so a
backend may use a convolution instead of the dense matrix. Populations fed only by the graph
input keep their (static, direct-encoded) subgraph. Max pooling is not linear: a maxpool that
reads an IF node directly stays, as a population of its own (it emits binary spikes, see
compiler/populations.py); any other is refused.

Before:  %relu2 = if(%conv2);  %avgpool1 = avgpool(%relu2);  %conv3 = conv(%avgpool1)
         %relu3 = if(%conv3)
After:   %relu3_flat0 = flatten(%relu2);  %relu3_syn0 = linear[2048->512](%relu3_flat0)
         %relu3_in = reshape[32,4,4](%relu3_syn0);  %relu3 = if(%relu3_in)
"""

from __future__ import annotations

import numpy as np

from ..conv_window import window_of
from ..errors import ModelError, ResourceError
from ..ir.graph import Graph, Node
from ..ops import opdef

NAME = "lower-synapses"
MAX_WEIGHTS = 1 << 26  # dense matrices above 64M entries: refuse rather than exhaust memory


def _cone(graph: Graph, start: str) -> tuple[list[Node], list[str]]:
    """The linear nodes computing `start` (topological order) and the sources they read."""
    nodes: dict[str, Node] = {}
    sources: list[str] = []
    stack = [start]
    while stack:
        name = stack.pop()
        node = graph.node(name)
        if node.op in ("if", "input", "maxpool"):  # populations (maxpool: see populations.py)
            if name not in sources:
                sources.append(name)
            continue
        if name in nodes:
            continue
        if not opdef(node.op).linear:
            raise ModelError.at(node, f"op '{node.op}' between spiking layers cannot be "
                                "lowered to synapses for the lava/loihi targets")
        nodes[name] = node
        stack.extend(node.inputs)
    order = [n for n in graph.nodes if n.name in nodes]
    return order, [s for s in (n.name for n in graph.nodes) if s in sources]


def _evaluate(cone: list[Node], env: dict[str, np.ndarray], out: str) -> np.ndarray:
    for node in cone:
        env[node.name] = opdef(node.op).evaluate(node, [env[i] for i in node.inputs])
    return env[out]


def _matrices(graph: Graph, target: Node, cone: list[Node], sources: list[str]
              ) -> tuple[list[np.ndarray], np.ndarray]:
    zeros = {s: np.zeros((1, *graph.node(s).shape), np.float32) for s in sources}
    bias = _evaluate(cone, dict(zeros), target.inputs[0]).reshape(-1)
    weights = []
    for s in sources:
        shape = graph.node(s).shape
        n_in = int(np.prod(shape))
        if n_in * bias.size > MAX_WEIGHTS:
            raise ResourceError(f"{target.origin}: the synapses from '{s}' would be a "
                                f"{bias.size}x{n_in} matrix, above the {MAX_WEIGHTS} entries "
                                "this lowering supports")
        env = {k: np.zeros((n_in, *v.shape[1:]), np.float32) for k, v in zeros.items()}
        env[s] = np.eye(n_in, dtype=np.float32).reshape(n_in, *shape)
        out = _evaluate(cone, env, target.inputs[0]).reshape(n_in, -1) - bias
        weights.append(np.ascontiguousarray(out.T, dtype=np.float32))
    return weights, bias.astype(np.float32)


def _synapse_nodes(target: Node, graph: Graph, sources: list[str], weights: list[np.ndarray],
                   bias: np.ndarray, cone: list[Node]) -> tuple[list[Node], str]:
    n_out = bias.size
    nodes: list[Node] = []
    terms = []
    for k, (s, w) in enumerate(zip(sources, weights, strict=True)):
        src = graph.node(s)
        flat = f"{target.name}_flat{k}"
        nodes.append(Node(flat, "flatten", (s,), shape=(int(np.prod(src.shape)),)))
        b = bias if k == 0 else np.zeros_like(bias)
        syn = f"{target.name}_syn{k}"
        meta: dict = {"synapse_from": s}
        window = window_of(graph, cone, s, target.inputs[0])
        if window is not None:
            meta["window"] = window
        nodes.append(Node(syn, "linear", (flat,), params={"weight": w, "bias": b},
                          shape=(n_out,), source=target.source, meta=meta))
        terms.append(syn)
    last = terms[0]
    if len(terms) > 1:
        last = f"{target.name}_sum"
        nodes.append(Node(last, "add", tuple(terms), shape=(n_out,)))
    shape = graph.node(target.inputs[0]).shape
    if tuple(shape) != (n_out,):
        nodes.append(Node(f"{target.name}_in", "reshape", (last,), {"shape": list(shape)},
                          shape=tuple(shape)))
        last = f"{target.name}_in"
    return nodes, last


def lower_synapses(graph: Graph) -> Graph:
    if graph.meta.get("stage") != "snn":
        raise ModelError("lower-synapses runs on the spiking network; run convert first")
    out_node = graph.output_node
    targets = [n for n in graph.nodes if n.op == "if"]
    if out_node.op != "if":  # the non-spiking readout: its own pseudo-population
        targets.append(Node(f"{out_node.name}_readout", "identity_target", (out_node.name,),
                            shape=out_node.shape, source=out_node.source))
    for node in graph.nodes:
        if node.op == "maxpool" and graph.node(node.inputs[0]).op != "if":
            raise ModelError.at(node, "max pooling must read a spiking layer directly for the "
                                "lava/loihi targets")
    new_nodes: dict[str, list[Node]] = {}
    inputs: dict[str, str] = {}
    for target in targets:
        cone, sources = _cone(graph, target.inputs[0])
        if graph.input.name in sources:
            if len(sources) > 1:
                raise ModelError.at(target, "mixes the analog network input with spikes; "
                                    "the lava/loihi targets need the input to feed only the "
                                    "first spiking layer")
            continue  # direct-encoded: stays a static current
        weights, bias = _matrices(graph, target, cone, sources)
        nodes, last = _synapse_nodes(target, graph, sources, weights, bias, cone)
        new_nodes[target.name] = nodes
        inputs[target.name] = last
    result: list[Node] = []
    output = graph.output
    for node in graph.nodes:
        if node.op == "if" and node.name in inputs:
            result.extend(new_nodes[node.name])
            node = node.replace(inputs=(inputs[node.name],))
        result.append(node)
    readout = f"{out_node.name}_readout"
    if readout in new_nodes:
        result.extend(new_nodes[readout])
        output = inputs[readout]
    return graph.replace(result, output=output).with_meta(synapses="dense")
