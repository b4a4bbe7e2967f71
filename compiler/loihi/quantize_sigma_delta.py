"""quantize-weights for sigma-delta graphs (`sd` neurons): the fixed-point form that Lava's stock
SigmaDelta (lava.proc.sdn, fixed_pt) and Dense / Sparse / Conv with graded messages compute.

Every value becomes an integer count of a unit. Per sd population P:

    u_P = scale_P / ACT_LEVELS      the message unit: a message m carries m * u_P
    f_P = u_P / 2**s_P              the state unit of sigma, act, residue, bias and vth
                                    (s_P = Lava's `state_exp`: the neuron shifts each message
                                    right by s_P, floor, before sending it)

A synapse from source j (unit u_j) into P holds W * u_j / f_P as 8-bit mantissas m << e
(formats.mantissa; e >= 0, which Lava's Conv folds into its integers and Dense / Sparse apply
as a left shift: no per-step rounding). s_P is the largest state exponent at which the largest
|W * u_j / f_P| still fits a mantissa at e = 0 (so the weights use their 8 bits), capped at
STATE_EXP_MAX (Lava holds 3 bits) and by the bias, which Lava's fixed SigmaDelta keeps in 16
bits (|bias| <= BIAS_MAX state units); where even s = 0 leaves the weights above 254, e > 0.
Then

    vth  = max(round(vth / f_P), 2**s_P)   (>= one message unit: every message is nonzero)
    bias = round(b / f_P)

The input source sends x / u_in, rounded and clipped to +-q_max: u_in is chosen so that the
first layer's mantissas reach 254 at its largest state exponent, q_max so that one step's
synaptic input stays inside 24 bits. The readout (graph output, summed on the host) has one
unit f_R: its mantissas are 8-bit in a finer unit, and Lava's Dense / Sparse shift each step's
sum right (weight_exp < 0) down to f_R, sized so that one step's sum fits 24 bits: output =
f_R * sum(a) + bias (the host sums; the per-step floor costs below one f_R per step).

Range: a population's designed range, HEADROOM * scale_P in state units, must fit the 24-bit
state (checked here, ModelError naming the node otherwise); the NumPy bit-exact mode
(backends/numpy/loihi_sigma_delta.py) checks every state and message of a run against 24 bits,
since activations beyond the calibrated scale are data-dependent.

After: the synapse nodes carry q_weight (int16 mantissas, their own layout) and q_weight_exp
(as quantize_weights writes them; the readout's also q_scale = 1 / f_R, with an exponent <= 0);
each sd node q_vth (int32 ()), q_bias (int32 (n,)), q_state_exp, q_unit (u_P) and
meta['quant']; the input node q_unit and q_max.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ModelError
from ..ir.graph import Graph, Node
from .formats import STATE_MAX, mantissa, weight_bits
from .populations import Population, populations
from .stages import QUANTIZED
from .synapses import matrix, row_abs_sums

ACT_LEVELS = 1024  # message units per activation scale: 10 bits below the clip level
MIN_LEVELS = 128  # the coarsest a source's messages get to give its readers' weights room
ROUNDS = 4  # of coarsening sources
STATE_EXP_MAX = 7  # SigmaDelta's state_exp: 3 bits
WEIGHT_EXP_MAX = 7
BIAS_MAX = 2**15 - 1  # Lava's fixed SigmaDelta: bias with 16 bits of precision
READOUT_SHIFT_MAX = 8  # Loihi's weight exponents reach -8
HEADROOM = 8  # activations up to this many times the calibrated scale fit the state
FULL = 254.0  # the largest mantissa magnitude of every sign mode (mixed ones are even)


def _rel(err: np.ndarray, ref: np.ndarray) -> float:
    norm = float(np.linalg.norm(ref))
    return float(np.linalg.norm(err)) / norm if norm > 0 else 0.0


def _peak(w: np.ndarray) -> float:
    return float(np.abs(w).max(initial=0.0))


def _weight_exp(node: Node, w: np.ndarray) -> int:
    """The smallest e >= 0 with every |w| / 2**e inside the mantissa range."""
    e = max(0, math.ceil(math.log2(_peak(w) / FULL))) if _peak(w) > FULL else 0
    if e > WEIGHT_EXP_MAX:
        raise ModelError.at(node, f"the integer weights reach {_peak(w):.0f} state units per "
                            f"message unit, beyond 8-bit mantissas << {WEIGHT_EXP_MAX}: its "
                            "source's activation scale is far above this layer's; recompile "
                            "with calibration data (or --norm max)")
    return e


def _state_exp(pop: Population, ideal: list[np.ndarray], unit: float) -> tuple[int, int]:
    """The largest s at which the weights still fit 8-bit mantissas at e = 0 (at most
    STATE_EXP_MAX), within the bias's 16 bits; and how many steps the bias took off it."""
    peak = max(_peak(w) for w in ideal)
    s = 0
    while s < STATE_EXP_MAX and peak * 2 ** (s + 1) <= FULL * (1 + 1e-9):
        s += 1
    wanted = s
    bias = float(np.abs(pop.bias).max(initial=0.0)) / unit if pop.bias is not None else 0.0
    while s > 0 and round(bias * 2**s) > BIAS_MAX:
        s -= 1
    if round(bias * 2**s) > BIAS_MAX:
        raise ModelError.at(pop.node, f"its bias reaches {bias:.0f} message units, beyond the "
                            f"{BIAS_MAX} that Lava's SigmaDelta holds (16 bits): the bias is "
                            f"over {BIAS_MAX // ACT_LEVELS}x the layer's activation scale")
    return s, wanted - s


