"""Export a converted snnc network as a NIR graph (Neuromorphic Intermediate Representation),
the exchange format read by Sinabs, snnTorch, Norse, Rockpool, SpiNNaker2, Nengo and others.

Mapping (NIR shapes exclude the batch axis, like ours):
    conv (1-d, 2-d)      -> Conv1d / Conv2d (symmetric padding only)
    linear               -> Affine
    affine (per channel) -> Affine (vectors) or a depthwise 1x1 Conv2d (maps)
    avgpool, global pool -> AvgPool2d (no padding)
    flatten / reshape    -> Flatten (to 1-d)
    add                  -> Scale(1): NIR sums the edges that enter a node
    if                   -> IF(r=1, v_threshold=theta, v_reset=0) followed by Scale(theta)
NIR's IF resets to v_reset; ours subtracts theta. NIR cannot say so, so every IF carries
metadata {"reset": "subtract"} (and the initial potential, "v_initial"); importers that honour
it (e.g. Sinabs' IAF, which subtracts) reproduce the network. Our spikes have amplitude theta:
the Scale(theta) after each IF restores that. The output is the last layer's value, which snnc
decodes as its mean over the time steps (graph metadata "decode").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.fileio import atomic_path
from snnc.compiler.ir.graph import Graph, Node

NirNodes = dict[str, Any]


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise UsageError("--target nir needs the 'nir' package: pip install nir "
                         "(or `make install`, which installs it)") from None
    return nir


def _symmetric(node: Node, pads: list[int]) -> list[int]:
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise ModelError.at(node, f"asymmetric padding {pads} cannot be expressed in NIR")
    return pads[:half]


def _conv(nir: Any, node: Node, in_shape: tuple[int, ...]) -> Any:
    a, p = node.attrs, node.params
    pad = _symmetric(node, list(a["pads"]))
    if len(in_shape) == 3:
        return nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=p["weight"],
                          stride=tuple(a["strides"]), padding=tuple(pad),
                          dilation=tuple(a["dilations"]), groups=a["groups"], bias=p["bias"])
    if len(in_shape) == 2:
        return nir.Conv1d(input_shape=in_shape[1], weight=p["weight"], stride=a["strides"][0],
                          padding=pad[0], dilation=a["dilations"][0], groups=a["groups"],
                          bias=p["bias"])
    raise ModelError.at(node, f"a {len(in_shape) - 1}-d convolution has no NIR node")


def _avgpool(nir: Any, node: Node, in_shape: tuple[int, ...]) -> Any:
    a = node.attrs
    if len(in_shape) != 3:
        raise ModelError.at(node, "NIR has 2-d average pooling only")
    if node.op == "global_avgpool":
        kernel = list(in_shape[1:])
        return nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(kernel),
                             padding=np.array([0, 0]))
    if any(a["pads"]) or a["ceil_mode"] or any(d != 1 for d in a["dilations"]):
        raise ModelError.at(node, "NIR's AvgPool2d has no padding, ceil mode or dilation")
    return nir.AvgPool2d(kernel_size=np.array(a["kernel"]), stride=np.array(a["strides"]),
                         padding=np.array([0, 0]))


def _affine(nir: Any, node: Node, in_shape: tuple[int, ...]) -> Any:
    scale = np.broadcast_to(node.params["scale"], in_shape)
    shift = np.broadcast_to(node.params["shift"], in_shape)
    if len(in_shape) == 1:
        return nir.Affine(weight=np.diag(scale).astype(np.float32), bias=shift.copy())
    per_c = [v.reshape(in_shape[0], -1) for v in (scale, shift)]
    if len(in_shape) != 3 or any(np.ptp(v, axis=1).any() for v in per_c):
        raise ModelError.at(node, "only per-channel scale/shift on 2-d maps maps to NIR")
    c = in_shape[0]
    return nir.Conv2d(input_shape=tuple(in_shape[1:]),
                      weight=per_c[0][:, 0].reshape(c, 1, 1, 1).astype(np.float32),
                      stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=c,
                      bias=per_c[1][:, 0].astype(np.float32))


def _flatten(nir: Any, node: Node, in_shape: tuple[int, ...]) -> Any:
    if len(node.shape) != 1:
        raise ModelError.at(node, f"reshape to {list(node.shape)} has no NIR node (only "
                                  "flattening does)")
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)


def _neuron(nir: Any, node: Node, in_shape: tuple[int, ...]) -> Any:
    theta = np.broadcast_to(node.params["theta"], node.shape).astype(np.float32)
    meta: dict[str, Any] = {"reset": "subtract", "spike_amplitude": "theta",
                            "v_initial": np.broadcast_to(node.params["v0"], node.shape).copy()}
    if "i_shift" in node.params:
        meta["input_shift"] = np.broadcast_to(node.params["i_shift"], node.shape).copy()
    return nir.IF(r=np.ones(node.shape, np.float32), v_threshold=theta,
                  v_reset=np.zeros(node.shape, np.float32), metadata=meta)


_MAPPERS: dict[str, Callable[[Any, Node, tuple[int, ...]], Any]] = {
    "conv": _conv, "avgpool": _avgpool, "global_avgpool": _avgpool, "affine": _affine,
    "flatten": _flatten, "reshape": _flatten, "if": _neuron,
    "linear": lambda nir, n, s: nir.Affine(weight=n.params["weight"], bias=n.params["bias"]),
    "add": lambda nir, n, s: nir.Scale(scale=np.ones(n.shape, np.float32)),
}


def to_nir(graph: Graph) -> Any:
    """The NIR graph of a converted network; one error lists every node NIR cannot hold."""
    nir = _nir()
    if graph.meta.get("stage") != "snn":
        raise UsageError("only a converted (spiking) network can be exported to NIR")
    unsupported = [n for n in graph.nodes[1:] if n.op not in _MAPPERS]
    if unsupported:
        listed = "\n".join(f"  - {n.origin}: {n.op}" for n in unsupported)
        raise ModelError(f"{len(unsupported)} layer(s) have no NIR equivalent:\n{listed}\n"
                         f"NIR holds: {', '.join(sorted(_MAPPERS))}. Max pooling, concat, "
                         "pad, slice and transpose would need lowering first.")
    nodes: NirNodes = {"input": nir.Input(input_type={"input": np.array(graph.input.shape)})}
    edges: list[tuple[str, str]] = []
    source = {graph.input.name: "input"}  # IR value -> the NIR node that carries it
    for node in graph.nodes[1:]:
        in_shape = graph.node(node.inputs[0]).shape
        nodes[node.name] = _MAPPERS[node.op](nir, node, in_shape)
        edges += [(source[i], node.name) for i in node.inputs]
        source[node.name] = node.name
        if node.op == "if":  # spikes of amplitude theta
            amp = f"{node.name}_amplitude"
            nodes[amp] = nir.Scale(scale=np.broadcast_to(node.params["theta"], node.shape)
                                   .astype(np.float32))
            edges.append((node.name, amp))
            source[node.name] = amp
    nodes["output"] = nir.Output(output_type={"output": np.array(graph.output_node.shape)})
    edges.append((source[graph.output], "output"))
    meta = {"producer": "snnc", "decode": "mean of the output over the time steps",
            "reset": "subtract"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(graph: Graph, path: str | os.PathLike[str]) -> None:
    nir = _nir()
    model = to_nir(graph)
    with atomic_path(path) as tmp:  # h5py wants a file name
        nir.write(tmp, model)
