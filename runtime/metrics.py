"""Operation counts and the energy estimate the conversion papers use.

* ANN: every conv/linear layer does MACs = its synapse count (output units x fan-in) per sample.
* SNN: a layer fed only by the analog input (the first conv) does its MACs once, because the
  direct-encoded input is the same every step and the simulator computes it once. A layer fed by
  spiking layers does SOPs = zeta x synapses, zeta being the mean number of spikes (events) per
  neuron per sample of the spiking layers feeding it (the usual approximation, e.g. Datta et al.;
  exact for fully connected layers, and for convs up to border effects).
* Energy at 45 nm (Horowitz, ISSCC 2014): 4.6 pJ per MAC, 0.9 pJ per AC (one SOP).
  Pooling, Add and neuron updates are not counted, as in most papers.
* Graded spikes (layers with spike_bits > 1): one message per neuron-step that emits n != 0,
  whose synapses add weight x n (Loihi 2's graded spikes carry an integer payload, Intel's
  Loihi 2 brief 2021; Lava's Dense with num_message_bits > 0 computes weights.dot(payloads)).
  So zeta counts messages, not the payload, and each synaptic operation a graded message causes
  is charged as a MAC (4.6 pJ: Horowitz's 32-bit float multiply 3.7 pJ + add 0.9 pJ), not an
  AC: `graded_sops`. Sigma-delta neurons (`sd`) always send graded messages (the change of
  their activation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from snnc.compiler.cost import synapses
from snnc.compiler.ir.graph import Graph
from snnc.compiler.ops.neuron import max_count

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
WEIGHTED = ("conv", "conv_transpose", "linear", "sparse")


def spiking_sources(graph: Graph, name: str) -> list[str]:
    """The spiking (IF or sigma-delta) layers whose messages reach layer `name` through
    non-weighted ops (pooling, reshapes, adds); an empty list: it sees only the analog input."""
    sources: list[str] = []
    stack = list(graph.node(name).inputs)
    seen: set[str] = set()
    while stack:
        current = graph.node(stack.pop())
        if current.name in seen:
            continue
        seen.add(current.name)
        if current.op in ("if", "sd"):
            sources.append(current.name)
        elif current.op not in WEIGHTED:
            stack.extend(current.inputs)
    return sources


@dataclass(frozen=True)
class OpCounts:
    ann_macs: float  # per sample
    snn_macs: float  # per sample, layers fed by the analog input
    sops: float  # per sample, all synaptic operations (messages x fan-out)
    graded_sops: float = 0.0  # per sample, the part of sops caused by graded messages (MACs)

    @property
    def ann_energy_uj(self) -> float:
        return self.ann_macs * E_MAC_PJ * 1e-6

    @property
    def snn_energy_uj(self) -> float:
        accumulates = self.sops - self.graded_sops
        return ((self.snn_macs + self.graded_sops) * E_MAC_PJ + accumulates * E_AC_PJ) * 1e-6

    @property
    def energy_ratio(self) -> float:
        return self.snn_energy_uj / self.ann_energy_uj if self.ann_macs else float("nan")


def op_counts(graph: Graph, spikes_per_sample: Mapping[str, float]) -> OpCounts:
    """MACs and SOPs per sample, given each IF layer's mean message (spike event) count per
    sample; the SOPs of graded layers' messages are also counted apart (charged as MACs)."""
    ann = macs = sops = graded = 0.0
    for node in graph.nodes:
        if node.op not in WEIGHTED:
            continue
        n = synapses(node)
        ann += n
        sources = spiking_sources(graph, node.name)
        if not sources:
            macs += n
            continue
        neurons = [float(np.prod(graph.node(s).shape)) for s in sources]
        total = sum(neurons)
        sops += sum(spikes_per_sample.get(s, 0.0) for s in sources) / total * n
        graded += sum(spikes_per_sample.get(s, 0.0) for s in sources
                      if graph.node(s).op == "sd" or max_count(graph.node(s)) > 1) / total * n
    return OpCounts(ann, macs, sops, graded)
