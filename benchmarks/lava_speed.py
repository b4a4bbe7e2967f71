"""Lava CPU simulation vs the NumPy simulators: wall time per simulated time step.

    .venv/bin/python benchmarks/lava_speed.py [--samples 20] [--timesteps 32] [--repeat 1]

Compiles the shipped digits CNN for --target loihi and runs the same samples in Lava
(Loihi2SimCfg, fixed point) with Lava's Conv for the two convolutional synapse layers (the
default) and with dense matrices only, with the stock LIF (reset to zero) instead of snnc's IF,
in the NumPy bit-exact loihi mode and in the float NumPy simulator.
"Per step" divides by samples x T (Lava runs T + lag steps per sample); with --repeat, the
best of the repeats (the machine may be shared)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import snnc
from snnc.compiler.passes import lower_synapses, quantize_weights
from snnc.runtime import CompiledNetwork, load_data
from snnc.runtime.lava_run import run_in_lava

ROOT = Path(__file__).resolve().parents[1] / "examples" / "digits"


def stock_lif(net: CompiledNetwork) -> CompiledNetwork:
    """The same network with every neuron reset to zero, quantized for Loihi."""
    g = net.graph
    g = g.replace([n.with_attrs(reset="zero") if n.op == "if" else n for n in g.nodes])
    return CompiledNetwork(quantize_weights(lower_synapses(g)), "loihi")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    x, _ = load_data(ROOT / "test.npz")
    x = x[:args.samples]
    t = args.timesteps
    loihi = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz", target="loihi")
    numpy_net = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz")
    lif = stock_lif(numpy_net)
    few = min(3, len(x))
    runs: list[tuple[str, int, Callable[[], object]]] = [
        ("lava IF, Conv (1 sample/run)", few,
         lambda: [run_in_lava(loihi, x[i:i + 1], t) for i in range(few)]),
        ("lava IF, Conv (batched)", len(x), lambda: run_in_lava(loihi, x, t)),
        ("lava IF, Dense only (batched)", len(x), lambda: run_in_lava(loihi, x, t, conv="dense")),
        ("lava stock LIF, Conv (batched)", len(x), lambda: run_in_lava(lif, x, t)),
        ("numpy loihi mode (batched)", len(x), lambda: loihi.run(x, t)),
        ("numpy float (batched)", len(x), lambda: numpy_net.run(x, t)),
    ]
    print(f"digits CNN (3584 neurons), {len(x)} samples, T={t}")
    print(f"{'backend':34s} {'seconds':>8s} {'ms/step/sample':>15s}")
    for name, n, run in runs:
        seconds = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            run()
            seconds = min(seconds, time.perf_counter() - start)
        print(f"{name:34s} {seconds:8.2f} {1e3 * seconds / (n * t):15.3f}", flush=True)


if __name__ == "__main__":
    main()
