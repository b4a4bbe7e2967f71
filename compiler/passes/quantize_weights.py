"""quantize-weights: Loihi 2 integer formats for every population of a lowered graph.

Loihi spikes are binary, but our IF neurons emit spikes of amplitude theta, so each source's
theta is first folded into the weights that read it (weight normalisation): W' = W * theta_src.
Then each population P gets one scale S = alpha * 2**e (integer units per float unit):

    weights   w = m << e,  m = round(alpha * W') an 8-bit mantissa per Dense: [0, 255] if all
              weights >= 0, [-255, 0] if all <= 0, else even values in [-256, 254] (Lava's Dense
              drops the lowest bit of mixed-sign weights, so we round to even ourselves)
    threshold vth = round(S * theta), 17 bits (Loihi compares v against vth << 6)
    bias      bias_mant << bias_exp = round(64 * S * b), a 13-bit mantissa and 3-bit exponent
    v0        round(64 * S * v0) in the 24-bit membrane units

alpha comes from the clip level (max or a high percentile of |W'|) that minimises the squared
weight error; e is the largest exponent that keeps vth, and v plus one step's input and bias,
within the 24-bit state.
Populations fed by the network input take it as a bias current: S = 2048 / max(theta), bias
exponent 6 (the current in weight units), mantissa clipped to +-4095 (two thresholds).
The readout (graph output) keeps its float bias (added by the host) and scale S = alpha.
Reset-to-zero populations (Lava's stock LIF) need one threshold: their weights, bias and v0
are first multiplied per neuron by max(theta) / theta (`threshold_gain`), and v0 is rounded to
whole weight units (v0 = 64 * round(S * v0)), since it enters as input current at the restart.
Each population records its relative errors in `meta['quant']`.

Before:  %relu2_syn0 = linear[1024->2048](...);  %relu2 = if[theta=4.674, v0=2.337](...)
After:   same nodes, plus q_weight (int32) / q_weight_exp on the linear node and q_vth, q_v0,
         q_bias_mant, q_bias_exp, q_scale on the IF node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError, ResourceError
from ..ir.graph import Graph, Node
from ..populations import Population, populations, spike_theta, threshold_gain

NAME = "quantize-weights"
VTH_MAX = 2**17 - 1
BIAS_MANT_MAX = 2**12 - 1
BIAS_EXP_MAX = 7
WEIGHT_EXP_MAX = 7
INPUT_MAX = 2**23 - 1  # one step's synaptic input, << 6, must fit the 24-bit state
INPUT_VTH = 2048
CLIP_PERCENTILES = (100.0, 99.99, 99.9, 99.5, 99.0)


def mantissa(w: np.ndarray) -> np.ndarray:
    """Round scaled weights to Loihi's 8-bit mantissa for the matrix's sign mode."""
    if np.all(w >= 0):
        return np.clip(np.rint(w), 0, 255)
    if np.all(w <= 0):
        return np.clip(np.rint(w), -255, 0)
    return np.clip(2 * np.rint(w / 2), -256, 254)


def _full(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, np.float64), shape).reshape(-1)


def _best_alpha(folded: list[np.ndarray]) -> tuple[float, float]:
    mags = np.concatenate([np.abs(w).reshape(-1) for w in folded])
    best = (np.inf, 1.0, 100.0)
    for pct in CLIP_PERCENTILES:
        clip = float(np.percentile(mags, pct)) if pct < 100 else float(mags.max())
        if clip <= 0:
            continue
        alpha = 254.0 / clip
        err = sum(float(((mantissa(alpha * w) / alpha - w) ** 2).sum()) for w in folded)
        if err < best[0]:
            best = (err, alpha, pct)
    if not np.isfinite(best[0]):
        return 1.0, 100.0  # all-zero weights: any scale
    return best[1], best[2]


def _rel(err: np.ndarray, ref: np.ndarray) -> float:
    norm = float(np.linalg.norm(ref))
    return float(np.linalg.norm(err)) / norm if norm > 0 else 0.0


def _bias_format(b_units: np.ndarray) -> tuple[np.ndarray, int]:
    peak = float(np.abs(b_units).max(initial=0.0))
    exp = 0
    while exp < BIAS_EXP_MAX and peak / 2**exp > BIAS_MANT_MAX:
        exp += 1
    mant = np.clip(np.rint(b_units / 2**exp), -BIAS_MANT_MAX, BIAS_MANT_MAX)
    return mant.astype(np.int32), exp


def _neuron_params(node: Node, scale: float, bias: np.ndarray) -> tuple[dict, dict, dict]:
    """`bias` already carries the threshold gain; theta and v0 get it here."""
    n = int(np.prod(node.shape))
    theta = _full(node.params["theta"], node.shape)
    if node.attrs.get("reset") == "zero":  # theta * threshold_gain, exactly one value
        theta = np.full_like(theta, theta.max())
    vth = np.rint(scale * theta)
    if vth.max() > VTH_MAX or vth.min() < 1:
        raise ResourceError(f"{node.origin}: threshold {vth.max():.0f} does not fit Loihi's "
                            f"17-bit range [1, {VTH_MAX}] at scale {scale:.4g}")
    v0 = _full(node.params["v0"], node.shape) * threshold_gain(node)
    # stock LIF: v0 enters as one step's input current (whole weight units, << 6)
    q_v0 = 64 * np.rint(scale * v0) if node.attrs.get("reset") == "zero" else \
        np.rint(64 * scale * v0)
    mant, bexp = _bias_format(64 * scale * bias)
    params = {"q_vth": vth.astype(np.int32).reshape(n),
              "q_v0": q_v0.astype(np.int32).reshape(n),
              "q_bias_mant": mant.reshape(n)}
    errors = {"theta_rel_err": _rel(vth / scale - theta, theta),
              "bias_rel_err": _rel((mant.astype(np.float64) * 2**bexp) / (64 * scale) - bias,
                                   bias)}
    return params, {"q_bias_exp": bexp, "q_scale": scale}, errors


def _extra_bias(node: Node) -> np.ndarray:
    if "i_shift" in node.params:
        return _full(node.params["i_shift"], node.shape)
    return np.zeros(int(np.prod(node.shape)))


def _quantize(graph: Graph, pop: Population, out: dict[str, Node]) -> None:
    node = pop.node
    if pop.pool_of is not None:
        return  # max pooling has no parameters: binary spikes in, binary spikes out
    if not pop.synapses:
        if pop.readout:
            raise ModelError.at(node, "the output reads the network input directly")
        scale = INPUT_VTH / float(np.max(node.params["theta"]))
        params, attrs, errors = _neuron_params(node, scale,
                                               _extra_bias(node) * threshold_gain(node))
        out[node.name] = node.with_params(**params).with_attrs(
            **attrs, q_input_scale=scale).replace(meta={**node.meta, "quant": errors})
        return
    gain = threshold_gain(node)[:, None]
    folded = []
    for syn in pop.synapses:
        src = graph.node(syn.source)
        theta = _full(spike_theta(graph, syn.source), src.shape)
        folded.append(syn.node.params["weight"].astype(np.float64) * theta[None, :] * gain)
    alpha, pct = _best_alpha(folded)
    mants = [mantissa(alpha * w) for w in folded]
    row_sum = sum(np.abs(m).sum(axis=1) for m in mants)
    peak_in = float(np.max(row_sum)) * 64
    exp = 0
    if not pop.readout:
        theta_max = float(np.max(node.params["theta"]))
        bias_max = float(np.abs((pop.synapses[0].node.params["bias"] + _extra_bias(node))
                                * gain[:, 0]).max(initial=0.0))
        # v must hold theta (from v0 and residue) + theta + a step's input + bias unsaturated,
        # and the bias must fit its 13-bit mantissa at the largest bias exponent
        peak_v = 64 * alpha * (2 * theta_max + bias_max) + peak_in
        while (exp < WEIGHT_EXP_MAX and round(alpha * 2 ** (exp + 1) * theta_max) <= VTH_MAX
               and peak_v * 2 ** (exp + 1) <= INPUT_MAX
               and 64 * alpha * 2 ** (exp + 1) * bias_max <= BIAS_MANT_MAX * 2**BIAS_EXP_MAX):
            exp += 1
    if peak_in * 2**exp > INPUT_MAX:
        raise ResourceError(f"{node.origin}: one step's synaptic input can reach "
                            f"{peak_in * 2**exp:.0f}, beyond the 24-bit membrane state")
    w_err = [m / alpha - w for m, w in zip(mants, folded, strict=True)]
    quant: dict[str, Any] = {
        "weight_rel_err": _rel(np.concatenate([e.reshape(-1) for e in w_err]),
                               np.concatenate([w.reshape(-1) for w in folded])),
        "clip_percentile": pct, "weight_exp": exp}
    for syn, m in zip(pop.synapses, mants, strict=True):
        out[syn.node.name] = syn.node.with_params(q_weight=m.astype(np.int32)).with_attrs(
            q_weight_exp=exp)
    scale = alpha * 2**exp
    if pop.readout:
        for syn in pop.synapses:
            out[syn.node.name] = out[syn.node.name].with_attrs(q_scale=scale)
        out[node.name + "\0readout"] = node.replace(meta={**node.meta, "quant": quant})
        return
    bias = (pop.synapses[0].node.params["bias"].astype(np.float64) + _extra_bias(node)) * \
        gain[:, 0]
    params, attrs, errors = _neuron_params(node, scale, bias)
    out[node.name] = node.with_params(**params).with_attrs(**attrs).replace(
        meta={**node.meta, "quant": {**quant, **errors}})


def quantize_weights(graph: Graph) -> Graph:
    changed: dict[str, Node] = {}
    for pop in populations(graph):
        _quantize(graph, pop, changed)
    readout_meta = {k.split("\0")[0]: v.meta for k, v in changed.items() if "\0" in k}
    nodes = []
    for node in graph.nodes:
        node = changed.get(node.name, node)
        if node.name in readout_meta:
            node = node.replace(meta=readout_meta[node.name])
        nodes.append(node)
    return graph.replace(nodes).with_meta(quantized="loihi2")


def quant_report(graph: Graph) -> list[tuple[str, dict[str, Any]]]:
    """(node name, meta['quant']) for every quantized population, in order."""
    return [(n.name, dict(n.meta["quant"])) for n in graph.nodes if "quant" in n.meta]


def input_current(node: Node, z: np.ndarray) -> np.ndarray:
    """The bias mantissa (exponent INPUT_BIAS_EXP) that injects the direct-encoded input current
    z (N, *shape) into an input-fed population: round(S * (z + i_shift)), clipped to 13 bits."""
    scale = float(node.attrs["q_input_scale"]) * threshold_gain(node)[None, :]
    z = np.asarray(z, np.float64).reshape(len(z), -1) + _extra_bias(node)[None, :]
    return np.clip(np.rint(scale * z), -BIAS_MANT_MAX, BIAS_MANT_MAX).astype(np.int32)


INPUT_BIAS_EXP = 6  # the input current arrives in weight units (as netx does for biases)
