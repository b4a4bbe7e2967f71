"""Where each Lava process of a plan runs on a Loihi 2 system: `chip` for stock Lava processes
with NeuroCore models, `host` for Python-only ones, with the reason. Plain data: no Lava import.

chip: Dense, Sparse, Conv, SigmaDelta and the stock LIF (LIFReset), the processes Intel's
      Loihi 2 backend (lava-loihi) maps to NeuroCores; DelayDense / DelaySparse too (their
      bit-accurate models enforce Loihi 2's 6-bit synaptic delays). Open-source lava-nc 0.10
      ships no NeuroCore model of any process (they are in lava-loihi), so this list is the
      one Lava's documentation gives, not one this package can check.
host: snnc's own processes (IFSub, LifIO, Readout, MaxPoolSpike: Python process models only)
      and the io RingBuffers that feed the input and collect the output at the boundary.

A `--neuron lif` plan of stock LIFs only (lif_plan.py) has no LifIO: its LIFReset zeroes the
state once per sample on the chip (reset_interval / reset_offset are LIFReset's own
parameters; lava-nc ships its floating_pt and fixed_pt models), the source sends the input
current and V(0) through Sparse synapses, and the sink collects the readout's synaptic
input, so only the source and the sink are `host`. The recording sinks a CPU run attaches to
count spikes (lif_network.py) are not part of the plan and not listed.

    placement(plan)   [Placement(process, cls, where, reason), ...] in plan order
    summary(rows)     "placement: 14 chip, 2 host (input source, output sink)"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from .lif_plan import is_stock
from .plan import Plan, ProcSpec

CHIP = "chip"
HOST = "host"
STOCK = "stock Lava process with a NeuroCore model"
OWN = "snnc's own Python process model: no NeuroCore model"
SOURCE = "input source at the boundary (lava.proc.io.source.RingBuffer)"
SINK = "output sink at the boundary (lava.proc.io.sink.RingBuffer)"
OWN_CLASSES = {"if": "IFSub", "readout": "Readout", "maxpool": "MaxPoolSpike"}


@dataclass(frozen=True)
class Placement:
    process: str
    cls: str
    where: str
    reason: str

    def row(self) -> dict[str, str]:
        """The JSON object: keys process, class, where, reason."""
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d


def _synapse_class(spec: ProcSpec) -> str:
    if spec.kind == "conv":
        return "Conv"
    base = "Dense" if spec.kind == "dense" else "Sparse"
    return f"Delay{base}" if int(spec.params.get("delay", 1)) > 1 else base


def _places(spec: ProcSpec, stock: bool = False) -> list[Placement]:
    if spec.kind in ("dense", "sparse", "conv"):
        return [Placement(spec.name, _synapse_class(spec), CHIP, STOCK)]
    if spec.kind == "sigma_delta":
        return [Placement(spec.name, "SigmaDelta", CHIP, STOCK)]
    if spec.kind == "lif" and stock:  # lif_plan.py: driven by the input source
        return [Placement(spec.name, "LIFReset", CHIP, STOCK)]
    if spec.kind == "lif":  # network.py: the stock LIF plus snnc's drive/counting process
        return [Placement(spec.name, "LIFReset", CHIP, STOCK),
                Placement(f"{spec.name}_io", "LifIO", HOST, OWN)]
    if spec.kind == "source":
        return [Placement(spec.name, "RingBuffer", HOST, SOURCE)]
    if spec.kind == "sink":
        return [Placement(spec.name, "RingBuffer", HOST, SINK)]
    if spec.kind in OWN_CLASSES:
        return [Placement(spec.name, OWN_CLASSES[spec.kind], HOST, OWN)]
    raise ValueError(f"process kind '{spec.kind}' has no placement")  # a new kind: add it


def placement(plan: Plan) -> list[Placement]:
    """Every Lava process the plan instantiates (recording probes of compare runs aside)."""
    stock = is_stock(plan)
    return [p for spec in plan.procs for p in _places(spec, stock)]


def rows(plan: Plan) -> list[dict[str, str]]:
    return [p.row() for p in placement(plan)]


def _host_label(p: dict[str, str]) -> str:
    if p["reason"] == SOURCE:
        return "input source"
    if p["reason"] == SINK:
        return "output sink"
    return p["class"]


def summary(table: list[dict[str, Any]]) -> str:
    """One line: the chip and host counts, and what runs on the host."""
    chip = sum(1 for p in table if p["where"] == CHIP)
    host = Counter(_host_label(p) for p in table if p["where"] == HOST)
    what = ", ".join(k if n == 1 else f"{k} x{n}" for k, n in host.items())
    return f"placement: {chip} chip, {sum(host.values())} host" + (f" ({what})" if what else "")


def format_table(table: list[dict[str, Any]]) -> str:
    lines = [f"  {'process':28s} {'class':14s} {'where':5s} reason"]
    lines += [f"  {p['process']:28s} {p['class']:14s} {p['where']:5s} {p['reason']}"
              for p in table]
    return "\n".join([*lines, f"  {summary(table)}"]) + "\n"
