"""tree-thresholds: the ReLUs of a lowered max pool (lower-maxpool) fire at their input's
threshold, for rate-coded neurons.

A tree ReLU reads a signed sum of its input's spikes, each of amplitude theta_in (per channel).
With theta = theta_in every spike moves the potential by exactly one threshold, so a neuron
never overshoots: reset to zero (stock LIF) then loses nothing, and reset by subtraction
counts exactly, the running max(a - b, 0) of the spike counts. A data-based threshold (the
percentile of relu(a - b), smaller than theta_in) lets one input spike carry several
thresholds' worth, which a reset to zero drops: measured on a held-out VGG-11 with max pooling
(digits32, 200 test images, T=32), lif with ReLU trees 31.5% with percentile thresholds
against 97.0% with the spiking max pool.

Runs after normalize-thresholds. Each tree ReLU reads a grouped conv (groups = the pool's
channels) of an activation with a threshold (the pool's source, or the previous tree level):
output channel j of group g takes the threshold of the group's first input channel. A tree
whose source is no thresholded activation (e.g. a max pool after a linear op) keeps its
data-based thresholds. (Just below, in fact: MARGIN.)

Before:  %relu1 = relu[theta=2.1](...); %pool1_max1_relu = relu[theta=0.83](%pool1_max1)
After:   %relu1 = relu[theta=2.1](...); %pool1_max1_relu = relu[theta=2.098](%pool1_max1)
"""

from __future__ import annotations

import numpy as np

from ..contracts import CONVERTED, contract, require
from ..ir.graph import Graph, Node

NAME = "tree-thresholds"
CONTRACT = contract(forbids={CONVERTED}, hint="it sets the thresholds of the ANN's tree "
                    "ReLUs: run it after normalize-thresholds, before convert")
ACTIVATIONS = ("relu", "clip", "qclip")
# just below the input's threshold: one input spike lands above it rather than on it, where
# float rounding (NumPy vs Lava's folded weights) would decide the spike either way; a neuron
# reset by subtraction keeps 2^-10 of a threshold per spike (one extra spike per 1024)
MARGIN = 1.0 - 2.0 ** -10


def _input_theta(graph: Graph, conv: Node, theta: dict[str, np.ndarray]) -> np.ndarray | None:
    """The threshold for the ReLU after grouped conv `conv`: a scalar, or (C_out, 1, ...) per
    channel, from the thresholds of the conv's input activation (None: not a tree of one)."""
    source = graph.node(conv.inputs[0])
    if conv.op != "conv" or source.name not in theta:
        return None
    t_in = np.asarray(theta[source.name], np.float32)
    if t_in.ndim == 0:
        return t_in
    groups, out, t_in = int(conv.attrs.get("groups", 1)), conv.shape[0], t_in.reshape(-1)
    if groups < 1 or out % groups or len(t_in) % groups:
        return None
    first_input = (np.arange(out) // (out // groups)) * (len(t_in) // groups)
    return t_in[first_input].reshape((-1,) + (1,) * (len(conv.shape) - 1))


def tree_thresholds(graph: Graph) -> Graph:
    require(graph, NAME, CONTRACT)
    theta: dict[str, np.ndarray] = {}  # activation -> its threshold, in graph order
    nodes = []
    for node in graph.nodes:
        if node.op in ACTIVATIONS and "theta" in node.params:
            if node.op == "relu" and "lowered_from" in node.meta:
                t = _input_theta(graph, graph.node(node.inputs[0]), theta)
                if t is not None:
                    node = node.with_params(theta=(t * MARGIN).astype(np.float32)).replace(
                        meta={**node.meta, "theta_from": "tree input"})
            theta[node.name] = node.params["theta"]
        nodes.append(node)
    return graph.replace(nodes)
