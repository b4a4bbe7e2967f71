"""How fast the torch engine simulates on a device: a short timed probe, once per process.

The probe is a fixed spiking conv net (two 3x3 convolutions of 32 channels on 32x32 maps, IF
layers, a dense readout) that the engine itself runs for 4 steps on random samples (16 on a
CPU, 1024 on a GPU, enough to fill it rather than to time kernel launches):
its multiply-adds per second are what compiler/cost.py turns into the compute budget. The best
of a few timed runs is taken (the least disturbed by other work), after one warm-up run (kernel
selection, allocator growth). It costs about 0.2-0.5 s on a CPU and less on a GPU.
"""

from __future__ import annotations

import time

import numpy as np

from snnc.compiler.cost import macs
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.ir.graph import Graph

from .engine import resolve_device, simulate

CPU_SAMPLES, GPU_SAMPLES, STEPS, RUNS = 16, 1024, 4, 3
_MEASURED: dict[str, float] = {}


def probe_graph() -> Graph:
    rng = np.random.default_rng(0)
    b = GraphBuilder((16, 32, 32))
    conv = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    b.add("c1", "conv", ["x"], conv, weight=rng.normal(0, 0.1, (32, 16, 3, 3)),
          bias=np.zeros(32))
    b.neuron("s1", "c1", np.full((32, 1, 1), 0.5))
    b.add("c2", "conv", ["s1"], conv, weight=rng.normal(0, 0.1, (32, 32, 3, 3)),
          bias=np.zeros(32))
    b.neuron("s2", "c2", np.full((32, 1, 1), 0.5))
    b.add("f", "flatten", ["s2"])
    b.add("fc", "linear", ["f"], weight=rng.normal(0, 0.01, (10, 32 * 32 * 32)),
          bias=np.zeros(10))
    return b.graph(stage="snn")


def throughput(device: str | None = None) -> float:
    """Multiply-adds per second of simulation on `device` (measured once per process)."""
    key = str(resolve_device(device))
    if key not in _MEASURED:
        graph = probe_graph()
        samples = CPU_SAMPLES if key == "cpu" else GPU_SAMPLES
        x = np.random.default_rng(1).uniform(0, 1, (samples, 16, 32, 32)).astype(np.float32)
        static = {"x", "c1"}  # what the simulator computes once: the input and first conv
        simulate(graph, x, [STEPS], static=static, needed=None, device=key,
                 batch_size=samples)  # warm-up
        best = float("inf")
        for _ in range(RUNS):
            start = time.perf_counter()
            simulate(graph, x, [STEPS], static=static, needed=None, device=key,
                     batch_size=samples)
            best = min(best, time.perf_counter() - start)
        work = (macs(graph) - 32 * 16 * 9 * 32 * 32) * STEPS * samples  # c1 runs once
        _MEASURED[key] = work / best
    return _MEASURED[key]

