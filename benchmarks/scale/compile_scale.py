"""Compile time and peak memory of snnc on ImageNet-size models (made by make_models.py):
import, fold, normalize with 64 calibration samples, convert, write the artifact. Each model
is compiled in a fresh process so its peak RSS is its own.

    .venv/bin/python benchmarks/scale/compile_scale.py --dir /tmp/snnc-scale
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(model: Path, samples: int) -> dict:
    """Runs in the child process."""
    from snnc.compiler.passes import DEFAULT_PIPELINE, PassOptions, run_pipeline
    from snnc.frontends.onnx import load_onnx
    from snnc.runtime import CompiledNetwork

    times: dict[str, float] = {}
    t = time.perf_counter()
    graph = load_onnx(model)
    times["import"] = time.perf_counter() - t
    calib = np.random.default_rng(0).normal(0, 1, (samples, *graph.input.shape)).astype(
        np.float32)
    for name in DEFAULT_PIPELINE:
        t = time.perf_counter()
        graph = run_pipeline(graph, [name], PassOptions(calib=calib))
        times[name] = time.perf_counter() - t
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        CompiledNetwork(graph).save(Path(tmp) / "net.snn")
    times["write"] = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"model": model.stem, "nodes": len(graph.nodes), "seconds": times,
            "total_s": sum(times.values()), "peak_gib": peak}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="/tmp/snnc-scale")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.samples)))
        return 0
    for model in sorted(Path(args.dir).glob("*.onnx")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(model), "--samples",
                               str(args.samples)], capture_output=True, text=True, check=False)
        if proc.returncode:
            print(f"{model.stem}: failed\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items())
        print(f"{r['model']:>12}: {r['total_s']:6.1f} s, peak {r['peak_gib']:.2f} GiB, "
              f"{r['nodes']} IR nodes  ({stages})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
