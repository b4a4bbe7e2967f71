"""A plain-data plan of the Lava process graph for a lowered (and, for fixed point, quantized)
IR graph: which processes, with which parameters, connected how. Building it needs no Lava;
`network.py` instantiates it.

Per population (see compiler/populations.py): one neuron process (`if`: snnc's IFSub, reset by
subtraction; `lif`: Lava's stock LIF, reset to zero) and one Dense per incoming synapse; the
graph output becomes a Readout that sums its input current. Input-fed populations receive the
direct-encoded input as a per-sample bias current, set before each sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.passes.quantize_weights import INPUT_BIAS_EXP
from snnc.compiler.populations import Population, pool_index, populations, spike_theta

MODES = ("fixed", "float")
MAX_DELAY = 64  # DelayDense takes 0..63 extra steps (6 bits, its docstring) on top of Dense's 1
NEURONS = ("if", "lif")


@dataclass(frozen=True)
class ProcSpec:
    name: str
    kind: str  # "if" | "lif" | "dense" | "readout" | "maxpool"
    size: int
    params: dict[str, Any] = field(default_factory=dict)
    depth: int = 1  # for neurons: the Lava step from which their bias is switched on


@dataclass(frozen=True)
class Plan:
    mode: str
    neuron: str
    procs: tuple[ProcSpec, ...]
    connections: tuple[tuple[str, str], ...]  # (source process, destination process)
    input_pops: tuple[str, ...]  # neuron processes whose bias carries the input
    readout: str
    readout_scale: float  # output = acc / (readout_scale * T) + readout_bias
    readout_bias: np.ndarray
    lag: int  # Lava steps = T + lag

    def proc(self, name: str) -> ProcSpec:
        return next(p for p in self.procs if p.name == name)

    @property
    def neurons(self) -> list[ProcSpec]:
        return [p for p in self.procs if p.kind in NEURONS]


def _flat(a: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`a` broadcast to a per-sample shape (per-tensor or per-channel values), flattened."""
    return np.broadcast_to(np.asarray(a, np.float64), shape).reshape(-1).copy()


def _neuron(pop: Population, mode: str, neuron: str) -> ProcSpec:
    node, n = pop.node, pop.size
    if mode == "fixed":
        params = {"vth": node.params["q_vth"].astype(np.int64),
                  "v": node.params["q_v0"].astype(np.int64),
                  "bias_mant": node.params["q_bias_mant"].astype(np.int64),
                  "bias_exp": int(node.attrs["q_bias_exp"])}
        if not pop.synapses:
            params.update(bias_mant=np.zeros(n, np.int64), bias_exp=INPUT_BIAS_EXP)
    else:
        bias = np.zeros(n)
        if pop.synapses:
            bias = _flat(pop.synapses[0].node.params["bias"], (n,))
            if "i_shift" in node.params:
                bias = bias + _flat(node.params["i_shift"], node.shape)
        params = {"vth": _flat(node.params["theta"], node.shape),
                  "v": _flat(node.params["v0"], node.shape),
                  "bias_mant": bias, "bias_exp": 0}
    return ProcSpec(node.name, neuron, n, params, pop.depth)


def _dense(graph: Graph, pop: Population, k: int, mode: str) -> ProcSpec:
    syn = pop.synapses[k]
    if syn.delay > MAX_DELAY:
        raise ModelError.at(pop.node, f"needs a synaptic delay of {syn.delay} steps from "
                            f"'{syn.source}' (a skip connection); Loihi 2 delays stop at "
                            f"{MAX_DELAY}")
    if mode == "fixed":
        params = {"weights": syn.node.params["q_weight"].astype(np.int64),
                  "weight_exp": int(syn.node.attrs["q_weight_exp"])}
    else:
        src = graph.node(syn.source)
        theta = _flat(spike_theta(graph, syn.source), src.shape)
        params = {"weights": syn.node.params["weight"].astype(np.float64) * theta[None, :]}
    params["delay"] = syn.delay  # > 1: Lava's DelayDense with delays = delay - 1
    return ProcSpec(syn.node.name, "dense", pop.size, params)


def _quiet(procs: list[ProcSpec], pops: list[Population]) -> list[ProcSpec]:
    """Give every spike source its longest outgoing delay (through its maxpool too): it stays
    silent that many steps at the end of a sample so no spike leaks into the next one."""
    out: dict[str, int] = {}
    for pop in pops:
        for syn in pop.synapses:
            out[syn.source] = max(out.get(syn.source, 1), syn.delay)
    for pop in pops:
        if pop.pool_of is not None:
            out[pop.pool_of] = max(out.get(pop.pool_of, 1), out.get(pop.name, 1))
    return [dataclasses.replace(p, params={**p.params, "quiet": out.get(p.name, 1)})
            if p.kind in (*NEURONS, "maxpool") else p for p in procs]


def build_plan(graph: Graph, mode: str = "fixed", neuron: str = "if") -> Plan:
    if mode not in MODES:
        raise UsageError(f"lava mode '{mode}' is not one of: {', '.join(MODES)}")
    if neuron not in NEURONS:
        raise UsageError(f"neuron '{neuron}' is not one of: {', '.join(NEURONS)}")
    if mode == "fixed" and graph.meta.get("quantized") != "loihi2":
        raise UsageError("fixed-point Lava needs a network compiled with --target loihi")
    pops = populations(graph)
    procs: list[ProcSpec] = []
    conns: list[tuple[str, str]] = []
    readout = pops[-1]
    for pop in pops:
        target = pop.name
        if pop.readout:
            target = f"{pop.name}_readout"
            procs.append(ProcSpec(target, "readout", pop.size, {}, pop.depth))
        elif pop.pool_of is not None:
            procs.append(ProcSpec(pop.name, "maxpool", pop.size,
                                  {"index": pool_index(graph, pop.node),
                                   "n_in": int(np.prod(graph.node(pop.pool_of).shape))},
                                  pop.depth))
            conns.append((pop.pool_of, pop.name))
        else:
            procs.append(_neuron(pop, mode, neuron))
        for k, syn in enumerate(pop.synapses):
            dense = _dense(graph, pop, k, mode)
            procs.append(dense)
            conns += [(syn.source, dense.name), (dense.name, target)]
    procs = _quiet(procs, pops)
    scale = float(readout.synapses[0].node.attrs["q_scale"]) if mode == "fixed" else 1.0
    bias = sum(_flat(s.node.params["bias"], (readout.size,)) for s in readout.synapses)
    return Plan(mode, neuron, tuple(procs), tuple(conns),
                tuple(p.name for p in pops
                      if not p.synapses and not p.readout and p.pool_of is None),
                f"{readout.name}_readout", scale, np.asarray(bias), readout.depth - 1)
