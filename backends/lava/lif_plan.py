"""The plan (plain data, no Lava import) of a stock-LIF graph (`--neuron lif`: every population
resets to zero, no spiking max pool) as stock Lava processes only, so that the host runs no
process but the io RingBuffers at the boundary (as lava-dl's PilotNet demo does):

    input_source  lava.proc.io.source.RingBuffer, graded messages every step: the channels
                  [direct-encoded input current of each input-fed population | V(0) pulses]
    <pop>_src     Sparse (weights 1, num_message_bits 24) from the source into population
                  <pop>: identity on its input channels, and each neuron's V(0) pulse channel
    synapses      Conv / Dense / Sparse (Delay*) between populations, as plan.py builds them
    <pop>         LIFReset (du=4095, dv=0): reset to zero; it zeroes u and v once per sample
    output_sink   lava.proc.io.sink.RingBuffer on the readout synapses' a_out: the host sums
                  each sample's T steps (Plan.decode "rate": acc / (S * T) + bias)

The maths is the one the old LifIO process drove, integer for integer, so the NumPy bit-exact
mode (backends/numpy/loihi.py) and the quantizer are unchanged:

* Input. The direct-encoded input is what it was: the static cone before the first spiking
  layer (its conv, folded batch norm) is evaluated once per sample by the host, as the input
  encoding, and quantize-weights turns it into the 13-bit current mantissa (weight units,
  compiler/loihi/formats.input_current). The source sends that mantissa as a graded message
  every step (rate coding: a constant input current); the identity Sparse delivers exactly it
  on the LIF's a_in, where LifIO used to add it.
* V(0). LIFReset zeroes v at the sample's start and has no initial-value hook, so V(0) arrives
  as one step of input current, v0 >> 6 weight units (quantize-weights already rounds v0 to
  whole weight units for reset-to-zero neurons): one source channel per distinct nonzero v0
  value of a population sends that value, once per sample, at the step before the
  population's depth, and the population's source Sparse has weight 1 from it. Exact for any
  per-neuron v0 (the value rides in the 24-bit payload, not in an 8-bit weight), and few
  channels (one per population when the thresholds are per layer or folded by
  threshold_gain).
* Readout. The output population has no neurons: its synapses run on the chip and the sink
  records their a_out; the host sums them, as the Readout process did.

The clock: every synapse delays by one step, and the source reaches the input-fed
populations through one, so a run starts with one priming step (the source sends sample 0's
first column) and sample s's local step L (1 .. steps = T + lag) is Lava step
s * steps + L + 1. Source column c reaches the populations at sample c // steps, local step
c % steps + 1. Each LIFReset resets at local step `depth` (reset_offset = depth + 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.populations import Population

from .plan import Plan, ProcSpec, _neuron, _synapse

SOURCE = "input_source"
SINK = "output_sink"
MESSAGE_BITS = 24  # graded messages: Loihi 2's largest payload


def stock_lif(pops: list[Population]) -> bool:
    """Whether every population is a stock LIF (or the readout): the plan of this module."""
    cells = [p for p in pops if not p.readout]
    return bool(cells) and all(p.pool_of is None and p.reset_zero for p in cells)


def _pulses(values: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct nonzero values, each neuron's channel index from `first`, -1 for none)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    keep = distinct != 0
    index = np.full(len(distinct), -1)
    index[keep] = first + np.arange(int(keep.sum()))
    return distinct[keep], index[inverse]


def build_lif_plan(graph: Graph, pops: list[Population], mode: str, conv: str) -> Plan:
    procs: list[ProcSpec] = []
    conns: list[tuple[str, str]] = []
    inputs: dict[str, int] = {}  # input-fed population -> its first source channel
    width = 0
    for pop in pops:
        if not pop.readout and not pop.synapses:
            inputs[pop.name] = width
            width += pop.size
    pulse_depth: list[int] = []
    pulse_value: list[float] = []
    for pop in pops:
        if pop.readout:
            procs.append(ProcSpec(SINK, "sink", pop.size, {}, pop.depth))
            for syn in pop.synapses:
                spec = _synapse(graph, pop, syn, mode, conv)
                procs.append(spec)
                conns += [(syn.source, spec.name), (spec.name, SINK)]
            continue
        neuron = _neuron(graph, pop, mode)
        v0 = np.asarray(neuron.params.pop("v"))  # LIFReset starts at 0: V(0) is a pulse
        values, channel = _pulses(v0, width + len(pulse_value))
        pulse_value += values.tolist()
        pulse_depth += [pop.depth] * len(values)
        procs.append(neuron)
        rows = np.arange(pop.size)
        cols = [channel[channel >= 0]]
        at = [rows[channel >= 0]]
        if pop.name in inputs:
            cols.append(inputs[pop.name] + rows)
            at.append(rows)
        r, c = np.concatenate(at), np.concatenate(cols)
        if len(r):
            procs.append(ProcSpec(f"{pop.name}_src", "sparse", pop.size, {
                "delay": 1, "source_fed": True, "num_message_bits": MESSAGE_BITS,
                "weights": (r, c)}))
            conns += [(SOURCE, f"{pop.name}_src"), (f"{pop.name}_src", pop.name)]
        for syn in pop.synapses:
            spec = _synapse(graph, pop, syn, mode, conv)
            procs.append(spec)
            conns += [(syn.source, spec.name), (spec.name, pop.name)]
    n_src = width + len(pulse_value)
    fixed = mode == "fixed"
    for k, spec in enumerate(procs):  # the source Sparse matrices, now that n_src is known
        if spec.params.get("source_fed"):
            r, c = spec.params["weights"]
            w = sp.csr_matrix((np.ones(len(r), np.int32 if fixed else np.float64), (r, c)),
                              shape=(spec.size, n_src))
            w.sort_indices()
            extra: dict[str, Any] = {"weight_exp": 0, "sign_mode": "excitatory"} \
                if fixed else {}
            params = {k2: v for k2, v in spec.params.items() if k2 != "source_fed"}
            procs[k] = ProcSpec(spec.name, "sparse", spec.size,
                                {**params, "weights": w, **extra}, spec.depth)
    source = {"inputs": inputs, "pulse_depth": np.asarray(pulse_depth, np.int64),
              "pulse_value": np.asarray(pulse_value, np.int64 if fixed else np.float64)}
    procs.insert(0, ProcSpec(SOURCE, "source", n_src, source, 0))
    readout = pops[-1]
    assert readout.readout and readout.bias is not None
    scale = float(readout.synapses[0].node.attrs["q_scale"]) if fixed else 1.0
    return Plan(mode, tuple(procs), tuple(conns), tuple(inputs), SINK, scale,
                np.asarray(readout.bias, np.float64).reshape(readout.size), readout.depth - 1)


def is_stock(plan: Plan) -> bool:
    """A plan of this module (an input source and stock LIFs), not snnc's own processes."""
    return plan.decode == "rate" and any(p.kind == "source" for p in plan.procs)


