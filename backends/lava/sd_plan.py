"""The plan (plain data, no Lava import) of a sigma-delta graph as stock Lava processes:

    input_source  lava.proc.io.source.RingBuffer: the sample's change per step, graded (the
                  quantized sample at step 1, nothing after: a static sample)
    synapses      Dense / Sparse / Conv (Delay* for skip connections), as plan.py builds them
                  for IF networks, with num_message_bits = 24: a_out = W @ s_in on graded
                  messages; the first layer's synapses read the input source
    sigma-delta   lava.proc.sdn.SigmaDelta (act_mode RELU, cum_error off) per population:
                  vth, bias and state_exp from compiler/loihi/quantize_sigma_delta.py
    output_sink   lava.proc.io.sink.RingBuffer on the last synapse layers' a_out: the host
                  sums it (Plan.decode "sum") and adds the output bias

So only the source and the sink run on the host (backends/lava/placement.py). Lava passes the
state exponents into vth and bias itself (vth * 2**state_exp), so the plan holds them divided
by 2**state_exp: exact binary fractions that Lava turns back into the integers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from snnc.compiler.errors import ModelError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.populations import Population, populations

from .lif_plan import build_lif_plan, stock_lif
from .plan import Plan, ProcSpec, _synapse, build_plan, check_request

SOURCE = "input_source"
SINK = "output_sink"
MESSAGE_BITS = 24  # graded messages: Loihi 2's largest payload


def _neuron(pop: Population, mode: str) -> dict[str, Any]:
    node = pop.node
    if mode == "fixed":
        s = int(node.attrs["q_state_exp"])
        return {"vth": float(node.params["q_vth"]) / 2**s,
                "bias": np.asarray(node.params["q_bias"], np.float64).reshape(-1) / 2**s,
                "state_exp": s}
    assert pop.bias is not None
    return {"vth": float(node.params["vth"]),
            "bias": np.asarray(pop.bias, np.float64).reshape(-1), "state_exp": 0}


def build_sigma_delta_plan(graph: Graph, mode: str, conv: str) -> Plan:
    pops = populations(graph)
    inp = graph.input
    source = {"unit": float(inp.attrs["q_unit"]), "max": int(inp.attrs["q_max"])} \
        if mode == "fixed" else {}
    procs = [ProcSpec(SOURCE, "source", int(np.prod(inp.shape)), source, 0)]
    conns: list[tuple[str, str]] = []
    for pop in pops:
        if pop.pool_of is not None:
            raise ModelError.at(pop.node, "max pooling has no stock Lava process for graded "
                                "sigma-delta messages; the default pipeline rewrites it into "
                                "ReLU layers (lower-maxpool)")
        target = SINK if pop.readout else pop.name
        kind, params = ("sink", {}) if pop.readout else ("sigma_delta", _neuron(pop, mode))
        procs.append(ProcSpec(target, kind, pop.size, params, pop.depth))
        for syn in pop.synapses:
            spec = _synapse(graph, pop, syn, mode, conv)
            spec = replace(spec, params={**spec.params, "num_message_bits": MESSAGE_BITS})
            procs.append(spec)
            src = SOURCE if syn.source == inp.name else syn.source
            conns += [(src, spec.name), (spec.name, target)]
    readout = pops[-1]
    assert readout.readout and readout.bias is not None
    scale = float(readout.synapses[0].node.attrs["q_scale"]) if mode == "fixed" else 1.0
    return Plan(mode, tuple(procs), tuple(conns), (), SINK, scale,
                np.asarray(readout.bias, np.float64).reshape(readout.size), readout.depth,
                decode="sum")


def build_any_plan(graph: Graph, mode: str = "fixed", conv: str = "lava") -> Plan:
    """The plan of any lowered graph: sigma-delta ones here, stock-LIF ones in lif_plan.py
    (stock processes only), the others in plan.py."""
    check_request(graph, mode, conv)
    if graph.meta.get("neuron") == "sigma-delta":
        return build_sigma_delta_plan(graph, mode, conv)
    pops = populations(graph)
    return build_lif_plan(graph, pops, mode, conv) if stock_lif(pops) else build_plan(
        graph, mode, conv)
