"""What simulating a graph costs, in multiply-adds, and the compute budget that keeps the
simulations behind `--norm auto` / `--calibrate` bounded on large models.

Tuning simulates every candidate on the calibration samples at the requested T, and layer-wise
calibration simulates the network up to each IF layer in turn: on ResNet-50 at T=32, 256
samples would be ~200 TMAC for tuning and ~6 hours of calibration on this kind of machine.
So both take as many samples as fit in SIMULATION_BUDGET_MACS (never fewer than a floor), and
tuning steps aside with a message when even the floor would cost more than HARD_LIMIT_MACS.

Calibration's sample count is set by `calibration_macs`, the cost of re-simulating every
layer's prefix. With a simulator that replays recorded spike trains (the NumPy one), it
simulates each layer's window once, and then only its neurons where it kept the layer's input
current (`replay_calibration_macs` bounds it: every window twice, about 2 / depth of
`calibration_macs` on a chain): the same samples and the same network, in a fraction of the
budget's time.

The budget follows the engine (`budget`, `simulator_budget`): SIMULATION_BUDGET_MACS is about a
minute at BASELINE_MACS_PER_S, what the CPU engines (reference, fast) sustain on one core of
this class of machine; an engine that says it is faster (the simulator handed to the passes
carries `macs_per_second`, a function measuring it: the torch engine's probe,
backends/torch/probe.py) gets the budget times 2^floor(log2(rate / BASELINE_MACS_PER_S)), never
less than the baseline's. Powers of two, not the measured rate itself, so that the small
fluctuations of a timing do not change how many samples are simulated (and with them the
compiled network): the same inputs give the same network on the same engine and device class,
and a model small enough that the baseline budget already pays for every sample (the digits
CNN; at T=32, any model below ~50 MMAC per forward pass) gets the same network on every
engine.
SNNC_MACS_PER_SECOND=R (environment) assumes the rate R instead of measuring (any R, also
below the baseline): the same budget on every machine, e.g. to reproduce a GPU compile's choices
on a CPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ir.graph import Graph, Node

# ~1 minute of simulation at the ~35 GMAC/s one core of this class of machine sustains
BASELINE_MACS_PER_S = 35e9
SIMULATION_BUDGET_MACS = 2e12
HARD_LIMIT_MACS = 10 * SIMULATION_BUDGET_MACS


@dataclass(frozen=True)
class Budget:
    """What tuning and calibration may simulate: `macs` sets their sample counts, beyond
    `hard_limit` they simulate nothing; `scale` times the baseline's."""

    macs: float
    hard_limit: float
    scale: float = 1.0


def budget(macs_per_second: float | None = None) -> Budget:
    """The budget of an engine sustaining `macs_per_second` (None: the CPU baseline)."""
    pinned = os.environ.get("SNNC_MACS_PER_SECOND", "").strip()
    rate, floor = macs_per_second, 1.0
    if pinned:
        try:
            rate, floor = float(pinned), 0.0
        except ValueError:
            pass
    scale = 1.0
    if rate is not None and rate > 0:
        scale = max(floor, 2.0 ** math.floor(math.log2(rate / BASELINE_MACS_PER_S)))
    # module globals read at each call (tests shrink them)
    return Budget(SIMULATION_BUDGET_MACS * scale, HARD_LIMIT_MACS * scale, scale)


def simulator_budget(simulate: Callable[..., Any] | None) -> Budget:
    """The budget of the engine behind a simulator: its `macs_per_second` attribute (a number,
    or a function measuring it, called only now), else the baseline."""
    rate = getattr(simulate, "macs_per_second", None)
    return budget(rate() if callable(rate) else rate)


def synapses(node: Node) -> int:
    """Connections a layer makes: every output unit times its fan-in (0 for unweighted ops);
    its multiply-adds per sample and step."""
    if node.op == "conv":
        return int(np.prod(node.shape) * np.prod(node.params["weight"].shape[1:]))
    if node.op == "linear":
        return int(node.params["weight"].size * np.prod(node.shape[:-1]))
    if node.op == "sparse":
        return int(node.params["weight"].size)
    if node.op == "conv_transpose":  # every input unit scatters into C_out/g * k taps
        return int(_transposed_inputs(node) * np.prod(node.params["weight"].shape[1:]))
    return 0


def _transposed_inputs(node: Node) -> int:
    """The input units of a conv_transpose node, from its output size (the output-size
    formula solved for the input: out = (in - 1) s - pads + d (k - 1) + 1 + output_padding)."""
    a, kernel = node.attrs, node.params["weight"].shape[2:]
    rank = len(kernel)
    spatial = [(o - int(a["output_padding"][i]) - 1 - int(a["dilations"][i]) * (k - 1)
                + int(a["pads"][i]) + int(a["pads"][i + rank])) // int(a["strides"][i]) + 1
               for i, (o, k) in enumerate(zip(node.shape[1:], kernel, strict=True))]
    return int(node.params["weight"].shape[0] * np.prod(spatial))


def macs(graph: Graph) -> int:
    """Multiply-adds of one forward pass (one time step) per sample."""
    return sum(synapses(node) for node in graph.nodes)


def _cone(graph: Graph, name: str, through_neurons: bool) -> set[str]:
    """Node `name` and the nodes it depends on; without `through_neurons`, not looking behind
    the IF nodes it reaches (they are where a replayed simulation starts)."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            node = graph.node(current)
            if through_neurons or current == name or node.op != "if":
                stack.extend(node.inputs)
    return seen


def upstream_macs(graph: Graph, name: str) -> int:
    """Multiply-adds of the layers node `name` depends on (what simulating up to it costs)."""
    return sum(synapses(graph.node(n)) for n in _cone(graph, name, through_neurons=True))


def calibration_macs(graph: Graph, timesteps: int) -> int:
    """Multiply-adds per sample of layer-wise calibration when each IF layer's pass simulates
    the network up to it for T steps (what sets calibration's samples; an upper bound)."""
    return int(timesteps) * sum(upstream_macs(graph, n.name) for n in graph.nodes
                                if n.op == "if")


def window_macs(graph: Graph, name: str) -> int:
    """Multiply-adds of the layers between node `name` and the IF nodes feeding it (itself
    included): what simulating it from their recorded spike trains costs."""
    return sum(synapses(graph.node(n)) for n in _cone(graph, name, through_neurons=False))


def replay_calibration_macs(graph: Graph, timesteps: int) -> int:
    """Multiply-adds per sample of layer-wise calibration replaying recorded trains, at most:
    each IF layer's window is simulated to measure it and, once corrected, to record it (the
    second time without its synapses where calibration kept the layer's input current)."""
    return 2 * int(timesteps) * sum(window_macs(graph, n.name) for n in graph.nodes
                                    if n.op == "if")


def samples_within_budget(macs_per_sample: float, floor: int, ceiling: int,
                          within: Budget | None = None) -> int:
    """As many samples as the budget (default: the baseline's) pays for, between floor and
    ceiling."""
    if macs_per_sample <= 0:
        return ceiling
    total = (within or budget()).macs
    return int(min(ceiling, max(floor, total // macs_per_sample)))
