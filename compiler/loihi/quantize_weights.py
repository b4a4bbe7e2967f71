"""quantize-weights: Loihi 2 integer formats (compiler/loihi/formats.py) for every population of
a lowered graph, on the synapses as they are: a conv's kernel, a dense matrix, a sparse
matrix's non-zero values.

A Loihi message carries 1 (a binary spike) or an integer payload n (a graded spike: a count,
signed for signed neurons), but our IF neurons emit n * theta, so each source's
theta is first folded into the weights that read it (weight normalisation): W' = W * theta_src
(per input channel of a kernel; lower-synapses made every kernel's thetas per channel).
Then each population P gets one scale S = alpha * 2**e (integer units per float unit):

    weights   w = m << e,  m = mantissa(alpha * W') (8 bits, see formats.mantissa)
    threshold vth = round(S * theta), 17 bits (Loihi compares v against vth << 6)
    bias      bias_mant << bias_exp = round(64 * S * b), a 13-bit mantissa and 3-bit exponent
    v0        round(64 * S * v0) in the 24-bit membrane units

alpha comes from the clip level (max or a high percentile of |W'|) that minimises the squared
weight error. One step's synaptic input, 64 * sum_j |m_ij| * K_j << e over a neuron's synapses
(K_j = 2^B - 1: the most counts one graded message of source j carries, 1 for binary and
signed binary spikes; the payload n_j in [-K_j, K_j] multiplies the weight), must
fit the 24-bit state: where even e = 0 would not, alpha shrinks until it provably does (fewer
mantissa bits used, reported as `input_fit` < 1); e is then the largest exponent that keeps
vth, v plus one step's input and bias, and the bias mantissa in range.
Populations fed by the network input take it as a bias current: S = 2048 / max(theta), bias
exponent 6 (the current in weight units), mantissa clipped to +-4095 (two thresholds); graded
ones S = 4096 / ((K + 1) max(theta)), so that the mantissa holds their largest count K.
The readout (graph output) keeps its float bias (added by the host) and scale S = alpha; its
input is summed on the host, so only each step's message (not << 6) must fit 24 bits.
Reset-to-zero populations (Lava's stock LIF) need one threshold: their weights, bias and v0
are first multiplied per neuron by max(theta) / theta (`threshold_gain`), and v0 is rounded to
whole weight units (v0 = 64 * round(S * v0)), since it enters as input current at the restart.
Each population records its relative errors, weight bits and exponent in `meta['quant']`.

Before:  %relu2_syn0 = conv[3x3](%relu1);  %relu2 = if[theta=4.674, v0=2.337](%relu2_bias)
After:   same nodes, plus q_weight (int16 mantissas, the kernel's shape) / q_weight_exp on
         the synapse node and q_vth, q_v0, q_bias_mant, q_bias_exp, q_scale on the IF node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..contracts import QUANTIZED_WEIGHTS, SYNAPSES, contract
from ..errors import ModelError, ResourceError
from ..ir.graph import Graph, Node
from ..ops.neuron import max_count
from .formats import (
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    INPUT_MAX,
    INPUT_VTH,
    VTH_MAX,
    WEIGHT_EXP_MAX,
    bias_format,
    extra_bias,
    mantissa,
    threshold_gain,
    weight_bits,
)
from .populations import Population, Synapse, payload, populations, spike_theta
from .stages import QUANTIZED
from .synapses import row_abs_sums

NAME = "quantize-weights"
CONTRACT = contract(requires={SYNAPSES}, produces={QUANTIZED_WEIGHTS})
CLIP_PERCENTILES = (100.0, 99.99, 99.9, 99.5, 99.0)
FIT_STEPS = 64  # shrinking alpha by at most this many 2% steps before giving up


def _full(a: Any, shape: tuple[int, ...]) -> np.ndarray:
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


def _fold(graph: Graph, pop: Population, syn: Synapse) -> np.ndarray:
    """The synapse's weights (in their own layout) times the source's spike amplitude and the
    target's threshold gain."""
    node = syn.node
    w = np.asarray(node.params["weight"], np.float64)
    src = graph.node(syn.source)
    theta = _full(spike_theta(graph, syn.source), src.shape)
    gain = threshold_gain(pop.node)
    if node.op == "linear":
        return w * theta[None, :] * gain[:, None]
    if node.op == "sparse":
        rows = np.repeat(np.arange(len(node.params["indptr"]) - 1),
                         np.diff(node.params["indptr"]))
        return w * theta[node.params["indices"]] * gain[rows]
    # conv: thetas per input channel, gains per output channel (lower-synapses checked)
    co, cig = w.shape[:2]
    groups = int(node.attrs["groups"])
    theta_c = theta.reshape(src.shape[0], -1)[:, 0]
    chan = (np.arange(co)[:, None] // (co // groups)) * cig + np.arange(cig)[None, :]
    gain_c = gain.reshape(co, -1)[:, 0]
    return w * (theta_c[chan] * gain_c[:, None])[:, :, None, None]


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
    mant, bexp = bias_format(64 * scale * bias)
    params = {"q_vth": vth.astype(np.int32).reshape(n),
              "q_v0": q_v0.astype(np.int32).reshape(n),
              "q_bias_mant": mant.reshape(n)}
    errors = {"theta_rel_err": _rel(vth / scale - theta, theta),
              "bias_rel_err": _rel((mant.astype(np.float64) * 2**bexp) / (64 * scale) - bias,
                                   bias)}
    return params, {"q_bias_exp": bexp, "q_scale": scale}, errors


def _input_fed(pop: Population, out: dict[str, Node]) -> None:
    node = pop.node
    if pop.readout:
        raise ModelError.at(node, "the output reads the network input directly")
    # the 13-bit current holds (K + 1) steps theta: two thresholds for binary neurons, a
    # graded neuron's largest count K and one more (K = 1: the binary scale, unchanged)
    k = max_count(node)
    scale = INPUT_VTH / float(np.max(node.params["theta"])) * (2 / (k + 1))
    params, attrs, errors = _neuron_params(node, scale, extra_bias(node) * threshold_gain(node))
    out[node.name] = node.with_params(**params).with_attrs(
        **attrs, q_input_scale=scale).replace(meta={**node.meta, "quant": errors})


def _peak_input(pop: Population, mants: list[np.ndarray], levels: list[int]) -> float:
    """The largest synaptic input (before the exponent) one step can bring a neuron, each
    synapse's |m| times the most counts its source's message carries (`levels`): << 6
    into a neuron's 24-bit state; the readout sums the synapses' messages on the host."""
    total = sum(row_abs_sums(s.node, m) * k
                for s, m, k in zip(pop.synapses, mants, levels, strict=True))
    return float(np.max(total)) * (1 if pop.readout else 64)


def _fit(folded: list[np.ndarray], alpha: float, pop: Population, levels: list[int]
         ) -> tuple[float, list[np.ndarray], float]:
    """alpha, mantissas and peak input with the peak inside the 24-bit state at e = 0."""
    mants = [mantissa(alpha * w) for w in folded]
    peak = _peak_input(pop, mants, levels)
    start = alpha
    for _ in range(FIT_STEPS):
        if peak <= INPUT_MAX:
            return alpha, mants, peak
        alpha *= min(0.98, INPUT_MAX / peak)
        mants = [mantissa(alpha * w) for w in folded]
        peak = _peak_input(pop, mants, levels)
    raise ResourceError(f"{pop.node.origin}: one step's synaptic input can reach {peak:.0f} "
                        f"even with weights scaled to {alpha / start:.3g} of their best "
                        f"range, beyond the 24-bit membrane state ({INPUT_MAX})")


def _exponent(pop: Population, alpha: float, peak_in: float, bias: np.ndarray) -> int:
    theta_max = float(np.max(pop.node.params["theta"]))
    bias_max = float(np.abs(bias).max(initial=0.0))
    # v must hold theta (from v0 and residue) + theta + a step's input + bias unsaturated,
    # and the bias must fit its 13-bit mantissa at the largest bias exponent
    peak_v = 64 * alpha * (2 * theta_max + bias_max) + peak_in
    exp = 0
    while (exp < WEIGHT_EXP_MAX and round(alpha * 2 ** (exp + 1) * theta_max) <= VTH_MAX
           and peak_v * 2 ** (exp + 1) <= INPUT_MAX
           and 64 * alpha * 2 ** (exp + 1) * bias_max <= BIAS_MANT_MAX * 2**BIAS_EXP_MAX):
        exp += 1
    return exp


def _quantize(graph: Graph, pop: Population, out: dict[str, Node]) -> None:
    node = pop.node
    if pop.pool_of is not None:
        return  # max pooling has no parameters: it passes its source's payload on
    if not pop.synapses:
        _input_fed(pop, out)
        return
    folded = [_fold(graph, pop, syn) for syn in pop.synapses]
    best, pct = _best_alpha(folded)
    levels = [payload(graph, syn.source)[0] for syn in pop.synapses]  # 1: binary spikes
    alpha, mants, peak_in = _fit(folded, best, pop, levels)
    assert pop.bias is not None
    bias = (pop.bias + (0 if pop.readout else extra_bias(node))) * threshold_gain(node)
    exp = 0 if pop.readout else _exponent(pop, alpha, peak_in, bias)
    w_err = [m / alpha - w for m, w in zip(mants, folded, strict=True)]
    quant: dict[str, Any] = {
        "weight_rel_err": _rel(np.concatenate([e.reshape(-1) for e in w_err]),
                               np.concatenate([w.reshape(-1) for w in folded])),
        "clip_percentile": pct, "weight_exp": exp,
        "weight_bits": max(weight_bits(m) for m in mants),
        "input_fit": round(alpha / best, 6)}
    scale = alpha * 2**exp
    for syn, m in zip(pop.synapses, mants, strict=True):
        q = syn.node.with_params(q_weight=m.astype(np.int16)).with_attrs(q_weight_exp=exp)
        out[syn.node.name] = q.with_attrs(q_scale=scale) if pop.readout else q
    layer = {"weight_bits": quant["weight_bits"], "weight_exp": exp}  # inspect --layers
    if pop.readout:
        out[node.name] = node.replace(meta={**node.meta, **layer, "quant": quant})
        return
    params, attrs, errors = _neuron_params(node, scale, bias)
    out[node.name] = node.with_params(**params).with_attrs(**attrs).replace(
        meta={**node.meta, **layer, "quant": {**quant, **errors}})


def quantize_weights(graph: Graph) -> Graph:
    if graph.meta.get("neuron") == "sigma-delta":  # integer activations, graded messages
        from .quantize_sigma_delta import quantize_sigma_delta

        return quantize_sigma_delta(graph)
    changed: dict[str, Node] = {}
    for pop in populations(graph):
        _quantize(graph, pop, changed)
    return graph.replace([changed.get(n.name, n) for n in graph.nodes]).with_meta(
        quantized=QUANTIZED)


def quant_report(graph: Graph) -> list[tuple[str, dict[str, Any]]]:
    """(node name, meta['quant']) for every quantized population, in order."""
    return [(n.name, dict(n.meta["quant"])) for n in graph.nodes if "quant" in n.meta]
