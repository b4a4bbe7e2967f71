"""A plain-data plan of the Lava process graph for a lowered (and, for fixed point, quantized)
IR graph: which processes, with which parameters, connected how. Building it needs no Lava;
`network.py` instantiates it.

Per population (see compiler/populations.py): one neuron process, chosen by the IR node's
`reset` attribute (`if`: snnc's IFSub, reset by subtraction; `lif`: Lava's stock LIF, reset to
zero, driven and counted by a LifIO process), and one synapse process per incoming synapse:
Lava's Conv where the synapse is exactly a convolution and has the plain one-step delay
(`conv="lava"`), else Dense (DelayDense for longer delays). The graph output becomes a Readout
that sums its input current. Input-fed populations receive the direct-encoded input per sample.

Lava's Conv differs from Dense in ways that matter for bit-exactness (research notes, 1.4): its
fixed-point model ignores `weight_exp` (so the exponent is folded into the weights, m << e,
which quantize-weights keeps non-negative), takes weights as (C_out, kW, kH, C_in) over inputs
laid out (W, H, C), and convolves (scipy flips the kernel): we pass the kernel flipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnc.compiler.conv_window import kernel_of
from snnc.compiler.errors import InternalError, ModelError, UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.passes.quantize_weights import INPUT_BIAS_EXP
from snnc.compiler.populations import (
    Population,
    Synapse,
    pool_index,
    populations,
    spike_theta,
    threshold_gain,
)

MODES = ("fixed", "float")
CONV_MODES = ("lava", "dense")
MAX_DELAY = 64  # DelayDense takes 0..63 extra steps (6 bits, its docstring) on top of Dense's 1
NEURONS = ("if", "lif")
SYNAPSES = ("dense", "conv")


@dataclass(frozen=True)
class ProcSpec:
    name: str
    kind: str  # "if" | "lif" | "dense" | "conv" | "readout" | "maxpool"
    size: int
    params: dict[str, Any] = field(default_factory=dict)
    depth: int = 1  # neurons, pools, readout: the local step at which each sample reaches them


@dataclass(frozen=True)
class Plan:
    mode: str
    procs: tuple[ProcSpec, ...]
    connections: tuple[tuple[str, str], ...]  # (source process, destination process)
    input_pops: tuple[str, ...]  # neuron processes whose drive carries the input
    readout: str
    readout_scale: float  # output = acc / (readout_scale * T) + readout_bias
    readout_bias: np.ndarray
    lag: int  # Lava steps per sample = T + lag

    def proc(self, name: str) -> ProcSpec:
        return next(p for p in self.procs if p.name == name)

    @property
    def neurons(self) -> list[ProcSpec]:
        return [p for p in self.procs if p.kind in NEURONS]


def _flat(a: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`a` broadcast to a per-sample shape (per-tensor or per-channel values), flattened."""
    return np.broadcast_to(np.asarray(a, np.float64), shape).reshape(-1).copy()


def _fixed_neuron(pop: Population) -> dict[str, Any]:
    node, n = pop.node, pop.size
    params = {"vth": node.params["q_vth"].astype(np.int64),
              "v": node.params["q_v0"].astype(np.int64),
              "bias_mant": node.params["q_bias_mant"].astype(np.int64),
              "bias_exp": int(node.attrs["q_bias_exp"])}
    if not pop.synapses:  # the input arrives per sample: IFSub shifts it by bias_exp
        params.update(bias_mant=np.zeros(n, np.int64), bias_exp=INPUT_BIAS_EXP)
    if pop.reset_zero:
        vth, v0 = params["vth"], params["v"]
        if np.any(vth != vth[0]) or np.any(v0 % 64):
            raise InternalError(f"{node.origin}: quantize-weights gave a reset-to-zero "
                                "population several thresholds or a v0 in fractions of a "
                                "weight unit; recompile with --target loihi")
        params.update(vth=int(vth[0]), v=v0 >> 6)  # v0 enters as input current (<< 6)
    return params


