"""map-cores: assign each population's neurons and synapses to Loihi 2 neurocores under per-core
limits, and count cores and chips. The graph is unchanged; the report goes in meta['mapping'].

Per population P (neurons n_P, synapses = non-zero weights of its incoming synapse layers,
a conv's counted per tap that lands inside the input, compiler/loihi/synapses.py):

    cores_P = max(ceil(n_P / neurons_per_core), ceil(synapses_P / synapses_per_core))
    chips   = ceil(sum_P cores_P / cores_per_chip)

A population is split evenly over its cores; one neuron whose fan-in alone exceeds a core's
synapse budget cannot be split and is a ResourceError, as is needing more than `max_chips`.
Public Loihi 2 figures are uncertain (research notes, section 2), so every limit is a field of
CoreLimits that callers may change.

Before/after: the IR is the same; each population node's meta gains `cores`, the graph's
    mapping = {"populations": [{"name": "relu2", "neurons": 2048, "synapses": 247808,
               "cores": 2}, ...], "cores": 8, "chips": 1, "limits": {...}}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..contracts import SYNAPSES, contract
from ..errors import ModelError, ResourceError
from ..ir.graph import Graph
from .formats import MAX_DELAY
from .populations import populations
from .synapses import counts

NAME = "map-cores"
CONTRACT = contract(requires={SYNAPSES})


@dataclass(frozen=True)
class CoreLimits:
    # up to 8192 neurons per core: WikiChip "Loihi 2" page (1,048,576 neurons = 128 x 8192)
    neurons_per_core: int = 8192
    # 128 KB synaptic SRAM per core (fbhtechinfo launch coverage; uncertain), 8-bit weights
    synapses_per_core: int = 128 * 1024
    # 128 cores per chip (WikiChip); Hala Point's 140,544 cores / 1,152 chips = 122 usable:
    # budget 120 (Intel press numbers via eenewseurope)
    cores_per_chip: int = 120
    # chips available: None = as many as needed (Kapoho Point boards hold 8, Hala Point 1,152)
    max_chips: int | None = None


def _synapses(graph: Graph, pop: Any) -> tuple[int, int]:
    """(total synapses, the largest fan-in of one neuron), counted from kernels and sparsity."""
    total, fan_in = 0, 0
    for syn in pop.synapses:
        n, f = counts(syn.node, graph.node(syn.node.inputs[0]).shape)
        total += n
        fan_in += f  # an upper bound where several synapse layers feed one population
    return total, fan_in


def map_cores(graph: Graph, limits: CoreLimits | None = None) -> Graph:
    limits = limits or CoreLimits()
    report = []
    origins: dict[str, str] = {}
    for pop in populations(graph):
        for syn in pop.synapses:
            if syn.delay > MAX_DELAY:
                raise ModelError.at(pop.node, f"needs a synaptic delay of {syn.delay} steps "
                                    f"from '{syn.source}' (a skip connection over "
                                    f"{syn.delay - 1} layers); Loihi 2 delays stop at "
                                    f"{MAX_DELAY}")
        synapses, fan_in = _synapses(graph, pop)
        if fan_in > limits.synapses_per_core:
            raise ResourceError(f"{pop.node.origin}: one neuron has {fan_in} input synapses, "
                                f"above the {limits.synapses_per_core} a core can hold "
                                "(CoreLimits.synapses_per_core)")
        cores = max(1, math.ceil(pop.size / limits.neurons_per_core),
                    math.ceil(synapses / limits.synapses_per_core))
        report.append({"name": pop.name, "neurons": pop.size, "synapses": synapses,
                       "cores": cores})
        origins[pop.name] = pop.node.origin
    total = sum(r["cores"] for r in report)
    chips = math.ceil(total / limits.cores_per_chip)
    if limits.max_chips is not None and chips > limits.max_chips:
        worst = max(report, key=lambda r: r["cores"])
        raise ResourceError(f"the network needs {total} cores = {chips} chips, above the "
                            f"limit of {limits.max_chips} chip(s) x {limits.cores_per_chip} "
                            f"cores; the largest layer is '{worst['name']}' "
                            f"({origins[worst['name']]}) with {worst['cores']} cores "
                            "(--max-chips sets the limit)")
    mapping = {"populations": report, "cores": total, "chips": chips,
               "limits": dataclasses.asdict(limits)}
    cores = {r["name"]: r["cores"] for r in report}
    nodes = [n.replace(meta={**n.meta, "cores": cores[n.name]}) if n.name in cores else n
             for n in graph.nodes]
    return graph.replace(nodes).with_meta(mapping=mapping)


def format_mapping(mapping: dict[str, Any]) -> str:
    lines = [f"  {'population':24s} {'neurons':>8s} {'synapses':>10s} {'cores':>6s}"]
    for r in mapping["populations"]:
        lines.append(f"  {r['name']:24s} {r['neurons']:8d} {r['synapses']:10d} "
                     f"{r['cores']:6d}")
    lines.append(f"  total: {mapping['cores']} neurocores on {mapping['chips']} Loihi 2 chip(s)")
    return "\n".join(lines)
