"""Export a converted snnc network as a NIR graph (Neuromorphic Intermediate Representation),
the exchange format read by Sinabs, snnTorch, Norse, Rockpool, SpiNNaker2, Nengo and others.

The file means what it says under plain NIR semantics wherever NIR can say it:

    conv (1-d, 2-d)      -> Conv1d / Conv2d, groups expanded to a dense weight (groups=1):
                            nir and every consumer size the input by weight.shape[1]
    linear               -> Affine
    affine (per channel) -> a diagonal Affine (vectors) or a diagonal 1x1 Conv2d (maps)
    avgpool, global pool -> SumPool2d (the 1/k^2 goes into the next synapse's weights)
    flatten / reshape    -> Flatten (to 1-d)
    add                  -> no node: NIR sums the edges that enter a node
    if                   -> IF(r=1, v_threshold=1, v_reset=0)

Every factor (spike amplitude theta, 1/k^2, 1/theta) is folded into weights and biases
(builder.py), so thresholds are 1, spikes are 1 and there is no Scale node. A constant input
current (`--shift input`) becomes bias.

What NIR cannot state: reset by subtraction (NIR's IF sets v to v_reset) and an initial
potential V(0) != 0. They are written as metadata ({"reset": "subtract"}, "v_initial" in
threshold units) and reported by `nir_notes`; Sinabs' IAF subtracts, Norse's and snnTorch's
readers do not, and none reads v_initial. `--preset nir` (reset to zero, V(0) = 0) compiles
a network that relies on neither. The output is the last layer's value, which snnc decodes as
its mean over time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from snnc.compiler.contracts import CONVERTED, facts
from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.fileio import atomic_path
from snnc.compiler.ir.graph import Graph, Node

from .builder import Builder, Term, identity


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise UsageError("--target nir needs the 'nir' package: pip install nir "
                         "(or `make install`, which installs it)") from None
    return nir


class _Export:
    def __init__(self, graph: Graph, nir: Any) -> None:
        self.graph = graph
        self.b = Builder(nir)
        self.nir = nir
        self.uses = {n.name: len(graph.consumers(n.name)) for n in graph.nodes}
        self.uses[graph.output] += 1
        # IR vectors that live in the NIR graph as maps (C, H, W): a flatten is only a view
        # until something other than a linear layer or a neuron reads it
        self.view: dict[str, tuple[int, ...]] = {}

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The shape of IR value `name` in the NIR graph."""
        return self.view.get(name, self.graph.node(name).shape)

    def unview(self, name: str, terms: list[Term]) -> list[Term]:
        """A viewed value as the vector it is: a real Flatten node."""
        shape = self.view.pop(name, None)
        if shape is None:
            return terms
        ir = self.graph.node(name)
        terms, scale = self.b.pay_relative(ir, terms, shape)
        layer = self.nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
        flat = None if scale is None else np.broadcast_to(scale, shape).reshape(-1).copy()
        return self.out(ir, self.b.add(self.b.fresh(f"{name}_flatten"), layer, terms), flat)

    def out(self, node: Node, nir_name: str, scale: np.ndarray | None = None) -> list[Term]:
        return [Term(nir_name, scale, exclusive=self.uses[node.name] == 1)]


def _symmetric(node: Node, pads: list[int]) -> list[int]:
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise ModelError.at(node, f"asymmetric padding {pads} cannot be expressed in NIR")
    return pads[:half]


