"""delta-thresholds: choose each sigma-delta layer's vth from calibration data.

vth trades accuracy for messages: a neuron whose activation stays below vth never sends, and
every receiver sees its layer's activations to within vth. For a static sample the settled
network computes the ANN with that dead zone (compiler/ops/sigma_delta.py), so candidates are
scored on the calibration samples by running the graph once (no time steps) against the
network with vth = 0 (the ANN itself):

one ratio r for every layer, vth = r * scale (the layer's activation scale): the largest of
RATIOS whose outputs stay within MAX_REL_ERROR of the ANN's (relative L2 over the batch) and
change the class of at most MAX_FLIPS of the calibration samples. (Doubling single layers' vth
on top, greedily, saved 3% of the messages of a 32x32 VGG-16 and cost 0.15 points on held-out
data: it fits the calibration set, so it is not done.)

Messages are counted as neurons whose settled activation reaches vth (each sends once for a
static sample). Without calibration data the ratio stays convert's default.

Before:  %relu1 : f32[N,16,8,8] = sd[vth=0.0271, scale=1.734, act=relu](%conv1)   (convert: 1/64)
After:   %relu1 : f32[N,16,8,8] = sd[vth=0.1084, scale=1.734, act=relu](%conv1)   (r = 1/16)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..contracts import CONVERTED, contract
from ..errors import UsageError
from ..executor import run_batched
from ..ir.graph import Graph

NAME = "delta-thresholds"
CONTRACT = contract(requires={CONVERTED})
RATIOS = tuple(2.0 ** -k for k in range(2, 11))  # 1/4 .. 1/1024 of the activation scale
MAX_REL_ERROR = 0.015  # of the outputs, against the ANN's
MAX_FLIPS = 0.005  # of the calibration samples whose class may change
MAX_SAMPLES = 512


def synapse_depth(graph: Graph) -> int:
    """Synapse layers on the longest input-output path: the Loihi steps a sample's first
    message takes to reach the output (each synapse layer delays by one step)."""
    depth: dict[str, int] = {graph.input.name: 0}
    for node in graph.nodes[1:]:
        d = max((depth[i] for i in node.inputs), default=0)
        depth[node.name] = d + (node.op == "sd")
    return depth[graph.output] + 1


def _with_vth(graph: Graph, vth: Mapping[str, float]) -> Graph:
    nodes = [n.with_params(vth=np.array(vth[n.name], np.float32)) if n.name in vth else n
             for n in graph.nodes]
    return graph.replace(nodes=nodes)


def _score(graph: Graph, x: np.ndarray) -> tuple[np.ndarray, int]:
    """Outputs (N, ...) and messages of the settled network (neurons that send)."""
    sent = [0]

    def count(name: str, value: np.ndarray) -> None:
        if graph.node(name).op == "sd":
            sent[0] += int(np.count_nonzero(value))

    outs = [r[graph.output] for r in run_batched(graph, x, keep=lambda name: False,
                                                  observe=count)]
    return np.concatenate(outs), sent[0]


def _close(out: np.ndarray, ref: np.ndarray, classes: np.ndarray) -> bool:
    flat, base = out.reshape(len(out), -1), ref.reshape(len(ref), -1)
    err = float(np.linalg.norm(flat - base) / max(float(np.linalg.norm(base)), 1e-12))
    flips = 0.0 if flat.shape[1] == 1 else float(np.mean(flat.argmax(axis=1) != classes))
    return flips <= MAX_FLIPS and err <= MAX_REL_ERROR


def delta_thresholds(graph: Graph, calib: np.ndarray | None) -> Graph:
    layers = [n for n in graph.nodes if n.op == "sd"]
    if not layers or calib is None or len(calib) == 0:
        return graph
    if graph.meta.get("neuron") != "sigma-delta":
        raise UsageError("delta-thresholds chooses sigma-delta thresholds: convert with "
                         "--neuron sigma-delta first")
    x = calib[:MAX_SAMPLES]
    scale = {n.name: float(n.params["scale"]) for n in layers}
    ref, _ = _score(_with_vth(graph, dict.fromkeys(scale, 0.0)), x)
    classes = ref.reshape(len(ref), -1).argmax(axis=1)

    def ok(vth: Mapping[str, float]) -> tuple[bool, int]:
        out, sent = _score(_with_vth(graph, vth), x)
        return _close(out, ref, classes), sent

    ratio = RATIOS[-1]
    for r in RATIOS:  # coarse to fine: the first that holds sends the fewest messages
        if ok({k: r * s for k, s in scale.items()})[0]:
            ratio = r
            break
    vth = {k: ratio * s for k, s in scale.items()}
    good, sent = ok(vth)
    out = _with_vth(graph, vth)
    return out.with_meta(delta_thresholds={
        "ratio": ratio, "samples": len(x), "messages_per_sample": sent / len(x),
        "within_tolerance": good})
