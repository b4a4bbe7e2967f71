"""netx SDNN export (`--target netx --neuron sigma-delta`): a sigma-delta network as the netx
HDF5 layers of lava-dl's PilotNet SDNN format, which `netx.hdf5.Network` builds from Lava's
stock Sigma / SigmaDelta processes:

    /layer/0     input    shape only (neuron SDNN): run the file with `skip_layers=1` and send
                          the quantized input as a graded message (`input_messages`) to the
                          first synapse layer, the whole sample at its first step, 0 after
    /layer/k     conv     a sigma-delta layer (neuron SDNN, vThMant): conv synapse, per-channel
                 dense    bias; `flatten` before a dense layer that reads an image layer
    /layer/last  dense    the output: neuron SDNN with `sigma_output` (Lava's Sigma: the sum of
                 (conv)   the synapse's messages so far); no bias (Sigma has none): the host
                          adds it, output = sigma * snnc_output_unit + snnc_output_bias

Fixed point, as the reader sets it up (lava/lib/dl/netx/hdf5.py, lava/proc/sdn/models.py):
SigmaDelta with spike_exp = 6 (the reader's default) and state_exp = 6 (hard-wired) keeps
sigma = sum of W @ s (W: the file's weights as they are; the reader's dense weight
optimization only re-expresses them), act = relu(sigma + bias * 2**12), sends
s = delta >> 6 when |delta| >= vThMant * 2**12. So a layer whose synapses read messages of unit
m' (real value per integer) with weight step w has state unit u = w * m', message unit
m = 64 u, and bias and vth in steps of 2**12 u. Per layer we choose u = ACT_UNIT * scale (the
layer's activation scale: 24-bit state with headroom, vth and bias to 1/256 of the scale, and
messages within netx's 16 default message bits) for the first layer, whose finest 8-bit
weights (WEIGHT_MAX) then fix the input unit. Later layers take their finest weights too
(u = w * m') unless u would fall below ACT_UNIT_MIN * scale (24-bit state up to twice the
scale): then w grows, coarser weights. Each layer's message drops 6 bits that its weights
must win back (integer weights = 64 * w * scale' / scale in units of the activation scales), so
layers with small weights relative to the scales get few weight bits; the file records each
layer's weight step (snnc_weight_step) and the export notes the layers below 6 bits.

What differs from snnc's sigma-delta simulation (backends/numpy/sigma_delta.py): messages
drop the low 6 bits of each delta (a reconstruction error below one message unit), vth and
biases are rounded to their steps, and netx biases are on from the first step while a layer's
input arrives one step later per layer (transient messages; a static sample still settles to
the same network). The output is final after `snnc_settle_steps` steps (synapse layers + 1).
fixed_point.py runs the file as lava-dl builds it, bit-exact (runtime/netx_run.py); measured
against the float simulation: relative output error 0.030 on the digits CNN's 540 test images
(same class on every one), 0.037 on a 32x32 VGG-like net. States: messages carry 14 bits per
activation scale, so the output Sigma of those nets reaches 26 to 29 bits and the last hidden
layer 24: inside the int32 of Lava's CPU models, beyond Loihi 2's 24-bit state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from snnc.compiler.contracts import SYNAPSES, facts
from snnc.compiler.errors import ModelError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.linear_maps import as_chw
from snnc.compiler.loihi.populations import Population, populations
from snnc.compiler.loihi.synapses import matrix
from snnc.compiler.passes.manager import LOWER_SYNAPSES, run_pipeline

from . import export
from .export import Layer, NetxNetwork

ACT_UNIT = 2.0 ** -20  # the first layer's state unit relative to its activation scale
ACT_UNIT_MIN = 2.0 ** -22  # the finest one: 24-bit state up to twice the scale
STATE_EXP = 6  # netx's SigmaDelta state_exp: messages drop these low bits of delta
SPIKE_EXP = 6  # hdf5.Network(spike_exp=6), the reader's default: vth and bias << 12
WEIGHT_MAX = 254  # netx clips mixed-sign dense weights to [-256, 254]
STATE_MAX = 2**23 - 1  # Loihi 2's 24-bit signed state and messages (Lava's Conv clamps a_out)
BIAS_MAX = 2**15 - 1  # Lava's fixed-point SigmaDelta bias: 16 bits


def is_sigma_delta(graph: Graph) -> bool:
    return graph.meta.get("neuron") == "sigma-delta"


def lowered(graph: Graph) -> Graph:
    if SYNAPSES in facts(graph):
        return graph
    export._check_chain(graph)
    return run_pipeline(graph, (LOWER_SYNAPSES,))


def _weights(lowered_graph: Graph, pop: Population) -> np.ndarray:
    """The float weights of the population's one synapse: a conv kernel, or (n_out, n_in)."""
    if len(pop.synapses) != 1:
        raise ModelError.at(pop.node, "reads several layers; netx layers form a chain")
    syn = pop.synapses[0]
    if syn.kind == "conv":
        return np.asarray(syn.node.params["weight"], np.float64)
    in_shape = tuple(lowered_graph.node(syn.node.inputs[0]).shape)
    if syn.kind == "sparse" and pop.size * math.prod(in_shape) > export.DENSE_LIMIT:
        raise ModelError.at(pop.node, f"reads '{syn.source}' through synapses that are "
                            "neither a convolution nor a dense layer (a crop, channel "
                            "shuffle, transpose or mostly-zero matrix, held as a sparse "
                            "matrix); netx holds conv and dense layers only. Export this "
                            "model with --target loihi or --target nir instead.")
    return matrix(syn.node, in_shape, "weight").toarray()


