"""A plain-data plan of the Lava process graph for a lowered (and, for fixed point, quantized)
IR graph: which processes, with which parameters, connected how. Building it needs no Lava;
`network.py` instantiates it.

Per population (compiler/loihi/populations.py): one neuron process, chosen by the IR node's
`reset` attribute (`if`: snnc's IFSub, reset by subtraction; `lif`: Lava's stock LIF, reset to
zero, driven and counted by a LifIO process), and one synapse process per synapse node
(compiler/loihi/lower_synapses.py), in the structure the compiler kept:

    conv    Lava's `Conv` where the window is one Lava can hold (its padding is symmetric: the
            output size under Lava's formula must be the node's) and the delay is the plain
            one step; otherwise the window's CSR matrix as `Sparse` (`DelaySparse` for the
            longer delays of skip connections). conv="sparse" never uses Conv, conv="dense"
            holds these matrices dense (`Dense`) up to MAX_DENSE entries.
    dense   `Dense` (`DelayDense`).
    sparse  `Sparse` (`DelaySparse`).

The graph output becomes a Readout that sums its input current (the host adds the readout
population's bias). Input-fed populations receive the direct-encoded input per sample.
A graph of stock LIFs only (no IF, no spiking max pool) gets lif_plan.py's plan instead
(sd_plan.build_any_plan chooses): stock processes between an input source and an output sink.

Graded neurons (spike_bits B > 1) and signed ones send a payload n per message (IFSub's
`levels` K = 2^B - 1 and `signed`; procs/process.py), and every synapse reading them (or a
max pool of them) gets `num_message_bits` (compiler/loihi/populations.py: B, or B + 1 for
signed counts), so that Lava's Dense / Sparse / Conv (and Delay*) multiply the weights by n
instead of reading s_in as a binary spike. Binary unsigned networks get neither: their plan
is the one they always had.

Weights, fixed point: Dense and Sparse get the 8-bit mantissas with Lava's own `weight_exp`
and the sign mode under which Lava's clip_weights / truncate_weights leave them unchanged
(mixed-sign mantissas are even, compiler/loihi/formats.py). Lava's Conv differs (research
notes, 1.4): its fixed-point model ignores `weight_exp` and neither clips nor truncates, so the
exponent is folded into the integers (m << e); it takes weights as (C_out, kW, kH, C_in/groups)
over inputs laid out (W, H, C), padding / stride / dilation in (W, H) order, and convolves
(scipy flips the kernel): we pass the kernel flipped. Float: the source's spike amplitude and
a reset-to-zero target's threshold gain are folded into the weights (per input / output
channel for a Conv, which lower-synapses made possible; otherwise the synapse goes sparse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from snnc.compiler.contracts import QUANTIZED_WEIGHTS, facts
from snnc.compiler.errors import InternalError, ModelError, UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.formats import INPUT_BIAS_EXP
from snnc.compiler.loihi.populations import (
    Population,
    Synapse,
    message_bits,
    pool_index,
    populations,
    spike_theta,
    threshold_gain,
)
from snnc.compiler.loihi.synapses import matrix, window
from snnc.compiler.ops.neuron import max_count

MODES = ("fixed", "float")
CONV_MODES = ("lava", "sparse", "dense")
MAX_DELAY = 64  # Delay* processes take 0..63 extra steps (6 bits) on top of the plain 1
MAX_DENSE = 1 << 24  # conv="dense": larger conv synapses stay Sparse
LAVA_INT8 = 127  # Lava's Conv models hold kernel size, stride, padding, dilation as int8
NEURONS = ("if", "lif")
SYNAPSES = ("dense", "sparse", "conv")


@dataclass(frozen=True)
class ProcSpec:
    name: str
    # "if" | "lif" | "dense" | "sparse" | "conv" | "readout" | "maxpool" | "source" | "sink"
    kind: str
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
    # "rate": output = acc / (readout_scale * T) + bias; "sum" (sigma-delta, sd_plan.py):
    # output = acc / readout_scale + bias, the sink's sum of the last synapses' messages
    decode: str = "rate"

    def proc(self, name: str) -> ProcSpec:
        return next(p for p in self.procs if p.name == name)

    @property
    def neurons(self) -> list[ProcSpec]:
        return [p for p in self.procs if p.kind in NEURONS]


def _flat(a: Any, shape: tuple[int, ...]) -> np.ndarray:
    """`a` broadcast to a per-sample shape (per-tensor or per-channel values), flattened."""
    return np.broadcast_to(np.asarray(a, np.float64), shape).reshape(-1).copy()


# ---------------------------------------------------------------------------- neurons

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
        assert pop.bias is not None
        bias = np.asarray(pop.bias, np.float64).reshape(n)
        if "i_shift" in node.params:
            bias = bias + _flat(node.params["i_shift"], node.shape)
    vth = _flat(node.params["theta"], node.shape) * gain
    return {"vth": float(vth.max()) if pop.reset_zero else vth,
            "v": _flat(node.params["v0"], node.shape) * gain,
            "bias_mant": bias * gain, "bias_exp": 0}


def _neuron(graph: Graph, pop: Population, mode: str) -> ProcSpec:
    params = _fixed_neuron(pop) if mode == "fixed" else _float_neuron(pop)
    if message_bits(graph, pop.name):  # graded or signed: IFSub sends the payload n
        params.update(levels=max_count(pop.node), signed=bool(pop.node.attrs.get("signed")))
    return ProcSpec(pop.node.name, "lif" if pop.reset_zero else "if", pop.size, params,
                    pop.depth)


# ---------------------------------------------------------------------------- synapses

def _in_shape(graph: Graph, syn: Synapse) -> tuple[int, ...]:
    """The shape of the value the synapse node reads (a conv: its (C, H, W) view)."""
    return tuple(graph.node(syn.node.inputs[0]).shape)


def _theta_gain(graph: Graph, pop: Population, syn: Synapse) -> tuple[np.ndarray, np.ndarray]:
    """Float weights carry the source's spike amplitude (per input) and the target's
    threshold gain (per output)."""
    src = graph.node(syn.source)
    if src.op in ("sd", "input"):  # sigma-delta messages carry values: no spike amplitude
        return np.ones(math.prod(src.shape)), threshold_gain(pop.node)
    return _flat(spike_theta(graph, syn.source), src.shape), threshold_gain(pop.node)


def sign_mode(values: np.ndarray, where: str) -> str:
    """The sign mode under which Lava's Dense / Sparse (clip_weights, then truncate_weights
    with 8 weight bits) leave these mantissas unchanged."""
    v = np.asarray(values)
    lo, hi = int(v.min(initial=0)), int(v.max(initial=0))
    if lo >= 0 and hi <= 255:
        return "excitatory"
    if hi <= 0 and lo >= -255:
        return "inhibitory"
    if lo >= -256 and hi <= 254 and not np.any(v % 2):
        return "mixed"  # Lava drops the lowest bit of mixed-sign weights: keep them even
    raise InternalError(f"{where}: weight mantissas in [{lo}, {hi}] do not fit Loihi's 8-bit "
                        "format; recompile with --target loihi")


def _lava_conv_fits(m: Any) -> bool:
    """Whether Lava's Conv (symmetric padding, int8 geometry) gives this window's output."""
    kh, kw = m.kernel.shape[2:]
    for a, k in enumerate((kh, kw)):
        span = m.dilations[a] * (k - 1) + 1
        full = m.in_chw[1 + a] + 2 * m.pads[a]
        if full < span or (full - span) // m.strides[a] + 1 != m.out_chw[1 + a]:
            return False
        if max(k, m.strides[a], m.pads[a], m.dilations[a]) > LAVA_INT8:
            return False
    return True


def _conv(graph: Graph, pop: Population, syn: Synapse, mode: str) -> ProcSpec | None:
    node = syn.node
    if node.op != "conv" or syn.delay != 1:
        return None
    fixed = mode == "fixed"
    m = window(node, _in_shape(graph, syn), "q_weight" if fixed else "weight")
    if not _lava_conv_fits(m):
        return None
    co, cig = m.kernel.shape[:2]
    if fixed:
        exp = int(node.attrs["q_weight_exp"])
        if exp < 0:  # m >> -e would round; Sparse applies Lava's own shift
            return None
        kernel = np.left_shift(node.params["q_weight"].astype(np.int64), exp)
    else:
        theta, gain = _theta_gain(graph, pop, syn)
        theta_c = theta.reshape(m.in_chw[0], -1)
        gain_c = gain.reshape(co, -1)
        if np.any(theta_c != theta_c[:, :1]) or np.any(gain_c != gain_c[:, :1]):
            return None  # not per channel: no kernel can carry them
        chan = (np.arange(co)[:, None] // (co // m.groups)) * cig + np.arange(cig)[None, :]
        kernel = m.kernel * (theta_c[chan, 0] * gain_c[:, :1])[:, :, None, None]
    # Lava: (C_out, kW, kH, C_in / groups) over (W, H, C), and a true convolution: flip
    lava_weight = np.ascontiguousarray(kernel[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
    params = {"weight": lava_weight.astype(np.int32 if fixed else np.float64),
              "in_chw": m.in_chw, "out_chw": m.out_chw,
              "padding": m.pads[::-1], "stride": m.strides[::-1],
              "dilation": m.dilations[::-1], "groups": int(m.groups)}
    return ProcSpec(node.name, "conv", pop.size, params)


def _matrix(graph: Graph, pop: Population, syn: Synapse, mode: str, conv: str) -> ProcSpec:
    """A Dense or Sparse process for the synapse's matrix (n_out, n_in)."""
    node = syn.node
    fixed = mode == "fixed"
    key = "q_weight" if fixed else "weight"
    dense = node.op == "linear" or (conv == "dense" and node.op == "conv"
                                     and pop.size * math.prod(_in_shape(graph, syn))
                                     <= MAX_DENSE)
    if node.op == "linear":
        w: Any = np.asarray(node.params[key], np.float64)
    else:
        w = matrix(node, _in_shape(graph, syn), key).tocsr()
    if not fixed:
        theta, gain = _theta_gain(graph, pop, syn)
        if isinstance(w, np.ndarray):
            w = w * theta[None, :] * gain[:, None]
        else:
            w = sp.csr_matrix(sp.diags(gain) @ w @ sp.diags(theta))
    if dense and not isinstance(w, np.ndarray):
        w = w.toarray()
    params: dict[str, Any] = {"delay": syn.delay}
    if fixed:  # Lava's own exponent; integers as Lava holds them
        if isinstance(w, np.ndarray):
            w = np.rint(w).astype(np.int64)
        else:
            w = sp.csr_matrix((np.rint(w.data).astype(np.int32), w.indices, w.indptr),
                              shape=w.shape)
        values = w if isinstance(w, np.ndarray) else w.data
        params.update(weight_exp=int(node.attrs["q_weight_exp"]),
                      sign_mode=sign_mode(values, node.origin))
    if not isinstance(w, np.ndarray):
        w.eliminate_zeros()
        w.sort_indices()
    params["weights"] = w
    return ProcSpec(node.name, "dense" if isinstance(w, np.ndarray) else "sparse", pop.size,
                    params)


