"""shift-bias: the half-step shift that centres the IF neuron's quantization error at zero.

Rate coding floors: over T steps a neuron fed z emits floor(T*z/theta) spikes. Starting the
membrane at V(0) = theta/2 (Bu et al. 2022; Bu et al. AAAI 2022) rounds instead, which makes the
expected conversion error zero. The alternative form adds theta/(2T) to the input current every
step (Deng & Gu 2021), which is the same over T steps but depends on T. The two are
alternatives: applying either twice would double-shift, so this pass refuses a second shift.

    mode 'v0':    %relu1 = if[theta=1.7, v0=0.85, ...]
    mode 'input': %relu1 = if[theta=1.7, v0=0, i_shift=0.85/T, ...]
"""

from __future__ import annotations

import numpy as np

from ..errors import PassError, UsageError
from ..ir.graph import Graph

NAME = "shift-bias"
MODES = ("v0", "input", "none")


def shift_bias(graph: Graph, mode: str = "v0", timesteps: int | None = None) -> Graph:
    if mode not in MODES:
        raise UsageError(f"--shift '{mode}' is not one of: {', '.join(MODES)}")
    if mode == "none":
        return graph
    if graph.meta.get("stage") != "snn":  # no IF neurons yet: the shift would be recorded only
        raise PassError("shift-bias runs on the spiking network; run convert before shift-bias")
    if graph.meta.get("shift"):
        raise PassError(f"the half-step shift was already applied ('{graph.meta['shift']}'); "
                        "V(0)=theta/2 and the input shift are alternatives, apply only one")
    if mode == "input" and not timesteps:
        raise UsageError("--shift input needs the number of time steps (--timesteps T)")
    nodes = []
    for node in graph.nodes:
        if node.op == "if":
            theta = node.params["theta"]
            if mode == "v0":
                node = node.with_params(v0=(theta / 2).astype(np.float32))
            else:
                node = node.with_params(i_shift=(theta / (2 * timesteps)).astype(np.float32))
        nodes.append(node)
    meta = {"shift": mode}
    if mode == "input":
        meta["timesteps"] = int(timesteps)  # the network is tuned for exactly this T
    return graph.replace(nodes).with_meta(**meta)