def _integers(pop: Population, values: np.ndarray, unit: float, limit: int, what: str
              ) -> np.ndarray:
    ints = np.rint(values / unit)
    if np.abs(ints).max(initial=0) > limit:
        raise ModelError.at(pop.node, f"needs {what} of {int(np.abs(ints).max())} units in "
                            f"the netx file, beyond its {limit}: the layer's activation "
                            "scale is tiny against its bias or threshold. Export this model "
                            "with --target loihi instead.")
    return ints.astype(np.int64)


def _layer(lowered_graph: Graph, pop: Population, prev: Layer, m_in: float | None
           ) -> tuple[list[Layer], float, float]:
    """The netx layers of a population reading messages of unit m_in (None: the input,
    whose unit this layer chooses); returns them, the input unit and the state unit u."""
    weight = _weights(lowered_graph, pop)
    finest = max(float(np.abs(weight).max(initial=0.0)), 1e-30) / WEIGHT_MAX
    if pop.readout or m_in is None:
        w = finest
    else:  # the finest weights unless the state unit would get finer than ACT_UNIT_MIN
        w = max(ACT_UNIT_MIN * float(pop.node.params["scale"]) / m_in, finest)
    if m_in is None:
        m_in = ACT_UNIT * float(pop.node.params["scale"]) / w
    u = w * m_in
    w_int = np.rint(weight / w).astype(np.int64)
    step = u * 2.0 ** (SPIKE_EXP + STATE_EXP)  # of vth and bias
    assert pop.bias is not None
    attrs: dict[str, Any] = {"snnc_layer": pop.name, "snnc_state_unit": u,
                             "snnc_weight_step": w}
    if pop.readout:
        neuron: dict[str, Any] = {"sigma_output": 1}
        bias = np.zeros(len(pop.bias))  # Lava's Sigma has no bias: the host adds it
    else:
        vth = max(1, int(np.rint(float(pop.node.params["vth"]) / step)))
        neuron = {"vThMant": vth}
        bias = _integers(pop, pop.bias, step, BIAS_MAX, "a bias")
        attrs["snnc_vth"] = vth * step
    syn = pop.synapses[0]
    prev_shape = tuple(int(d) for d in prev.data["shape"])
    if syn.kind == "conv":
        in_shape = tuple(int(d) for d in lowered_graph.node(syn.node.inputs[0]).shape)
        if len(prev_shape) != 3 or in_shape != prev_shape:
            raise ModelError.at(pop.node, f"reads '{syn.source}' through a convolution, but "
                                f"netx holds that layer as {len(prev_shape)}-d values "
                                f"{list(prev_shape)} (a dense layer's output); netx "
                                "convolutions read input or conv layers. Export this model "
                                "with --target loihi or --target nir instead.")
        data = export._conv_data(pop, syn, in_shape, bias, w_int)
        if pop.readout:
            del data["bias"]
        return [Layer("conv", data, neuron, attrs, "SDNN")], m_in, u
    data = {"shape": np.array([w_int.shape[0]]), "inFeatures": w_int.shape[1],
            "outFeatures": w_int.shape[0], "weight": w_int.astype(np.int32)}
    if not pop.readout:
        data["bias"] = bias.astype(np.int32)
    dense = Layer("dense", data, neuron, attrs, "SDNN")
    if len(prev_shape) != 3:
        return [dense], m_in, u
    return [Layer("flatten", {"shape": np.array([w_int.shape[1]])}), dense], m_in, u