def dense_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """A grouped convolution's weight (O, C/g, k...) as the equal dense one (O, C, k...)."""
    if groups == 1:
        return w
    o, cg = w.shape[:2]
    dense = np.zeros((o, cg * groups, *w.shape[2:]), w.dtype)
    for g in range(groups):
        rows = slice(g * (o // groups), (g + 1) * (o // groups))
        dense[rows, g * cg:(g + 1) * cg] = w[rows]
    return dense


def _conv(e: _Export, node: Node, terms: list[Term]) -> list[Term]:
    in_shape = e.shape_of(node.inputs[0])
    terms, scale = e.b.pay_relative(node, terms, in_shape)
    a, p = node.attrs, node.params
    w = dense_weight(p["weight"], a["groups"])
    if scale is not None:  # the input's per-channel factor goes into the input-channel axis
        per_c = np.broadcast_to(scale, in_shape).reshape(in_shape[0], -1)[:, 0]
        w = w * per_c.reshape(1, -1, *([1] * (w.ndim - 2)))
    w, bias = w.astype(np.float32), p["bias"].astype(np.float32)
    pad = _symmetric(node, list(a["pads"]))
    if len(in_shape) == 3:
        layer = e.nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=w,
                             stride=tuple(a["strides"]), padding=tuple(pad),
                             dilation=tuple(a["dilations"]), groups=1, bias=bias)
    elif len(in_shape) == 2:
        layer = e.nir.Conv1d(input_shape=in_shape[1], weight=w, stride=a["strides"][0],
                             padding=pad[0], dilation=a["dilations"][0], groups=1, bias=bias)
    else:
        raise ModelError.at(node, f"a {len(in_shape) - 1}-d convolution has no NIR node")
    return e.out(node, e.b.add(node.name, layer, terms, synapse=True))


def _check_per_channel(node: Node, scale: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if scale is not None and len(shape) > 1:
        flat = np.broadcast_to(scale, shape).reshape(shape[0], -1)
        if not np.all(flat == flat[:, :1]):
            raise ModelError.at(node, "a per-neuron factor on a feature map has no NIR "
                                      "synapse to carry it")


def _linear(e: _Export, node: Node, terms: list[Term]) -> list[Term]:
    in_shape = e.shape_of(node.inputs[0])
    if len(in_shape) == 3:  # a flattened map: a convolution as large as the map
        terms, scale = e.b.pay_relative(node, terms, in_shape)
        w = node.params["weight"].reshape(-1, *in_shape)
        if scale is not None:
            w = w * np.broadcast_to(scale, in_shape)[None]
        layer = e.nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=w.astype(np.float32),
                             stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                             bias=node.params["bias"].astype(np.float32))
        e.view[node.name] = (w.shape[0], 1, 1)
        return e.out(node, e.b.add(node.name, layer, terms, synapse=True))
    if len(in_shape) != 1:
        raise ModelError.at(node, "NIR's Affine takes vectors; flatten first")
    terms, scale = e.b.pay_relative(node, terms, in_shape)
    w = node.params["weight"]
    if scale is not None:
        w = w * np.broadcast_to(scale, in_shape)[None, :]
    layer = e.nir.Affine(weight=w.astype(np.float32),
                         bias=node.params["bias"].astype(np.float32))
    return e.out(node, e.b.add(node.name, layer, terms, synapse=True))


def _pool(e: _Export, node: Node, terms: list[Term]) -> list[Term]:
    in_shape = e.shape_of(node.inputs[0])
    a = node.attrs
    if len(in_shape) != 3:
        raise ModelError.at(node, "NIR has 2-d pooling only")
    if node.op == "global_avgpool":
        kernel, stride = list(in_shape[1:]), list(in_shape[1:])
    else:
        if any(a["pads"]) or a["ceil_mode"] or any(d != 1 for d in a["dilations"]):
            raise ModelError.at(node, "NIR's pooling has no padding, ceil mode or dilation")
        kernel, stride = list(a["kernel"]), list(a["strides"])
    terms, scale = e.b.pay_relative(node, terms, in_shape)
    _check_per_channel(node, scale, in_shape)
    layer = e.nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                            padding=np.array([0, 0]))
    per_c = np.ones(in_shape[0], np.float32) if scale is None else np.broadcast_to(
        scale, in_shape).reshape(in_shape[0], -1)[:, 0]
    out_scale = (per_c / np.prod(kernel)).reshape(-1, 1, 1).astype(np.float32)
    return e.out(node, e.b.add(node.name, layer, terms), out_scale)


def _affine(e: _Export, node: Node, terms: list[Term]) -> list[Term]:
    in_shape = e.shape_of(node.inputs[0])
    terms, pending = e.b.pay_relative(node, terms, in_shape)
    pend = 1.0 if pending is None else np.broadcast_to(pending, in_shape)
    scale = np.broadcast_to(node.params["scale"] * pend, in_shape)
    shift = np.broadcast_to(node.params["shift"], in_shape)
    if len(in_shape) == 1:
        layer = e.nir.Affine(weight=np.diag(scale).astype(np.float32),
                             bias=shift.astype(np.float32))
        return e.out(node, e.b.add(node.name, layer, terms, synapse=True))
    per_c = [v.reshape(in_shape[0], -1) for v in (scale, shift)]
    if len(in_shape) not in (2, 3) or any(np.ptp(v, axis=1).any() for v in per_c):
        raise ModelError.at(node, "only per-channel scale/shift on 1-d or 2-d maps maps to NIR")
    layer = identity(e.nir, in_shape, per_c[0][:, 0], per_c[1][:, 0].astype(np.float32))
    return e.out(node, e.b.add(node.name, layer, terms, synapse=True))


def _flatten(e: _Export, node: Node, terms: list[Term]) -> list[Term]:
    """No node: NIR's Flatten means different things to different readers (Norse and
    snnTorch hand its start_dim to torch, which counts the batch axis), so the next linear
    layer reads the map itself as a convolution with the map's size (the same weights)."""
    in_shape = e.shape_of(node.inputs[0])
    if len(node.shape) != 1:
        raise ModelError.at(node, f"reshape to {list(node.shape)} has no NIR node (only "
                                  "flattening does)")
    if len(in_shape) == 3:
        e.view[node.name] = in_shape
        alone = e.uses[node.name] == 1
        return [Term(t.source, t.scale, t.exclusive and alone) for t in terms]
    terms, scale = e.b.pay_relative(node, terms, in_shape)
    layer = e.nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
    flat = None if scale is None else np.broadcast_to(scale, in_shape).reshape(-1).copy()
    return e.out(node, e.b.add(node.name, layer, terms), flat)