def _synapse(graph: Graph, pop: Population, syn: Synapse, mode: str, conv: str) -> ProcSpec:
    if syn.delay > MAX_DELAY:
        raise ModelError.at(pop.node, f"needs a synaptic delay of {syn.delay} steps from "
                            f"'{syn.source}' (a skip connection); Loihi 2 delays stop at "
                            f"{MAX_DELAY}")
    spec = _conv(graph, pop, syn, mode) if conv == "lava" else None
    spec = spec if spec is not None else _matrix(graph, pop, syn, mode, conv)
    bits = message_bits(graph, syn.source)
    if bits:  # graded or signed payloads: Lava multiplies the weights by s_in, not bool(s_in)
        spec = replace(spec, params={**spec.params, "num_message_bits": bits})
    return spec


def check_request(graph: Graph, mode: str, conv: str) -> None:
    """The Lava mode and conv choice exist, and fixed point has a quantized graph."""
    if mode not in MODES:
        raise UsageError(f"lava mode '{mode}' is not one of: {', '.join(MODES)}")
    if conv not in CONV_MODES:
        raise UsageError(f"conv '{conv}' is not one of: {', '.join(CONV_MODES)}")
    if mode == "fixed" and QUANTIZED_WEIGHTS not in facts(graph):
        raise UsageError("fixed-point Lava needs a network compiled with --target loihi")


def build_plan(graph: Graph, mode: str = "fixed", conv: str = "lava") -> Plan:
    check_request(graph, mode, conv)
    if graph.meta.get("neuron") == "sigma-delta":
        raise UsageError("a sigma-delta graph's plan comes from sd_plan.build_any_plan")
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
            procs.append(_neuron(graph, pop, mode))
        for syn in pop.synapses:
            spec = _synapse(graph, pop, syn, mode, conv)
            procs.append(spec)
            conns += [(syn.source, spec.name), (spec.name, target)]
    scale = float(readout.synapses[0].node.attrs["q_scale"]) if mode == "fixed" else 1.0
    assert readout.bias is not None
    return Plan(mode, tuple(procs), tuple(conns),
                tuple(p.name for p in pops
                      if not p.synapses and not p.readout and p.pool_of is None),
                f"{readout.name}_readout", scale,
                np.asarray(readout.bias, np.float64).reshape(readout.size), readout.depth - 1)
