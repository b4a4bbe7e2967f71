"""Lava CPU simulation vs the NumPy simulators: wall time per simulated time step.

    .venv/bin/python benchmarks/lava_speed.py [--samples 20] [--timesteps 32]

Compiles the shipped digits CNN for --target loihi and runs the same samples in Lava
(Loihi2SimCfg, fixed point), in the NumPy bit-exact loihi mode and in the float NumPy simulator.
"Per step" divides by samples x simulated steps (Lava runs T + lag steps per sample)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import snnc
from snnc.runtime import load_data

ROOT = Path(__file__).resolve().parents[1] / "examples" / "digits"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--timesteps", type=int, default=32)
    args = ap.parse_args()
    x, _ = load_data(ROOT / "test.npz")
    x = x[:args.samples]
    t = args.timesteps
    loihi = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz", target="loihi")
    numpy_net = snnc.compile(ROOT / "model.onnx", calib=ROOT / "calib.npz")
    rows = []
    for name, run in [
        ("lava fixed_pt (1 sample/run)", lambda: [loihi.run(x[i:i + 1], t, backend="lava")
                                                  for i in range(min(3, len(x)))]),
        ("lava fixed_pt (batched)", lambda: loihi.run(x, t, backend="lava")),
        ("numpy loihi mode (batched)", lambda: loihi.run(x, t)),
        ("numpy float (batched)", lambda: numpy_net.run(x, t)),
    ]:
        n = min(3, len(x)) if "1 sample" in name else len(x)
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        rows.append((name, seconds, 1e3 * seconds / (n * t)))
    print(f"digits CNN (3584 neurons), {len(x)} samples, T={t}")
    print(f"{'backend':32s} {'seconds':>8s} {'ms/step/sample':>15s}")
    for name, s, ms in rows:
        print(f"{name:32s} {s:8.2f} {ms:15.3f}")


if __name__ == "__main__":
    main()
