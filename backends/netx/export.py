"""Export a converted network as lava-dl netx HDF5 (`.net`), the file that
`lava.lib.dl.netx.hdf5.Network(net_config=PATH)` turns into Lava processes.

netx holds a chain of layers with stock CUBA neurons (Lava's LIF), one per population of the
loihi pipeline's lowered graph (compiler/loihi/populations.py), written from its synapse node:

    /layer/0     input    the first spiking layer. netx drives it through its bias only, so
                          the host computes the direct-encoded input current: `input_bias`
    /layer/k     conv     from a conv synapse: its kernel, strides, pads, dilations and groups
                          as they are (lower-synapses already composed any average pooling
                          before a conv into one strided window: compiler/loihi/linear_maps.py)
                 dense    from a dense synapse, after a `flatten` when it reads an image layer
                          (netx flattens in C,H,W order, as snnc does)
    /layer/last  dense    the readout (or conv): a neuron that never fires, with v = this
                          step's current; output = sum over steps of v / (64 * readout_scale * T)

Refused, naming the layer: sparse synapses above DENSE_LIMIT entries (smaller ones, e.g. a
pruned fully connected layer, are written as dense layers), a conv whose
padding differs between the two sides of an axis, a conv with a bias that varies within a
channel, a conv reading a dense layer, and anything that is not a chain.

The integers are the loihi pipeline's (lower-synapses, quantize-weights): 8-bit weight
mantissas, thresholds and biases in weight units. A layer's weight exponent e moves into its
threshold and bias (vThMant = vth / 2**e) because netx picks weight exponents itself and
clips mixed-sign weights to [-256, 254]. Neurons: iDecay 4096 (du = 4095: the current holds
only this step's input) and vDecay 0 (no leak), i.e. integrate-and-fire.

What netx cannot say comes back as notes (the CLI prints them):
* netx's neurons reset to zero; snnc's IF subtracts theta;
* no initial potential: the v0 = theta/2 start (--shift v0) is dropped;
* biases are on from the first step, while snnc switches each on when the layer's input
  arrives (every layer delays by one step).
snnc's own values ride along as HDF5 attributes named snnc_* (netx reads datasets only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnc.compiler.contracts import CONVERTED, QUANTIZED_WEIGHTS, facts
from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.formats import BIAS_MANT_MAX, VTH_MAX
from snnc.compiler.loihi.linear_maps import as_chw
from snnc.compiler.loihi.populations import Population, Synapse, input_currents, populations
from snnc.compiler.loihi.synapses import matrix
from snnc.compiler.passes.manager import run_pipeline, writer_passes

DENSE_LIMIT = 1 << 24  # a sparse synapse up to this many entries is written as a dense layer
I_DECAY_NONE = 4096  # du = iDecay - 1 = 4095: no current memory
V_DECAY_NONE = 0  # no voltage leak: integrate-and-fire
V_DECAY_ALL = 4096  # v forgets its past: the readout's v is this step's current
RESET_NOTE = ("netx neurons reset to zero after a spike, snnc's IF neurons subtract theta: "
              "the file holds the network's weights and thresholds faithfully, but Lava runs "
              "it with reset-to-zero dynamics, which lose the residue above threshold and "
              "cost accuracy: compile with --neuron lif --shift none for a network tuned to "
              "them (README: netx)")


@dataclass
class Layer:
    kind: str  # input | conv | flatten | dense
    data: dict[str, Any]
    neuron: dict[str, int] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    neuron_type: str = "CUBA"  # netx's neuron model: CUBA (Lava's LIF) or SDNN (sigma-delta)


@dataclass
class NetxNetwork:
    layers: list[Layer]
    attrs: dict[str, Any]
    notes: list[str]


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise UsageError("--target netx needs the 'h5py' package: pip install h5py "
                         "(or pip install 'snnc[netx]'; `make install` installs it)") from None
    return h5py


def _sources(graph: Graph, name: str) -> set[str]:
    """The spiking layers (or the input) whose values reach `name` through linear ops."""
    found: set[str] = set()
    stack = [name]
    while stack:
        node = graph.node(stack.pop())
        if node.op in ("if", "sd", "input", "maxpool"):
            found.add(node.name)
        else:
            stack.extend(node.inputs)
    return found


def _check_chain(graph: Graph) -> None:
    """netx layers form a chain with no pooling: list every layer that breaks that."""
    bad = []
    for node in graph.nodes[1:]:
        if node.op == "if" and (node.attrs.get("signed") or node.attrs.get("levels")):
            bad.append(f"{node.origin}: a signed or multi-level spiking neuron (netx's CUBA "
                       "neurons emit one binary spike; compile with --neuron if or lif)")
        elif node.op in ("maxpool", "global_maxpool"):
            bad.append(f"{node.origin}: max pooling (netx has no pooling layer; average "
                       "pooling would be folded into the next layer's weights; with "
                       "--neuron sigma-delta the lower-maxpool pass rewrites max pooling "
                       "into ReLU layers that netx holds)")
        elif len(node.inputs) > 1 and len(set().union(*(_sources(graph, i)
                                                         for i in node.inputs))) > 1:
            bad.append(f"{node.origin}: joins the outputs of several layers (a residual "
                       "connection or concatenation); netx layers form a single chain")
    if bad:
        listed = "\n".join(f"  - {b}" for b in bad)
        raise ModelError(f"{len(bad)} layer(s) cannot be held in a netx file:\n{listed}\n"
                         "netx holds input, conv, flatten and dense layers in a chain. Export "
                         "this model with --target nir or --target loihi instead.")


def _lowered(graph: Graph) -> Graph:
    if CONVERTED not in facts(graph):
        raise UsageError("only a converted (spiking) network can be exported to netx")
    if QUANTIZED_WEIGHTS in facts(graph):
        return graph
    _check_chain(graph)
    return run_pipeline(graph, writer_passes("netx"))


def _vth(pop: Population, scaled: np.ndarray) -> int:
    vth = np.unique(np.rint(scaled))
    if len(vth) != 1:
        raise ModelError.at(pop.node, "has one threshold per channel, but a netx layer has "
                            "one threshold (Lava's LIF vth is a scalar): compile without "
                            "--per-channel")
    return int(vth[0])


def _neuron(vth: int, v_decay: int = V_DECAY_NONE) -> dict[str, int]:
    return {"iDecay": I_DECAY_NONE, "vDecay": v_decay, "vThMant": vth, "refDelay": 1}


def _layer_shape(pop: Population) -> tuple[int, ...]:
    """The shape of a population's netx layer: (C, H, W) for a map, a 1-d map (C, L) as
    (C, 1, L) (the view lower-synapses gives its conv synapses), flat values as they are."""
    chw = as_chw(tuple(pop.node.shape))
    return chw if chw is not None else tuple(int(d) for d in pop.node.shape)


def _input_layer(pop: Population) -> Layer:
    p = pop.node.params
    return Layer("input", {"shape": np.array(_layer_shape(pop))},
                 _neuron(_vth(pop, p["q_vth"])),
                 {"snnc_layer": pop.name, "snnc_input_scale": float(pop.node.attrs[
                     "q_input_scale"]), "snnc_v_init": p["q_v0"] / 64.0})


def _conv_data(pop: Population, syn: Synapse, in_shape: tuple[int, ...], bias: np.ndarray,
               weight: np.ndarray) -> dict[str, Any]:
    """The datasets of a netx conv layer, straight from a conv synapse node: its kernel
    (C_out, C_in / groups, kH, kW, torch's cross-correlation, which netx flips for Lava's Conv),
    strides, begin pads, dilations and groups, all (y, x) as netx reads them."""
    node, a = syn.node, syn.node.attrs
    kernel = tuple(int(k) for k in weight.shape[2:])
    out = tuple(int(d) for d in node.shape)
    stride = [int(s) for s in a["strides"]]
    dilation = [int(d) for d in a["dilations"]]
    pads = [int(p) for p in a["pads"]]
    # netx (Lava's Conv) pads both sides alike: the end pads must change nothing, i.e. the
    # begin pads on both sides give the same output size (extra end zeros are never read)
    for axis in range(2):
        span = dilation[axis] * (kernel[axis] - 1) + 1
        size = (in_shape[1 + axis] + 2 * pads[axis] - span) // stride[axis] + 1
        if size != out[1 + axis]:
            raise ModelError.at(pop.node, f"reads '{syn.source}' through a convolution with "
                                f"asymmetric padding {pads} (top, left, bottom, right); a "
                                "netx conv layer pads both sides alike. Export this model "
                                "with --target loihi or --target nir instead.")
    per_channel = bias.reshape(out[0], -1)
    if np.ptp(per_channel, axis=1).any():
        raise ModelError.at(pop.node, "has a bias current that differs within a channel "
                            "(zero padding after a bias), but a netx conv layer has one bias "
                            "per channel. Export this model with --target loihi or --target "
                            "nir instead.")
    return {"shape": np.array(out), "inChannels": in_shape[0], "outChannels": out[0],
            "kernelSize": np.array(kernel), "stride": np.array(stride),
            "padding": np.array(pads[:2]), "dilation": np.array(dilation),
            "groups": int(a["groups"]), "weight": weight.astype(np.int32),
            "bias": per_channel[:, 0].astype(np.int32)}


def _synapse_layers(lowered: Graph, pop: Population, prev: Layer) -> list[Layer]:
    """The netx layers of a population fed by the layer `prev` (flatten + dense, or conv)."""
    if len(pop.synapses) != 1:
        raise ModelError.at(pop.node, "reads several layers; netx layers form a chain")
    syn = pop.synapses[0]
    n_in = int(np.prod(lowered.node(syn.node.inputs[0]).shape))
    if syn.kind == "sparse" and pop.size * n_in > DENSE_LIMIT:
        raise ModelError.at(pop.node, f"reads '{syn.source}' through synapses that are "
                            "neither a convolution nor a dense layer (a crop, channel "
                            "shuffle, transpose or mostly-zero matrix, held as a sparse "
                            "matrix); netx holds conv and dense layers only. Export this "
                            "model with --target loihi or --target nir instead.")
    exp = int(syn.node.attrs["q_weight_exp"])
    if pop.readout:  # float bias and scale S: bias in weight units = round(S * b)
        assert pop.bias is not None
        scale = float(syn.node.attrs["q_scale"])
        bias = np.rint(scale * pop.bias)
        neuron, attrs = _neuron(VTH_MAX, V_DECAY_ALL), {"snnc_readout_scale": scale}
    else:  # move the weight exponent into threshold and bias (netx rescales weights)
        p, a = pop.node.params, pop.node.attrs
        bias = np.rint(p["q_bias_mant"] * 2.0 ** (int(a["q_bias_exp"]) - 6 - exp))
        neuron = _neuron(_vth(pop, p["q_vth"] / 2.0**exp))
        attrs = {"snnc_v_init": p["q_v0"] / 64.0 / 2**exp}
    attrs["snnc_layer"] = pop.name
    prev_shape = tuple(int(d) for d in prev.data["shape"])
    if syn.kind == "conv":
        in_shape = tuple(int(d) for d in lowered.node(syn.node.inputs[0]).shape)
        if len(prev_shape) != 3 or in_shape != prev_shape:
            raise ModelError.at(pop.node, f"reads '{syn.source}' through a convolution, but "
                                f"netx holds that layer as {len(prev_shape)}-d values "
                                f"{list(prev_shape)} (a dense layer's output); netx "
                                "convolutions read input or conv layers. Export this model "
                                "with --target loihi or --target nir instead.")
        weight = np.asarray(syn.node.params["q_weight"], np.int64)
        return [Layer("conv", _conv_data(pop, syn, in_shape, bias, weight), neuron, attrs)]
    weight = np.asarray(syn.node.params["q_weight"], np.int64)  # (n_out, n_in)
    if syn.kind == "sparse":  # a mostly-zero matrix small enough to write out in full
        weight = matrix(syn.node, lowered.node(syn.node.inputs[0]).shape, "q_weight") \
            .toarray().astype(np.int64)
    assert weight.shape[1] == int(np.prod(prev_shape)), (weight.shape, prev_shape)
    dense = Layer("dense", {"shape": np.array([weight.shape[0]]),
                            "inFeatures": weight.shape[1], "outFeatures": weight.shape[0],
                            "weight": weight.astype(np.int32),
                            "bias": bias.astype(np.int32)}, neuron, attrs)
    if len(prev_shape) != 3:
        return [dense]
    # netx flattens an image layer in (C, H, W) order, as snnc's flatten does
    return [Layer("flatten", {"shape": np.array([weight.shape[1]])}), dense]


def _notes(graph: Graph, layers: list[Layer]) -> list[str]:
    resets = {n.attrs.get("reset", "subtract") for n in graph.nodes if n.op == "if"}
    notes = [RESET_NOTE] if resets != {"zero"} else []
    if any(np.any(layer.attrs.get("snnc_v_init", 0)) for layer in layers):
        notes.append("netx has no initial membrane potential: the start potentials "
                     "(--shift v0, or calibrated ones) are dropped and every neuron starts at "
                     "0; --shift none or input avoids them")
    if any(np.any(layer.data.get("bias", 0)) for layer in layers):
        notes.append("netx biases are on from the first step; snnc switches each layer's "
                     "on when its input arrives (one step later per layer)")
    if any(np.abs(layer.data.get("bias", 0)).max(initial=0) > BIAS_MANT_MAX
           for layer in layers):
        notes.append(f"some biases exceed Loihi's 13-bit bias mantissa (+-{BIAS_MANT_MAX}); "
                     "Lava's simulation accepts them, the chip would not")
    notes.append("layer 0 is driven by its bias: per sample, set its bias_mant (exponent 6) "
                 "to snnc.backends.netx.input_bias(graph, x)")
    return notes


def to_netx(graph: Graph) -> NetxNetwork:
    """The netx layers of a converted network (an SNN graph, or one compiled for loihi)."""
    lowered = _lowered(graph)
    pops = populations(lowered)
    for prev, pop in zip(pops, pops[1:], strict=False):
        if pop.pool_of is not None or not pop.synapses or pop.synapses[0].source != prev.name:
            raise ModelError.at(pop.node, "does not read the layer before it; netx layers "
                                "form a chain with no pooling")
    if pops[0].readout or pops[0].synapses:
        raise ModelError("the network has no spiking layer fed by the input; netx needs one")
    layers = [_input_layer(pops[0])]
    for pop in pops[1:]:
        layers += _synapse_layers(lowered, pop, layers[-1])
    from snnc.version import __version__

    resets = sorted({n.attrs.get("reset", "subtract") for n in graph.nodes if n.op == "if"})
    decode = ("output = sum over steps of the last layer's v / (64 * snnc_readout_scale * T)"
              if pops[-1].readout else "output = spike counts of the last layer")
    attrs = {"snnc_version": __version__, "snnc_reset": ",".join(resets),
             "snnc_decode": decode, "snnc_shift": str(graph.meta.get("shift", "")),
             "snnc_input": "layer 0 bias_mant = snnc.backends.netx.input_bias(graph, x)"}
    return NetxNetwork(layers, attrs, _notes(graph, layers))


def input_bias(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Per sample, the bias mantissas (exponent 6) that feed the input to layer 0, in Lava's
    (W, H, C) order for image layers: (N, W, H, C) or (N, F)."""
    lowered = _lowered(graph)
    first = populations(lowered)[0]
    bias = input_currents(lowered, x, fixed=True)[first.name]
    bias = bias.reshape(len(bias), *_layer_shape(first))
    return bias.transpose(0, 3, 2, 1) if bias.ndim == 4 else bias


def _write(f: Any, net: NetxNetwork) -> None:
    root = f.create_group("layer")
    for i, layer in enumerate(net.layers):
        group = root.create_group(str(i))
        group.create_dataset("type", (1,), "S10", [layer.kind.encode()])  # as slayer writes
        for key, value in layer.data.items():
            group.create_dataset(key, data=value)
        if layer.neuron is not None:
            neuron = group.create_group("neuron")
            neuron.create_dataset("type", (1,), "S10", [layer.neuron_type.encode()])
            for key, value in layer.neuron.items():
                neuron.create_dataset(key, data=value)
        group.attrs.update(layer.attrs)
    f.attrs.update(net.attrs)
