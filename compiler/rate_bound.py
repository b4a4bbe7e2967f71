"""The rate-coding bound of a converted network at T steps: the ANN whose every IF layer is
replaced by what that neuron emits over T steps for a constant input current.

An IF neuron that resets by subtraction and receives the same current z every step emits

    n(z) = clip(floor((T * (z + i_shift) + v0) / theta), 0, T * K)      (K = 2^B - 1)

counts in T steps, so it outputs the staircase theta * n(z) / T: the activation quantized to
T * K levels. Real spike trains deviate from constant currents (the temporal errors that
signed neurons, V(0) and layer-wise calibration remove), so this network's accuracy is what
an SNN reaching the limit of rate coding at T scores, not a proof that none can score more.
When the SNN is close to it, the remaining loss is quantization of the activations (more
steps, graded spikes, or an ANN trained with quantized activations, e.g. QCFS, are the
levers), not conversion error that calibration could remove.

Only subtract-reset neurons have this closed form; `rate_bound_graph` returns None for
networks with others (reset to zero: the staircase depends on the residue lost at each reset).
"""

from __future__ import annotations

import numpy as np

from .ir.graph import Graph, Node, unique_name
from .ops.neuron import max_count


def _staircase(node: Node, timesteps: int, names: set[str]) -> list[Node]:
    """qclip nodes computing theta * n(z) / T (see the module docstring)."""
    theta = np.asarray(node.params["theta"], np.float32)
    k = max_count(node)
    levels = timesteps * k
    v0 = np.asarray(node.params.get("v0", np.float32(0)), np.float32)
    nodes, source = [], node.inputs[0]
    if "i_shift" in node.params:
        shift = Node(unique_name(names, f"{node.name}_i_shift"), "affine", (source,),
                     params={"scale": np.ones_like(theta),
                             "shift": np.asarray(node.params["i_shift"], np.float32)},
                     shape=node.shape)
        names.add(shift.name)
        nodes.append(shift)
        source = shift.name
    # qclip: (k theta) * clip(floor(z * T k / (k theta) + phi), 0, T k) / (T k)
    nodes.append(Node(node.name, "qclip", (source,), attrs={"levels": levels},
                      params={"theta": (np.float32(k) * theta).astype(np.float32),
                              "phi": (v0 / theta).astype(np.float32)},
                      shape=node.shape, source=node.source))
    return nodes


def rate_bound_graph(snn: Graph, timesteps: int) -> Graph | None:
    """The ANN of `snn` with every IF layer's T-step staircase (None: a neuron has no closed
    form). Evaluate it with the IR executor (compiler/executor.py)."""
    if any(n.op == "if" and n.attrs.get("reset", "subtract") != "subtract"
           for n in snn.nodes):
        return None
    names = {n.name for n in snn.nodes}
    nodes: list[Node] = []
    for node in snn.nodes:
        nodes.extend(_staircase(node, int(timesteps), names) if node.op == "if" else [node])
    return snn.replace(nodes).with_meta(stage="rate-bound", rate_bound=int(timesteps))
