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
"""

from __future__ import annotations

import numpy as np

from .ir.graph import Graph, Node

# ~1 minute of simulation at the ~35 GMAC/s one core of this class of machine sustains
SIMULATION_BUDGET_MACS = 2e12
HARD_LIMIT_MACS = 10 * SIMULATION_BUDGET_MACS


def synapses(node: Node) -> int:
    """Connections a layer makes: every output unit times its fan-in (0 for unweighted ops);
    its multiply-adds per sample and step."""
    if node.op == "conv":
        return int(np.prod(node.shape) * np.prod(node.params["weight"].shape[1:]))
    if node.op == "linear":
        return int(node.params["weight"].size * np.prod(node.shape[:-1]))
    if node.op == "sparse":
        return int(node.params["weight"].size)
    return 0


def macs(graph: Graph) -> int:
    """Multiply-adds of one forward pass (one time step) per sample."""
    return sum(synapses(node) for node in graph.nodes)


def upstream_macs(graph: Graph, name: str) -> int:
    """Multiply-adds of the layers node `name` depends on (what simulating up to it costs)."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(graph.node(current).inputs)
    return sum(synapses(graph.node(n)) for n in seen)


def calibration_macs(graph: Graph, timesteps: int) -> int:
    """Multiply-adds per sample of layer-wise calibration when each IF layer's pass simulates
    the network up to it for T steps (what sets calibration's samples; an upper bound)."""
    return int(timesteps) * sum(upstream_macs(graph, n.name) for n in graph.nodes
                                if n.op == "if")


def window_macs(graph: Graph, name: str) -> int:
    """Multiply-adds of the layers between node `name` and the IF nodes feeding it (itself
    included): what simulating it from their recorded spike trains costs."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            node = graph.node(current)
            if current == name or node.op != "if":
                stack.extend(node.inputs)
    return sum(synapses(graph.node(n)) for n in seen)


def replay_calibration_macs(graph: Graph, timesteps: int) -> int:
    """Multiply-adds per sample of layer-wise calibration replaying recorded trains, at most:
    each IF layer's window is simulated to measure it and, once corrected, to record it (the
    second time without its synapses where calibration kept the layer's input current)."""
    return 2 * int(timesteps) * sum(window_macs(graph, n.name) for n in graph.nodes
                                    if n.op == "if")


def samples_within_budget(macs_per_sample: float, floor: int, ceiling: int) -> int:
    """As many samples as SIMULATION_BUDGET_MACS pays for, between floor and ceiling."""
    if macs_per_sample <= 0:
        return ceiling
    return int(min(ceiling, max(floor, SIMULATION_BUDGET_MACS // macs_per_sample)))