def _shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    chw = as_chw(shape)
    return chw if chw is not None else tuple(int(d) for d in shape)


def to_sdnn(graph: Graph) -> NetxNetwork:
    """The netx SDNN layers of a sigma-delta network (graph converted with neuron
    "sigma-delta")."""
    low = lowered(graph)
    pops = populations(low)
    if not pops or pops[0].readout or not pops[0].synapses \
            or pops[0].synapses[0].source != low.input.name:
        raise ModelError("the network has no sigma-delta layer fed by the input; netx "
                         "needs one")
    for prev, pop in zip(pops, pops[1:], strict=False):
        if pop.pool_of is not None or not pop.synapses or pop.synapses[0].source != prev.name:
            raise ModelError.at(pop.node, "does not read the layer before it; netx layers "
                                "form a chain")
    if not pops[-1].readout:
        raise ModelError.at(pops[-1].node, "is the network output, but a netx SDNN output "
                            "is a synapse layer after the last sigma-delta layer")
    layers = [Layer("input", {"shape": np.array(_shape(low.input.shape))}, {"vThMant": 1},
                    neuron_type="SDNN")]
    m_in: float | None = None
    units = []
    for pop in pops:
        made, m_used, u = _layer(low, pop, layers[-1], m_in)
        units.append(m_used)
        layers += made
        m_in = u * 2.0**STATE_EXP
    from snnc.version import __version__

    out = pops[-1]
    assert out.bias is not None
    attrs = {"snnc_version": __version__, "snnc_neuron": "sigma-delta",
             "snnc_input_unit": units[0], "snnc_output_unit": u,
             "snnc_output_bias": np.asarray(out.bias, np.float64),
             "snnc_output_shape": np.array(_shape(out.node.shape)),
             "snnc_settle_steps": len(pops) + 1, "snnc_spike_exp": SPIKE_EXP,
             "snnc_input_flat": int(layers[1].kind != "conv"),
             "snnc_input": "hdf5.Network(net_config=PATH, skip_layers=1); send "
                           "round(x / snnc_input_unit) in (W, H, C) order at a sample's "
                           "first step, 0 after",
             "snnc_decode": "output = sigma * snnc_output_unit + snnc_output_bias"}
    notes = ["netx SDNN: run the file with hdf5.Network(net_config=PATH, skip_layers=1) and "
             "send the input as graded messages (snnc.backends.netx.input_messages); the "
             "output layer is a Sigma without bias: add snnc_output_bias on the host",
             "netx biases are on from the first step, one step per layer before the layer's "
             "input arrives: transient messages, the settled output differs from snnc's "
             "within the delta thresholds"]
    coarse = [f"{layer.attrs['snnc_layer']} ({_bits(layer.data['weight'])} bits)"
              for layer in layers if "weight" in layer.data and _bits(layer.data["weight"]) < 6]
    if coarse:
        notes.append("netx's fixed message scaling (6 bits per layer) leaves few weight bits "
                     f"for: {', '.join(coarse)}")
    return NetxNetwork(layers, attrs, notes)


def _bits(weight: np.ndarray) -> int:
    """Bits of the largest integer weight, sign included."""
    return int(np.abs(weight).max(initial=0)).bit_length() + 1


def input_messages(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The graded messages (N, *netx input shape) int32 that send samples x (N, *input)
    to the first synapse layer: round(x / snnc_input_unit), (W, H, C) order for images,
    flat (C, H, W) order when a dense layer reads them."""
    attrs = to_sdnn(graph).attrs
    return messages(x, float(attrs["snnc_input_unit"]), bool(attrs["snnc_input_flat"]))


def messages(x: np.ndarray, unit: float, flat: bool) -> np.ndarray:
    ints = np.rint(np.asarray(x, np.float64) / unit)
    if np.abs(ints).max(initial=0) > STATE_MAX:
        raise ModelError(f"the input reaches {float(np.abs(x).max()):.4g}, "
                         f"{int(np.abs(ints).max())} input units: beyond a 24-bit graded "
                         "message. The calibration data should cover the input range.")
    ints = ints.astype(np.int32)
    chw = as_chw(tuple(ints.shape[1:]))
    if chw is None or flat:
        return ints.reshape(len(ints), -1)
    return ints.reshape(len(ints), *chw).transpose(0, 3, 2, 1)
