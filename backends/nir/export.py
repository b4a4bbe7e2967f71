"""Export a converted snnc network as a NIR graph (Neuromorphic Intermediate Representation),
the exchange format read by Sinabs, snnTorch, Norse, Rockpool, SpiNNaker2, Nengo and others.

Mapping (NIR shapes exclude the batch axis, like ours):
    conv (1-d, 2-d)      -> Conv1d / Conv2d (symmetric padding only)
    linear               -> Affine
    affine (per channel) -> Affine (vectors) or a depthwise 1x1 Conv2d (maps)
    avgpool, global pool -> SumPool2d (the 1/k^2 goes into the next layer's weights)
    flatten / reshape    -> Flatten (to 1-d)
    add                  -> no node: NIR sums the edges that enter a node
    if                   -> IF(r=1, v_threshold, v_reset=0)
NIR's IF resets to v_reset; ours subtracts theta. NIR cannot say so, so every IF carries
metadata {"reset": "subtract"} (and the initial potential "v_initial"); importers that subtract
(e.g. Sinabs' IAF) reproduce the network.

NIR spikes are 1; ours have amplitude theta. Constant factors like theta and the 1/k^2 of
average pooling are carried forward as a pending per-element scale and folded into the next
weights (or, before an IF, into its threshold: integrating p*z against theta fires exactly
when integrating z against theta/p). Where a factor cannot be folded, a Scale node keeps the
graph exact. The output is the last layer's value, which snnc decodes as its mean over time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.fileio import atomic_path
from snnc.compiler.ir.graph import Graph, Node


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise UsageError("--target nir needs the 'nir' package: pip install nir "
                         "(or `make install`, which installs it)") from None
    return nir


@dataclass
class _Value:
    """Where an IR value lives in the NIR graph: the nodes whose (summed) outputs make it,
    times a pending scale (None = 1) that the next layer must apply."""

    sources: list[str]
    scale: np.ndarray | None = None


class _Builder:
    def __init__(self, nir: Any) -> None:
        self.nir = nir
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node: Any, value: _Value) -> _Value:
        self.nodes[name] = node
        self.edges += [(s, name) for s in value.sources]
        return _Value([name])

    def materialise(self, name: str, value: _Value) -> _Value:
        """Apply a pending scale with an explicit Scale node."""
        if value.scale is None:
            return value
        return self.add(f"{name}_scale", self.nir.Scale(scale=value.scale.astype(np.float32)),
                        _Value(value.sources))


def _per_channel(scale: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The scale as one factor per channel (axis 0), if it is constant over the rest."""
    if scale is None:
        return np.ones(shape[0], np.float32)
    flat = np.broadcast_to(scale, shape).reshape(shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def _symmetric(node: Node, pads: list[int]) -> list[int]:
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise ModelError.at(node, f"asymmetric padding {pads} cannot be expressed in NIR")
    return pads[:half]


def _conv(b: _Builder, node: Node, x: _Value, in_shape: tuple[int, ...]) -> _Value:
    a, p = node.attrs, node.params
    per_c = _per_channel(x.scale, in_shape)
    if per_c is None:
        x, per_c = b.materialise(node.name, x), np.ones(in_shape[0], np.float32)
    w = p["weight"]
    groups, cg = a["groups"], w.shape[1]
    # weight[o, c] reads input channel (o // (O / groups)) * Cg + c
    in_channel = (np.arange(w.shape[0])[:, None] // (w.shape[0] // groups)) * cg + np.arange(cg)
    w = (w * per_c[in_channel].reshape(*in_channel.shape, *([1] * (w.ndim - 2))))
    pad = _symmetric(node, list(a["pads"]))
    if len(in_shape) == 3:
        layer = b.nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=w.astype(np.float32),
                             stride=tuple(a["strides"]), padding=tuple(pad),
                             dilation=tuple(a["dilations"]), groups=groups, bias=p["bias"])
    elif len(in_shape) == 2:
        layer = b.nir.Conv1d(input_shape=in_shape[1], weight=w.astype(np.float32),
                             stride=a["strides"][0], padding=pad[0],
                             dilation=a["dilations"][0], groups=groups, bias=p["bias"])
    else:
        raise ModelError.at(node, f"a {len(in_shape) - 1}-d convolution has no NIR node")
    return b.add(node.name, layer, _Value(x.sources))


def _linear(b: _Builder, node: Node, x: _Value, in_shape: tuple[int, ...]) -> _Value:
    if len(in_shape) != 1:
        raise ModelError.at(node, "NIR's Affine takes vectors; flatten first")
    w = node.params["weight"]
    if x.scale is not None:
        w = w * np.broadcast_to(x.scale, in_shape)[None, :]
    layer = b.nir.Affine(weight=w.astype(np.float32), bias=node.params["bias"])
    return b.add(node.name, layer, _Value(x.sources))


def _pool(b: _Builder, node: Node, x: _Value, in_shape: tuple[int, ...]) -> _Value:
    a = node.attrs
    if len(in_shape) != 3:
        raise ModelError.at(node, "NIR has 2-d pooling only")
    if node.op == "global_avgpool":
        kernel, stride = list(in_shape[1:]), list(in_shape[1:])
    else:
        if any(a["pads"]) or a["ceil_mode"] or any(d != 1 for d in a["dilations"]):
            raise ModelError.at(node, "NIR's pooling has no padding, ceil mode or dilation")
        kernel, stride = list(a["kernel"]), list(a["strides"])
    per_c = _per_channel(x.scale, in_shape)
    if per_c is None:
        x, per_c = b.materialise(node.name, x), np.ones(in_shape[0], np.float32)
    layer = b.nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                            padding=np.array([0, 0]))
    out = b.add(node.name, layer, _Value(x.sources))
    out.scale = (per_c / np.prod(kernel)).reshape(-1, 1, 1).astype(np.float32)
    return out


