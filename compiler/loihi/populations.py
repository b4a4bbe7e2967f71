"""The spiking populations of a graph lowered by `lower-synapses`, with their synapses and
depths: the backend-neutral view that the NumPy bit-exact mode, the Lava backend and the netx
exporter share.

Depth: a population fed by the network input has depth 1; otherwise 1 + the deepest source.
In a sigma-delta graph (`sd` neurons) the input itself is a source of depth 0 (Lava's input
source sends it to the first synapse layer), so every population has synapses.
On Loihi every synapse layer delays by one step, so a population of depth k sees at step
t + k - 1 what the delay-free reference simulator computes at step t; a synapse from a source
of depth d into a population of depth k needs delay k - d (1 = the plain one-step delay).
Each population starts (and, between samples, restarts) at its depth, when its first input
arrives: before that, whatever it receives belongs to the previous sample.

Neurons reset by subtraction (`reset=subtract`, snnc's IF) or to zero (`reset=zero`, Lava's
stock LIF). The stock LIF has one threshold per population, so a reset-to-zero population with
per-channel thresholds is rescaled to the largest one (`threshold_gain`): the same neuron.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..contracts import SYNAPSES, facts
from ..errors import ModelError
from ..ir.graph import Graph, Node
from ..ops.neuron import max_count
from .formats import input_current, threshold_gain

__all__ = ["Population", "Synapse", "input_currents", "message_bits", "payload",
           "payload_bits", "pool_index", "populations", "spike_theta", "threshold_gain"]

SYNAPSE_KINDS = ("conv", "dense", "sparse")
NEURON_OPS = ("if", "sd")  # IF / LIF neurons, and sigma-delta neurons (op "sd")


@dataclass(frozen=True, eq=False)
class Synapse:
    source: str  # the population whose spikes it reads
    node: Node  # the conv / linear / sparse node holding the weights
    delay: int

    @property
    def kind(self) -> str:
        return str(self.node.meta["synapse"])


@dataclass(frozen=True, eq=False)
class Population:
    name: str
    node: Node  # the IF node, or the output node for the readout
    synapses: tuple[Synapse, ...]  # empty: fed by the network input (static current)
    depth: int
    readout: bool = False
    pool_of: str | None = None  # a max-pooling population: the IF node it pools
    bias: np.ndarray | None = None  # (n,) float bias current per neuron (synapse-fed only)

    @property
    def reset_zero(self) -> bool:
        return self.node.op == "if" and self.node.attrs.get("reset", "subtract") == "zero"

    @property
    def size(self) -> int:
        return math.prod(self.node.shape)


def _unwrap(graph: Graph, name: str) -> Node:
    node = graph.node(name)
    while node.op == "reshape" and "synapse_from" not in node.meta:
        node = graph.node(node.inputs[0])
    return node


def _synapse_nodes(graph: Graph, feed: str) -> tuple[list[Node], np.ndarray | None]:
    """The synapse nodes feeding value `feed` and the bias current, or ([], None)."""
    node = graph.node(feed)
    if not node.meta.get("synapse_bias"):
        return [], None
    bias = np.asarray(node.params["shift"], np.float64).reshape(-1)
    inner = _unwrap(graph, node.inputs[0])
    terms = [_unwrap(graph, i) for i in inner.inputs] if inner.op == "add" and \
        "synapse_from" not in inner.meta else [inner]
    return terms, bias


def populations(graph: Graph) -> list[Population]:
    """Populations in topological order; the readout (the graph output) comes last."""
    if SYNAPSES not in facts(graph):
        raise ModelError("this graph has no synapse layers; run the lower-synapses pass "
                         "(compile with --target lava or loihi)")
    # sigma-delta graphs: the input source (depth 0) feeds the first synapse layer
    depth: dict[str, int] = {graph.input.name: 0}
    pops: list[Population] = []

    def build(name: str, node: Node, feed: str, readout: bool) -> None:
        syn_nodes, bias = _synapse_nodes(graph, feed)
        if not syn_nodes:
            depth[name] = 1
            pops.append(Population(name, node, (), 1, readout))
            return
        k = 1 + max(depth[n.meta["synapse_from"]] for n in syn_nodes)
        syns = tuple(Synapse(n.meta["synapse_from"], n, k - depth[n.meta["synapse_from"]])
                     for n in syn_nodes)
        depth[name] = k
        pops.append(Population(name, node, syns, k, readout, bias=bias))

    for node in graph.nodes:
        if node.op in NEURON_OPS:
            build(node.name, node, node.inputs[0], False)
        elif node.op == "maxpool":  # same step as its source: no synapse, no delay
            depth[node.name] = depth[node.inputs[0]]
            pops.append(Population(node.name, node, (), depth[node.name],
                                   pool_of=node.inputs[0]))
    out = graph.output_node
    if out.op not in NEURON_OPS:
        build(out.name, out, out.name, True)
    return pops


def spike_theta(graph: Graph, name: str) -> Any:
    """The amplitude theta of the spikes population `name` emits (a maxpool: its source's)."""
    node = graph.node(name)
    if node.op == "maxpool":
        node = graph.node(node.inputs[0])
    return node.params["theta"]


def payload(graph: Graph, name: str) -> tuple[int, bool]:
    """(K, signed) of the messages population `name` sends (a maxpool: its source's): each
    carries a count n in [0, K], or in [-K, K] for signed neurons (compiler/ops/neuron.py).
    Binary unsigned spikes are (1, False)."""
    node = graph.node(name)
    if node.op == "maxpool":
        node = graph.node(node.inputs[0])
    return max_count(node), bool(node.attrs.get("signed"))


def message_bits(graph: Graph, name: str) -> int:
    """Lava's `num_message_bits` for synapses reading population `name`: 0 for binary
    unsigned spikes (Lava reads s_in as bool), else the bits of its payload: B for counts
    0..2^B - 1, B + 1 (two's complement) for signed counts -K..K."""
    k, signed = payload(graph, name)
    return 0 if k == 1 and not signed else payload_bits(k, signed)


def payload_bits(levels: int, signed: bool) -> int:
    """Bits of one payload: 1 for a binary spike, B for counts 0..K = 2^B - 1, B + 1 for
    signed counts -K..K (stored as n + K >= 0 in Lava's rasters)."""
    return int(levels).bit_length() + int(bool(signed))


def pool_index(graph: Graph, node: Node) -> Any:
    """(n_out, K) flat input indices of each max-pooling window, -1 for padding.

    Spiking max pooling (backends/numpy/simulator.py) emits the increase of the pooled
    maximum of cumulative inputs; with one amplitude theta per channel that is a count:
    n_out = max(counts[window]) - previous max. For binary spikes each count grows by at most
    1 per step, so n_out is again a binary spike; for graded ones (counts 0..K per step) it is
    a count in [0, K], for signed ones in [-K, K] (the net counts never go below zero): the
    pool sends its source's payload."""
    from ..ops.pooling import _geometry
    from ..ops.windows import pad_spatial, windows

    src = graph.node(node.inputs[0])
    a = node.attrs
    ids = np.arange(math.prod(src.shape), dtype=np.float64).reshape(1, *src.shape)
    _, extra = _geometry(node, src.shape[1:])
    win = windows(pad_spatial(ids, a["pads"], -1.0, extra), a["kernel"], a["strides"],
                  a["dilations"])
    return win.reshape(math.prod(node.shape), -1).astype(np.int64)


def input_currents(graph: Graph, x: Any, fixed: bool) -> dict[str, Any]:
    """The direct-encoded input current (N, n) of every input-fed population: bias mantissas
    for the fixed-point network, float currents (plus any i_shift) otherwise."""
    from ..executor import run

    feeds = {p.node.inputs[0]: p for p in populations(graph)
             if not p.synapses and not p.readout and p.pool_of is None}
    out = {}
    for feed, pop in feeds.items():
        value = run(graph.replace(output=feed), x)  # only the static subgraph before it
        if fixed:
            out[pop.name] = input_current(pop.node, value)
        else:
            z = value.reshape(len(value), -1).astype(np.float64)
            if "i_shift" in pop.node.params:
                z = z + np.broadcast_to(pop.node.params["i_shift"], pop.node.shape).reshape(-1)
            out[pop.name] = z * threshold_gain(pop.node)[None, :]
    return out
