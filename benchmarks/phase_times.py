"""Where `snnc compile` / `snnc eval` spend their time: wall and CPU seconds (all threads) per
phase, by wrapping the functions behind each phase (the same arguments as the snnc command).

    .venv/bin/python benchmarks/phase_times.py compile out/loihi_scale/vgg16.onnx \
        --calib tests/data/heldout/digits32_calib.npz --timesteps 4 -o /tmp/vgg16.snn
    .venv/bin/python benchmarks/phase_times.py eval out/loihi_scale/vgg16.onnx \
        --data tests/data/heldout/digits32_test.npz --calib tests/data/heldout/digits32_calib.npz \
        --timesteps 1,2,4,8,16,32

Nested calls of a phase count once; phases nest (simulate(all) includes the simulations of
tuning, calibration and the test runs). The table goes to stderr after the command's output.
"""

from __future__ import annotations

import collections
import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import snnc.api as api
import snnc.compiler.passes.calibrate as calibrate
import snnc.compiler.passes.manager as manager
import snnc.compiler.passes.normalize_thresholds  # noqa: F401 - the module, for sys.modules
import snnc.compiler.tuning as tuning
import snnc.evaluate as evaluate
from snnc.cli import main
from snnc.runtime import CompiledNetwork

TIMES: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
_active: list[str] = []


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if name in _active:
            return fn(*args, **kwargs)
        _active.append(name)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            row = TIMES[name]
            row[0] += time.perf_counter() - wall
            row[1] += time.process_time() - cpu
            row[2] += 1
            _active.remove(name)
    return wrapper


def install() -> None:
    nt = sys.modules["snnc.compiler.passes.normalize_thresholds"]
    api.simulate = timed("simulate(all)", api.simulate)
    api.load_onnx = timed("load_onnx", api.load_onnx)
    manager.normalize_thresholds = timed("normalize-thresholds", manager.normalize_thresholds)
    manager.calibrate = timed("calibrate pass", manager.calibrate)
    nt.collect_histograms = timed("  histograms", nt.collect_histograms)
    calibrate._ann_means = timed("  calibration ANN targets", calibrate._ann_means)
    calibrate._snn_mean = timed("  calibration measuring", calibrate._snn_mean)
    tuning.ann_logits = timed("ANN outputs (tuning)", tuning.ann_logits)
    tuning.TuningCache.outputs = timed("candidate scoring", tuning.TuningCache.outputs)
    evaluate.ann_outputs = timed("eval: ANN (onnxruntime)", evaluate.ann_outputs)
    evaluate.compile = timed("eval: compile", evaluate.compile)
    CompiledNetwork.simulate = timed("eval: test simulation", CompiledNetwork.simulate)


if __name__ == "__main__":
    install()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        code = main(sys.argv[1:])
    finally:
        print(f"total: wall {time.perf_counter() - wall:.1f} s, cpu {time.process_time() - cpu:.1f}"
              f" s, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        for name, (w, c, n) in sorted(TIMES.items(), key=lambda kv: -kv[1][0]):
            print(f"  {name:28s} wall {w:8.1f} s  cpu {c:8.1f} s  calls {n}", file=sys.stderr)
    sys.exit(code)