def _synapses(graph: Graph, pop: Population, units: dict[str, float], state: float,
              out: dict[str, Node], scale: float | None = None, exp: int | None = None
              ) -> dict[str, Any]:
    """Mantissas and exponents of the population's synapses (state: the unit of a mantissa
    at e = 0; `exp`: one given exponent, the readout's right shift)."""
    errs, refs, bits, exps = [], [], [], []
    for syn in pop.synapses:
        w = np.asarray(syn.node.params["weight"], np.float64)
        ideal = w * units[syn.source] / state
        e = _weight_exp(syn.node, ideal) if exp is None else exp
        m = mantissa(ideal / 2 ** max(e, 0))
        errs.append((m * 2 ** max(e, 0) * state / units[syn.source] - w).reshape(-1))
        refs.append(w.reshape(-1))
        bits.append(weight_bits(m))
        exps.append(e)
        q = syn.node.with_params(q_weight=m.astype(np.int16)).with_attrs(q_weight_exp=e)
        out[syn.node.name] = q.with_attrs(q_scale=scale) if scale is not None else q
    return {"weight_rel_err": _rel(np.concatenate(errs), np.concatenate(refs)),
            "weight_bits": max(bits), "weight_exp": max(exps)}


def _population(graph: Graph, pop: Population, units: dict[str, float],
                out: dict[str, Node], coarse: dict[str, int]) -> int:
    """Quantizes one sd population; returns the state exponent steps its bias cost."""
    node = pop.node
    scale = float(np.max(node.params["scale"]))
    if not scale > 0:
        raise ModelError.at(node, f"activation scale {scale} is not positive; a sigma-delta "
                            "layer needs its clip level from normalize-thresholds")
    unit = scale / ACT_LEVELS * coarse.get(node.name, 1)
    ideal = [np.asarray(s.node.params["weight"], np.float64) * units[s.source] / unit
             for s in pop.synapses]
    s, deficit = _state_exp(pop, ideal, unit)
    state = unit / 2**s
    if HEADROOM * scale / state > STATE_MAX:
        raise ModelError.at(node, f"{HEADROOM}x its activation scale is "
                            f"{HEADROOM * scale / state:.0f} state units, beyond the 24-bit "
                            f"state ({STATE_MAX})")
    quant = _synapses(graph, pop, units, state, out)
    assert pop.bias is not None
    bias = np.rint(np.asarray(pop.bias, np.float64) / state)
    vth_f = float(node.params["vth"])
    vth = max(round(vth_f / state), 2**s)
    if vth > STATE_MAX:
        raise ModelError.at(node, f"delta threshold {vth_f:.4g} is {vth} state units, beyond "
                            f"the 24-bit state ({STATE_MAX})")
    quant.update(state_exp=s, levels=ACT_LEVELS // coarse.get(node.name, 1),
                 vth_rel_err=abs(vth * state - vth_f) / vth_f if vth_f > 0 else 0.0,
                 bias_rel_err=_rel(bias * state - pop.bias, pop.bias))
    layer = {"weight_bits": quant["weight_bits"], "weight_exp": quant["weight_exp"]}
    out[node.name] = node.with_params(
        q_vth=np.array(vth, np.int32), q_bias=bias.astype(np.int32)).with_attrs(
        q_state_exp=s, q_unit=unit).replace(meta={**node.meta, **layer, "quant": quant})
    units[node.name] = unit
    return deficit


def _row_norms(graph: Graph, pop: Population) -> np.ndarray:
    """Per output, sqrt(sum_i (W_i * scale_i)^2) over every synapse: its value when the sources
    sit at their scales with independent signs (the triangle bound sum |W| * scale is far too
    loose for pooled readouts)."""
    total = np.zeros(pop.size)
    for syn in pop.synapses:
        m = matrix(syn.node, tuple(graph.node(syn.node.inputs[0]).shape))
        m = m.multiply(m).tocsr()
        scale = float(np.max(graph.node(syn.source).params["scale"]))
        total += np.asarray(m.sum(axis=1)).reshape(-1) * scale**2
    return np.sqrt(total)