def _affine(b: _Builder, node: Node, x: _Value, in_shape: tuple[int, ...]) -> _Value:
    pending = 1.0 if x.scale is None else np.broadcast_to(x.scale, in_shape)
    scale = np.broadcast_to(node.params["scale"] * pending, in_shape)
    shift = np.broadcast_to(node.params["shift"], in_shape)
    if len(in_shape) == 1:
        layer = b.nir.Affine(weight=np.diag(scale).astype(np.float32), bias=shift.copy())
        return b.add(node.name, layer, _Value(x.sources))
    per_c = [v.reshape(in_shape[0], -1) for v in (scale, shift)]
    if len(in_shape) != 3 or any(np.ptp(v, axis=1).any() for v in per_c):
        raise ModelError.at(node, "only per-channel scale/shift on 2-d maps maps to NIR")
    c = in_shape[0]
    layer = b.nir.Conv2d(input_shape=tuple(in_shape[1:]),
                         weight=per_c[0][:, 0].reshape(c, 1, 1, 1).astype(np.float32),
                         stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=c,
                         bias=per_c[1][:, 0].astype(np.float32))
    return b.add(node.name, layer, _Value(x.sources))


def _flatten(b: _Builder, node: Node, x: _Value, in_shape: tuple[int, ...]) -> _Value:
    if len(node.shape) != 1:
        raise ModelError.at(node, f"reshape to {list(node.shape)} has no NIR node (only "
                                  "flattening does)")
    layer = b.nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
    out = b.add(node.name, layer, _Value(x.sources))
    if x.scale is not None:
        out.scale = np.broadcast_to(x.scale, in_shape).reshape(-1).copy()
    return out


def _neuron(b: _Builder, node: Node, x: _Value, in_shape: tuple[int, ...]) -> _Value:
    theta = np.broadcast_to(node.params["theta"], node.shape).astype(np.float32)
    v0 = np.broadcast_to(node.params["v0"], node.shape).astype(np.float32)
    shift = node.params.get("i_shift")
    if x.scale is not None and not np.all(x.scale > 0):
        x = b.materialise(node.name, x)
    pending = np.ones(node.shape, np.float32) if x.scale is None else np.broadcast_to(
        x.scale, node.shape)
    # integrating p*z against theta == integrating z against theta/p (p > 0)
    meta: dict[str, Any] = {"reset": "subtract", "v_initial": v0 / pending}
    if shift is not None:
        meta["input_shift"] = np.broadcast_to(shift, node.shape) / pending
    layer = b.nir.IF(r=np.ones(node.shape, np.float32), v_threshold=theta / pending,
                     v_reset=np.zeros(node.shape, np.float32), metadata=meta)
    out = b.add(node.name, layer, _Value(x.sources))
    out.scale = theta  # our spikes have amplitude theta
    return out


def _add(b: _Builder, node: Node, xs: list[_Value]) -> _Value:
    scales = [x.scale for x in xs]
    if all(s is None for s in scales) or all(
            s is not None and np.array_equal(s, scales[0]) for s in scales):
        return _Value([src for x in xs for src in x.sources], scales[0])
    parts = [b.materialise(f"{node.name}_in{k}", x) for k, x in enumerate(xs)]
    return _Value([src for x in parts for src in x.sources])


Mapper = Callable[[_Builder, Node, _Value, tuple[int, ...]], _Value]
_MAPPERS: dict[str, Mapper] = {
    "conv": _conv, "linear": _linear, "avgpool": _pool, "global_avgpool": _pool,
    "affine": _affine, "flatten": _flatten, "reshape": _flatten, "if": _neuron,
}


def to_nir(graph: Graph) -> Any:
    """The NIR graph of a converted network; one error lists every node NIR cannot hold."""
    nir = _nir()
    if graph.meta.get("stage") != "snn":
        raise UsageError("only a converted (spiking) network can be exported to NIR")
    signed = [n for n in graph.nodes if n.op == "if" and n.attrs.get("signed")]
    if signed:
        raise ModelError.at(signed[0], f"{len(signed)} layer(s) have signed neurons, which "
                            "NIR's IF node cannot express (no negative spikes); compile with "
                            "--neuron if (or --target nir, which picks it)")
    unsupported = [n for n in graph.nodes[1:] if n.op not in _MAPPERS and n.op != "add"]
    if unsupported:
        listed = "\n".join(f"  - {n.origin}: {n.op}" for n in unsupported)
        raise ModelError(f"{len(unsupported)} layer(s) have no NIR equivalent:\n{listed}\n"
                         f"NIR holds: add, {', '.join(sorted(_MAPPERS))}. Max pooling, concat, "
                         "pad, slice and transpose would need lowering first.")
    b = _Builder(nir)
    values = {graph.input.name: _Value(["input"])}
    b.nodes["input"] = nir.Input(input_type={"input": np.array(graph.input.shape)})
    for node in graph.nodes[1:]:
        if node.op == "add":
            values[node.name] = _add(b, node, [values[i] for i in node.inputs])
        else:
            in_shape = graph.node(node.inputs[0]).shape
            values[node.name] = _MAPPERS[node.op](b, node, values[node.inputs[0]], in_shape)
    result = b.materialise("output", values[graph.output])
    b.add("output", nir.Output(output_type={"output": np.array(graph.output_node.shape)}),
          result)
    meta = {"producer": "snnc", "decode": "mean of the output over the time steps",
            "reset": "subtract"}
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=meta)


def write_nir(graph: Graph, path: str | os.PathLike[str]) -> None:
    nir = _nir()
    model = to_nir(graph)
    with atomic_path(path) as tmp:  # h5py wants a file name
        nir.write(tmp, model)
