"""Compile time and peak memory of snnc on ImageNet-size models (made by make_models.py):
import, fold, normalize with 64 calibration samples, convert, write the artifact. Each model
is compiled in a fresh process so its peak RSS is its own; after the compile (outside the
timings and the peak), the imported graph's IR executor is checked against onnxruntime.

    .venv/bin/python benchmarks/scale/compile_scale.py --dir /tmp/snnc-scale [--models a,b]

Wall time depends on what else runs: each line also gives the process's CPU time and the load
average at its start (the compile uses up to SNNC_THREADS threads, default: all CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from snnc.compiler.ir.graph import Graph


def _agreement(model: Path, graph: Graph, samples: int = 2) -> float:
    """max |executor - onnxruntime| / max |onnxruntime| on random inputs."""
    import onnxruntime as ort

    from snnc.compiler.executor import run

    x = np.random.default_rng(1).normal(0, 1, (samples, *graph.input.shape)).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # old-style files warn about initializers listed as inputs
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    (ref,) = session.run(None, {session.get_inputs()[0].name: x})
    return float(np.abs(run(graph, x) - ref).max() / np.abs(ref).max())


def measure(model: Path, samples: int) -> dict:
    """Runs in the child process."""
    from snnc.compiler.passes import DEFAULT_PIPELINE, PassOptions, run_pipeline
    from snnc.frontends.onnx import load_onnx
    from snnc.runtime import CompiledNetwork

    times: dict[str, float] = {}
    cpu = time.process_time()
    t = time.perf_counter()
    imported = graph = load_onnx(model)
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
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"model": model.stem, "nodes": len(graph.nodes), "seconds": times,
            "total_s": sum(times.values()), "cpu_s": cpu, "peak_gib": peak,
            "rel_err": _agreement(model, imported)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="/tmp/snnc-scale")
    p.add_argument("--models", help="comma-separated file stems (default: every .onnx)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.samples)))
        return 0
    paths = sorted(Path(args.dir).glob("*.onnx"))
    if args.models:
        paths = [Path(args.dir) / f"{m}.onnx" for m in args.models.split(",")]
    failed = 0
    for model in paths:
        load = os.getloadavg()[0]
        proc = subprocess.run([sys.executable, __file__, "--child", str(model), "--samples",
                               str(args.samples)], capture_output=True, text=True, check=False)
        if proc.returncode:
            print(f"{model.stem}: failed\n{proc.stderr[-2000:]}")
            failed += 1
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items() if v >= 0.05)
        print(f"{r['model']:>18}: {r['total_s']:6.1f} s ({r['cpu_s']:.1f} s CPU, load "
              f"{load:.1f}), peak {r['peak_gib']:.2f} GiB, {r['nodes']} IR nodes, executor "
              f"vs onnxruntime {r['rel_err']:.1e}  ({stages})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