def _readout(graph: Graph, pop: Population, units: dict[str, float],
             out: dict[str, Node]) -> None:
    """Mantissas in a fine unit (the largest weight at FULL); a negative weight exponent
    shifts each step's sum down to the sink's unit f_R, sized so that HEADROOM times the
    outputs' typical value fits 24 bits per step (Lava's Dense / Sparse floor each step's
    shifted sum: below one unit of f_R per step, which the host sums)."""
    peak = max(_peak(np.asarray(s.node.params["weight"], np.float64)) * units[s.source]
               for s in pop.synapses)
    fine = peak / FULL if peak > 0 else 1.0
    coarse = HEADROOM * float(_row_norms(graph, pop).max(initial=0.0)) / STATE_MAX
    shift = min(READOUT_SHIFT_MAX, max(0, math.ceil(math.log2(coarse / fine)))) \
        if coarse > fine else 0
    fine = max(fine, coarse / 2**READOUT_SHIFT_MAX)
    quant = _synapses(graph, pop, units, fine, out, scale=1.0 / (fine * 2**shift),
                      exp=-shift)
    out[pop.node.name] = pop.node.replace(meta={**pop.node.meta, "quant": quant,
                                                "weight_bits": quant["weight_bits"],
                                                "weight_exp": quant["weight_exp"]})


def _input_unit(graph: Graph, pops: list[Population]) -> float:
    """The input's unit: the first layers' weights reach FULL at their largest state exponent."""
    name = graph.input.name
    best = math.inf
    for pop in pops:
        for syn in pop.synapses:
            if syn.source != name:
                continue
            if pop.readout:
                raise ModelError.at(pop.node, "the output reads the network input directly")
            peak = _peak(np.asarray(syn.node.params["weight"], np.float64))
            unit = float(np.max(pop.node.params["scale"])) / ACT_LEVELS / 2**STATE_EXP_MAX
            if peak > 0:
                best = min(best, FULL * unit / peak)
    if not math.isfinite(best):
        raise ModelError("no synapse reads the network input: a sigma-delta network for "
                         "Loihi needs the input to feed a synapse layer")
    return best


def _input_max(pops: list[Population], name: str, out: dict[str, Node]) -> int:
    """The input clip: one step's synaptic input from the input stays inside 24 bits."""
    peak = 0.0
    for pop in pops:
        for syn in pop.synapses:
            if syn.source == name:
                node = out[syn.node.name]
                m = np.asarray(node.params["q_weight"], np.float64)
                peak = max(peak, float(np.max(row_abs_sums(node, m)))
                           * 2 ** int(node.attrs["q_weight_exp"]))
    return int(min(STATE_MAX, STATE_MAX // max(peak, 1.0)))


def _forward(graph: Graph, pops: list[Population], coarse: dict[str, int]
             ) -> tuple[dict[str, Node], dict[str, float], dict[str, int]]:
    """One pass in topological order: changed nodes, units, and each population's bias
    deficit (state exponent steps the 16-bit bias took from its weights)."""
    changed: dict[str, Node] = {}
    units = {graph.input.name: _input_unit(graph, pops) * coarse.get(graph.input.name, 1)}
    deficits = {}
    for pop in pops:
        if pop.pool_of is not None:
            raise ModelError.at(pop.node, "max pooling has no sigma-delta form on Loihi; the "
                                "default pipeline rewrites it into ReLU layers (lower-maxpool)")
        if pop.readout:
            _readout(graph, pop, units, changed)
        else:
            deficits[pop.name] = _population(graph, pop, units, changed, coarse)
    return changed, units, deficits


def _coarsen(graph: Graph, pops: list[Population], changed: dict[str, Node],
             deficits: dict[str, int], coarse: dict[str, int]) -> bool:
    """Coarser messages from the sources of bias-limited populations, where a source's own
    state exponent has room (its weights, bias and state stay as they are): each step of it
    gives the readers' weights one more bit. Whether anything changed."""
    more = False
    for pop in pops:
        for syn in pop.synapses if deficits.get(pop.name, 0) else ():
            src = syn.source
            room = STATE_EXP_MAX - int(changed[src].attrs["q_state_exp"]) \
                if src != graph.input.name else deficits[pop.name]
            steps = min(deficits[pop.name], room)
            factor = min(coarse.get(src, 1) * 2**steps, ACT_LEVELS // MIN_LEVELS)
            if factor > coarse.get(src, 1):
                coarse[src] = factor
                more = True
    return more


def quantize_sigma_delta(graph: Graph) -> Graph:
    pops = populations(graph)
    coarse: dict[str, int] = {}  # source -> its message unit's factor (a power of 2)
    changed, units, deficits = _forward(graph, pops, coarse)
    for _ in range(ROUNDS):
        if not _coarsen(graph, pops, changed, deficits, coarse):
            break
        changed, units, deficits = _forward(graph, pops, coarse)
    inp = graph.input.with_attrs(q_unit=units[graph.input.name],
                                 q_max=_input_max(pops, graph.input.name, changed))
    changed[inp.name] = inp
    return graph.replace([changed.get(n.name, n) for n in graph.nodes]).with_meta(
        quantized=QUANTIZED)


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The input source's integers (N, n_in) int64 for samples x: round(x / u_in), clipped
    to +-q_max (the source sends them at a sample's first step, then nothing)."""
    inp = graph.input
    if "q_unit" not in inp.attrs:
        raise ModelError("this sigma-delta graph is not quantized; compile with --target loihi")
    q = np.rint(np.asarray(x, np.float64).reshape(len(x), -1) / float(inp.attrs["q_unit"]))
    limit = int(inp.attrs["q_max"])
    return np.clip(q, -limit, limit).astype(np.int64)