def _neuron(e: _Export, node: Node, terms: list[Term]) -> list[Term]:
    shape = e.shape_of(node.inputs[0])
    if node.inputs[0] in e.view:
        e.view[node.name] = shape
    theta = np.broadcast_to(node.params["theta"], node.shape).reshape(shape).astype(np.float32)
    if not np.all(theta > 0):
        raise ModelError.at(node, "NIR export needs positive thresholds")
    inv = (1.0 / theta).astype(np.float32)
    shift = node.params.get("i_shift")
    paid = []
    for k, t in enumerate(terms):  # integrate z / theta against 1: the same spikes
        scale = inv if t.scale is None else (np.broadcast_to(t.scale, shape) * inv)
        bias = None if (k or shift is None) else (
            np.broadcast_to(shift, node.shape).reshape(shape) * inv)
        paid.append(e.b.pay(node, Term(t.source, scale.astype(np.float32), t.exclusive),
                            shape, bias))
    meta: dict[str, Any] = {}
    if node.attrs.get("reset", "subtract") == "subtract":
        meta["reset"] = "subtract"
    v0 = np.broadcast_to(node.params["v0"], node.shape).reshape(shape) * inv
    if np.any(v0 != 0):
        meta["v_initial"] = v0.astype(np.float32)
    ones = np.ones(shape, np.float32)
    layer = e.nir.IF(r=ones, v_threshold=ones.copy(), v_reset=np.zeros(shape, np.float32),
                     metadata=meta)
    return e.out(node, e.b.add(node.name, layer, paid), theta)  # our spikes are theta


def _add(e: _Export, node: Node, parts: list[list[Term]]) -> list[Term]:
    merged: dict[str, Term] = {}
    alone = e.uses[node.name] == 1
    for t in (t for part in parts for t in part):
        if t.source in merged:  # NIR allows one edge per pair: add the factors
            old = merged[t.source]
            a = 1.0 if old.scale is None else old.scale
            b = 1.0 if t.scale is None else t.scale
            merged[t.source] = Term(t.source, np.asarray(a + b, np.float32), False)
        else:
            merged[t.source] = Term(t.source, t.scale, t.exclusive and alone)
    return list(merged.values())


Mapper = Callable[[_Export, Node, list[Term]], list[Term]]
_MAPPERS: dict[str, Mapper] = {
    "conv": _conv, "linear": _linear, "avgpool": _pool, "global_avgpool": _pool,
    "affine": _affine, "flatten": _flatten, "reshape": _flatten, "if": _neuron,
}


def _check(graph: Graph) -> None:
    if CONVERTED not in facts(graph):
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


def to_nir(graph: Graph) -> Any:
    """The NIR graph of a converted network; one error lists every node NIR cannot hold."""
    nir = _nir()
    _check(graph)
    e = _Export(graph, nir)
    e.b.nodes["input"] = nir.Input(input_type={"input": np.array(graph.input.shape)})
    values: dict[str, list[Term]] = {graph.input.name: [Term("input")]}
    for node in graph.nodes[1:]:
        views = {e.view.get(i) for i in node.inputs}
        if node.op not in ("linear", "if", "add") or len(views) > 1:
            for i in node.inputs:
                values[i] = e.unview(i, values[i])
        if node.op == "add":
            values[node.name] = _add(e, node, [values[i] for i in node.inputs])
            if node.inputs[0] in e.view:
                e.view[node.name] = e.view[node.inputs[0]]
        else:
            values[node.name] = _MAPPERS[node.op](e, node, values[node.inputs[0]])
    out = graph.output_node
    shape = e.shape_of(out.name)
    paid = [e.b.pay(out, t, shape) for t in values[graph.output]]
    e.b.add("output", nir.Output(output_type={"output": np.array(shape)}), paid)
    meta = {"producer": "snnc", "decode": "mean of the output over the time steps",
            "output_shape": np.array(out.shape)}  # the output map (O, 1, 1) is a vector
    return nir.NIRGraph(nodes=e.b.nodes, edges=e.b.edges, metadata=meta)


def nir_notes(graph: Graph) -> list[str]:
    """What the network relies on that NIR cannot state (empty: the file is exact)."""
    spiking = [n for n in graph.nodes if n.op == "if"]
    subtract = [n for n in spiking if n.attrs.get("reset", "subtract") == "subtract"]
    started = [n for n in spiking if np.any(np.asarray(n.params["v0"]) != 0)]
    notes = []
    if subtract:
        notes.append(f"{len(subtract)} of {len(spiking)} spiking layers reset by subtraction, "
                     "which NIR's IF cannot state (it resets to v_reset = 0): written as "
                     "metadata reset=subtract, which Sinabs follows and Norse and snnTorch "
                     "do not")
    if started:
        notes.append(f"{len(started)} spiking layers start at V(0) != 0, which NIR cannot "
                     "state: written as metadata v_initial, which no other reader follows")
    return notes


def write_nir(graph: Graph, path: str | os.PathLike[str]) -> list[str]:
    """Write the NIR file; returns `nir_notes` (what a plain NIR reader will not reproduce)."""
    nir = _nir()
    model = to_nir(graph)
    with atomic_path(path) as tmp:  # h5py wants a file name
        nir.write(tmp, model)
    return nir_notes(graph)