def _float_neuron(pop: Population) -> dict[str, Any]:
    node, n = pop.node, pop.size
    gain = threshold_gain(node)  # ones unless a LIF needs one threshold
    bias = np.zeros(n)
    if pop.synapses:
        bias = _flat(pop.synapses[0].node.params["bias"], (n,))
        if "i_shift" in node.params:
            bias = bias + _flat(node.params["i_shift"], node.shape)
    vth = _flat(node.params["theta"], node.shape) * gain
    params = {"vth": float(vth.max()) if pop.reset_zero else vth,
              "v": _flat(node.params["v0"], node.shape) * gain,
              "bias_mant": bias * gain, "bias_exp": 0}
    return params


def _neuron(pop: Population, mode: str) -> ProcSpec:
    params = _fixed_neuron(pop) if mode == "fixed" else _float_neuron(pop)
    return ProcSpec(pop.node.name, "lif" if pop.reset_zero else "if", pop.size, params,
                    pop.depth)


def _weights(graph: Graph, pop: Population, syn: Synapse, mode: str) -> np.ndarray:
    """The matrix the synapse process applies: integers m << e, or floats with the source's
    spike amplitude (and a LIF target's threshold gain) folded in."""
    if mode == "fixed":
        return np.left_shift(syn.node.params["q_weight"].astype(np.int64),
                             int(syn.node.attrs["q_weight_exp"]))
    src = graph.node(syn.source)
    theta = _flat(spike_theta(graph, syn.source), src.shape)
    gain = threshold_gain(pop.node)
    return syn.node.params["weight"].astype(np.float64) * theta[None, :] * gain[:, None]


def _conv(syn: Synapse, weights: np.ndarray, size: int) -> ProcSpec | None:
    window = syn.node.meta.get("window")
    if syn.delay != 1 or window is None:
        return None
    kernel = kernel_of(weights, window)
    if kernel is None:
        return None
    c, h, w = window["in_shape"]
    co, ho, wo = window["out_shape"]
    # Lava: (C_out, kW, kH, C_in) over (W, H, C), and a true convolution: flip the kernel
    lava_weight = np.ascontiguousarray(kernel[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
    params = {"weight": lava_weight, "in_chw": (c, h, w), "out_chw": (co, ho, wo),
              "padding": tuple(window["pads"][::-1]), "stride": tuple(window["strides"][::-1])}
    return ProcSpec(syn.node.name, "conv", size, params)


def _synapse(graph: Graph, pop: Population, syn: Synapse, mode: str, conv: str) -> ProcSpec:
    if syn.delay > MAX_DELAY:
        raise ModelError.at(pop.node, f"needs a synaptic delay of {syn.delay} steps from "
                            f"'{syn.source}' (a skip connection); Loihi 2 delays stop at "
                            f"{MAX_DELAY}")
    weights = _weights(graph, pop, syn, mode)
    spec = _conv(syn, weights, pop.size) if conv == "lava" else None
    if spec is not None:
        return spec
    params: dict[str, Any] = {"weights": weights, "delay": syn.delay}
    if mode == "fixed":  # m << e is exact in Dense too; keep Lava's own exponent
        params.update(weights=syn.node.params["q_weight"].astype(np.int64),
                      weight_exp=int(syn.node.attrs["q_weight_exp"]))
    return ProcSpec(syn.node.name, "dense", pop.size, params)


def build_plan(graph: Graph, mode: str = "fixed", conv: str = "lava") -> Plan:
    if mode not in MODES:
        raise UsageError(f"lava mode '{mode}' is not one of: {', '.join(MODES)}")
    if conv not in CONV_MODES:
        raise UsageError(f"conv '{conv}' is not one of: {', '.join(CONV_MODES)}")
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
            procs.append(_neuron(pop, mode))
        for syn in pop.synapses:
            spec = _synapse(graph, pop, syn, mode, conv)
            procs.append(spec)
            conns += [(syn.source, spec.name), (spec.name, target)]
    scale = float(readout.synapses[0].node.attrs["q_scale"]) if mode == "fixed" else 1.0
    bias = sum(_flat(s.node.params["bias"], (readout.size,)) for s in readout.synapses)
    return Plan(mode, tuple(procs), tuple(conns),
                tuple(p.name for p in pops
                      if not p.synapses and not p.readout and p.pool_of is None),
                f"{readout.name}_readout", scale, np.asarray(bias), readout.depth - 1)
