"""Simulator speed against the hardware yardstick: one time step of a rate-coded SNN costs at
most one ANN forward pass, so compare the NumPy simulator's time per sample per time step with
onnxruntime's time per sample for one forward pass of the same ANN, same batch, same threads.

    .venv/bin/python benchmarks/sim_speed.py [--timesteps 32] [--batch 256] [MODEL.onnx ...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import snnc

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = [ROOT / "examples" / "digits" / "model.onnx",
                  ROOT / "tests" / "data" / "digits_vgg_maxpool.onnx"]
CALIB = ROOT / "examples" / "digits" / "calib.npz"
TEST = ROOT / "examples" / "digits" / "test.npz"


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(model: Path, x: np.ndarray, timesteps: int, threads: int) -> dict[str, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ort_s = _best(lambda: session.run(None, {name: x})) / len(x)
    net = snnc.compile(model, calib=CALIB)
    sim_s = _best(lambda: net.simulate(x, [timesteps], batch_size=len(x)), 2) / (
        len(x) * timesteps)
    return {"ort_us": 1e6 * ort_s, "sim_us": 1e6 * sim_s, "ratio": sim_s / ort_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--timesteps", type=int, default=32)
    p.add_argument("--batch", type=int, default=256)
    args = p.parse_args()
    threads = len(os.sched_getaffinity(0))
    with np.load(TEST, allow_pickle=False) as f:
        x = f["x"][:args.batch]
    print(f"batch {len(x)}, T={args.timesteps}, {threads} threads")
    print(f"{'model':>28}  {'ORT us/sample':>13}  {'SNN us/sample/step':>18}  {'ratio':>6}")
    for model in args.models:
        r = measure(model, x, args.timesteps, threads)
        print(f"{model.name:>28}  {r['ort_us']:>13.1f}  {r['sim_us']:>18.1f}  "
              f"{r['ratio']:>6.2f}")


if __name__ == "__main__":
    main()
