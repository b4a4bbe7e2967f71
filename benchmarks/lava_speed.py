"""Lava CPU simulation vs the NumPy simulators: wall time per simulated time step.

    .venv/bin/python benchmarks/lava_speed.py [--samples 20] [--timesteps 32] [--repeat 1]
    .venv/bin/python benchmarks/lava_speed.py --net out/lava_scale/vgg16-loihi.snn \\
        --data tests/data/heldout/digits32_test.npz --samples 3 --timesteps 8

Without --net: compiles the shipped digits CNN for --target loihi and runs the same samples
in Lava (Loihi2SimCfg, fixed point) with Lava's Conv for the two convolutional synapse layers
(the default), with Sparse or Dense matrices instead (conv="sparse" / "dense"), compiled with
--neuron lif (Lava's stock LIF, reset to zero) instead of snnc's IF, in the NumPy bit-exact
loihi mode and in the float NumPy simulator (the default numpy target). "Per step" divides
by samples x T (Lava runs T + lag steps per sample); with --repeat, the best of the repeats
(the machine may be shared).

With --net (a compiled .snn, --target loihi or lava): the network's Lava processes (how many
Conv / Sparse / Dense), the time Lava takes to compile and start them, and the time per Lava
step once running (from the second sample on: one Lava run per sample, timed between the
progress reports), against the NumPy mode of the same artifact."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import snnc
from snnc.runtime import load_data
from snnc.runtime.lava_run import run_in_lava

ROOT = Path(__file__).resolve().parents[1] / "examples" / "digits"


def digits(args: argparse.Namespace) -> None:
    x, _ = load_data(ROOT / "test.npz")
    x = x[:args.samples]
    t = args.timesteps
    loihi = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz", target="loihi")
    numpy_net = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz")
    lif = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz", target="loihi",
                       neuron="lif")
    few = min(3, len(x))
    runs: list[tuple[str, int, Callable[[], object]]] = [
        ("lava IF, Conv (1 sample/run)", few,
         lambda: [run_in_lava(loihi, x[i:i + 1], t) for i in range(few)]),
        ("lava IF, Conv (batched)", len(x), lambda: run_in_lava(loihi, x, t)),
        ("lava IF, Sparse only (batched)", len(x),
         lambda: run_in_lava(loihi, x, t, conv="sparse")),
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


def one_net(args: argparse.Namespace) -> None:
    from snnc.backends.lava.plan import build_plan

    net = snnc.load(args.net)
    mode = "fixed" if net.target == "loihi" else "float"
    x, _ = load_data(args.data)
    x = x[:max(2, args.samples)]
    t = args.timesteps
    plan = build_plan(net.graph, mode, args.conv)
    kinds = Counter(p.kind for p in plan.procs)
    neurons = sum(p.size for p in plan.neurons)
    steps = t + plan.lag
    print(f"{args.net}: {neurons} neurons, Lava processes {dict(kinds)}, "
          f"{len(x)} samples x {steps} Lava steps (T={t})", flush=True)
    stamps: list[float] = []
    start = time.perf_counter()
    run_in_lava(net, x, t, progress=lambda _: stamps.append(time.perf_counter()),
                conv=args.conv)
    total = time.perf_counter() - start
    first = stamps[0] - start  # Lava's compile and start, plus the first sample
    per_step = (stamps[-1] - stamps[0]) / ((len(stamps) - 1) * steps)
    print(f"lava {mode}: {total:.1f} s in all; compile, start and first sample "
          f"{first:.1f} s; then {1e3 * per_step:.1f} ms per Lava step", flush=True)
    start = time.perf_counter()
    net.run(x, t)
    numpy_s = time.perf_counter() - start
    print(f"numpy ({'loihi mode' if mode == 'fixed' else 'float'}): {numpy_s:.2f} s, "
          f"{1e3 * numpy_s / (len(x) * t):.2f} ms per step per sample")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--net", help="a compiled .snn to time instead of the digits CNN")
    ap.add_argument("--data", default=str(ROOT / "test.npz"), help="samples for --net")
    ap.add_argument("--conv", default="lava", help="for --net: lava, sparse or dense")
    args = ap.parse_args()
    one_net(args) if args.net else digits(args)


if __name__ == "__main__":
    main()
