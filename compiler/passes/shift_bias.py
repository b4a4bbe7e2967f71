"""shift-bias: the half-step shift that centres the IF neuron's quantization error at zero.

Rate coding floors: over T steps a neuron fed z emits floor(T*z/theta) spikes. Shifting by
phi*theta (phi = 1/2 for ReLU/Clip, the model's own phi for a quantized activation) rounds
instead, which makes the expected conversion error zero. Three places to put it:

* `v0`: start the membrane at V(0) = phi*theta (Bu et al. 2022; Bu et al. AAAI 2022); the same
  network serves every T.
* `input`: add phi*theta/T to the input current every step (Deng & Gu 2021).
* `bias`: the same current moved into the bias of the conv/linear layer feeding the neuron
  (Datta et al. 2023's BN bias shift); where no such layer feeds it alone, as `input`.

`input` and `bias` tune the network for one T. The modes are alternatives for the same half
step, so this pass refuses to run on a graph that is already shifted.

    mode 'v0':    %relu1 = if[theta=1.7, v0=0.85, ...]
    mode 'input': %relu1 = if[theta=1.7, v0=0, i_shift=0.85/T, ...]
    mode 'bias':  %conv1 = conv[...] (bias + 0.85/T);  %relu1 = if[theta=1.7, v0=0, ...]
"""

from __future__ import annotations

import numpy as np

from ..contracts import CONVERTED, contract, require
from ..errors import PassError, UsageError
from ..ir.graph import Graph, Node
from .rewrite import along_axis, channel_axis, sole_consumer

NAME = "shift-bias"
CONTRACT = contract(requires={CONVERTED})  # no IF neurons before: nothing to shift
MODES = ("v0", "input", "bias", "none")


def _shift(node: Node) -> np.ndarray:
    """phi * theta, the total shift of one neuron (layer, channel or neuron-wise)."""
    phi = node.params.get("phi", np.float32(0.5))
    return (phi * node.params["theta"]).astype(np.float32)


def _into_bias(graph: Graph, neuron: Node, current: np.ndarray) -> Node | None:
    """The layer feeding `neuron` with `current` added to its bias, if one feeds it alone."""
    layer = graph.node(neuron.inputs[0])
    if layer.op not in ("conv", "linear") or not sole_consumer(graph, layer.name):
        return None
    axis = channel_axis(layer)
    vector = along_axis(np.broadcast_to(current, layer.shape), layer.shape, axis)
    if vector is None:
        return None
    return layer.with_params(bias=(layer.params["bias"] + vector).astype(np.float32))


def shift_bias(graph: Graph, mode: str = "v0", timesteps: int | None = None) -> Graph:
    if mode not in MODES:
        raise UsageError(f"--shift '{mode}' is not one of: {', '.join(MODES)}")
    if mode == "none":
        return graph
    require(graph, NAME, CONTRACT)  # before convert the shift would be recorded only
    if graph.meta.get("shift"):
        raise PassError(f"the half-step shift was already applied ('{graph.meta['shift']}'); "
                        "V(0)=theta/2, the input shift and the bias shift are alternatives, "
                        "apply only one")
    if mode in ("input", "bias") and not timesteps:
        raise UsageError(f"--shift {mode} needs the number of time steps (--timesteps T)")
    changed: dict[str, Node] = {}
    for node in graph.nodes:
        if node.op != "if":
            continue
        total = _shift(node)
        if mode == "v0":
            changed[node.name] = node.with_params(v0=total)
            continue
        current = (total / timesteps).astype(np.float32)
        layer = _into_bias(graph, node, current) if mode == "bias" else None
        if layer is not None:
            changed[layer.name] = layer
        else:
            changed[node.name] = node.with_params(i_shift=current)
    nodes = [changed.get(n.name, n) for n in graph.nodes]
    meta = {"shift": mode}
    if mode != "v0":
        meta["timesteps"] = int(timesteps)  # the network is tuned for exactly this T
    return graph.replace(nodes).with_meta(**meta)