def source_data(plan: Plan, currents: dict[str, np.ndarray], steps: int) -> np.ndarray:
    """The source's RingBuffer (n_src, N * steps): column c reaches the populations at sample
    c // steps, local step c % steps + 1 (see the module docstring)."""
    spec = plan.proc(SOURCE)
    fixed = plan.mode == "fixed"
    n = len(next(iter(currents.values())))
    data = np.zeros((spec.size, n * steps), np.int64 if fixed else np.float64)
    for name, first in spec.params["inputs"].items():
        cur = np.asarray(currents[name])
        size = plan.proc(name).size
        data[first:first + size] = np.repeat(cur.T, steps, axis=1)
    base = spec.size - len(spec.params["pulse_value"])
    for j, (depth, value) in enumerate(zip(spec.params["pulse_depth"],
                                           spec.params["pulse_value"], strict=True)):
        data[base + j, np.arange(n) * steps + int(depth) - 1] = value
    return data


def window(depth: int, steps: int, timesteps: int, sample: int) -> slice:
    """The sink / probe columns (Lava step - 1) of local steps depth .. depth + T - 1."""
    start = sample * steps + depth
    return slice(start, start + timesteps)


def lif_sizes(plan: Plan) -> int:
    """Entries per Lava step that a run keeps on the host (source data, sinks, probes)."""
    return sum(p.size for p in plan.procs if p.kind in ("source", "sink", "lif")) or 1
