"""Simulator speed against the hardware yardstick: one time step of a rate-coded SNN costs at
most one ANN forward pass, so compare the NumPy simulator's time per sample per time step with
onnxruntime's time per sample for one forward pass of the same ANN, same batch, same threads;
and with SpikingJelly simulating the same converted network (benchmarks/sim_speed_sj.py, run in
benchmarks/peers/.venv when it exists).

    .venv/bin/python benchmarks/sim_speed.py [--timesteps 32] [--batch 256] [--repeats 5]
        [--threads 1] [--neuron if] [--layers] [--memory] [--simulator FILE.py] [MODEL ...]

Both simulator engines are timed: `reference` (numpy) and `fast` (convolutions in onnxruntime,
IF updates in a numba kernel; backends/numpy/fast.py). ORT and snnc runs alternate (ORT,
reference, fast, ORT, ...) and medians are compared, so that load from other processes hits
all alike. Both wall-clock and CPU time (of the whole process, all
threads) are reported; on a shared machine the CPU-time ratio at --threads 1 (the default) is
the stable one, and --threads 2 shows what two cores give when they are free.
--layers prints where a step's time goes, per node (one thread); --memory simulates 10,000
samples at T=64 in a child process and prints its peak RSS.
--simulator runs another version of backends/numpy/simulator.py (e.g. an experimental one).
Networks are compiled with the default preset but plain IF neurons (--neuron if): the
conversion SpikingJelly implements too; signed or LIF neurons are measured without the peer.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort

import snnc
from snnc.backends.numpy import simulator as default_simulator
from snnc.backends.numpy.simulator import ENGINES
from snnc.compiler.ops import parallel

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = [ROOT / "examples" / "digits" / "model.onnx",
                  ROOT / "tests" / "data" / "digits_vgg_maxpool.onnx",
                  ROOT / "tests" / "data" / "digits_resnet.onnx"]
CALIB = ROOT / "examples" / "digits" / "calib.npz"
TEST = ROOT / "examples" / "digits" / "test.npz"
PEERS_PYTHON = ROOT / "benchmarks" / "peers" / ".venv" / "bin" / "python"
SJ_SCRIPT = Path(__file__).with_name("sim_speed_sj.py")


def load_simulator(path: str | None) -> ModuleType:
    if path is None:
        return default_simulator
    spec = importlib.util.spec_from_file_location("snnc_sim_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, fn's result)"""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def measure(model: Path, x: np.ndarray, timesteps: int, repeats: int, sim: ModuleType,
            neuron: str) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads = parallel.workers()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    net = snnc.compile(model, calib=CALIB, neuron=neuron)
    for _ in range(2):  # warm up (ORT's arena; the simulator's unrolled small-map convs)
        session.run(None, {name: x})
    for engine in ENGINES:  # warm up (numba's compiled kernels load on first use)
        sim.simulate(net.graph, x[:8], [2], batch_size=len(x), engine=engine)
    ort_runs: list = []
    sim_runs: dict[str, list] = {engine: [] for engine in ENGINES}
    for _ in range(repeats):
        ort_runs.append(_timed(lambda: session.run(None, {name: x})))
        for engine in ENGINES:
            sim_runs[engine].append(_timed(lambda e=engine: sim.simulate(
                net.graph, x, [timesteps], batch_size=len(x), engine=e)))
    r: dict = {"net": net, "outputs": sim_runs["reference"][-1][2].at(timesteps),
               "fast_outputs": sim_runs["fast"][-1][2].at(timesteps)}
    for k, kind in enumerate(("wall", "cpu")):
        r[f"ort_{kind}"] = 1e6 * float(np.median([t[k] for t in ort_runs])) / len(x)
        for engine, prefix in (("reference", "sim"), ("fast", "fast")):
            r[f"{prefix}_{kind}"] = 1e6 * float(np.median([t[k] for t in sim_runs[engine]])) / (
                len(x) * timesteps)
            r[f"{prefix}_ratio_{kind}"] = r[f"{prefix}_{kind}"] / r[f"ort_{kind}"]
    return r


def layer_times(net: snnc.CompiledNetwork, x: np.ndarray, timesteps: int,
                sim: ModuleType, engine: str = "reference"
                ) -> list[tuple[str, str, float, float | None]]:
    """(node, op, CPU us per sample per step, spike rate) for every node evaluated in the
    step loop, measured in one thread by wrapping the simulator's kernels."""
    from snnc.compiler.ops import registry

    spent: dict[str, float] = {}

    def timer(fn: Callable, node_arg: int) -> Callable:
        def wrapped(*args: object) -> object:
            t = time.thread_time()  # CPU time: robust to other processes' load
            out = fn(*args)
            key = args[node_arg].name  # type: ignore[attr-defined]
            spent[key] = spent.get(key, 0.0) + time.thread_time() - t
            return out
        return wrapped

    from snnc.backends.numpy.fast import FastKernels

    saved_ops = dict(registry.OPS)
    saved_batch = {m: getattr(sim._Batch, m) for m in ("_fire", "_pool")}
    saved_window = FastKernels.window
    saved_env = os.environ.get("SNNC_THREADS")
    os.environ["SNNC_THREADS"] = "1"
    try:
        for op, definition in saved_ops.items():
            registry.OPS[op] = dataclasses.replace(definition,
                                                   evaluate=timer(definition.evaluate, 0))
        for m, fn in saved_batch.items():
            setattr(sim._Batch, m, timer(fn, 1))
        timed_window = timer(saved_window, 1)  # maxpool's window runs inside the timed _pool

        def window(kernels: FastKernels, node: object, x: np.ndarray) -> np.ndarray:
            fn = saved_window if node.op == "maxpool" else timed_window  # type: ignore[attr-defined]
            return fn(kernels, node, x)

        FastKernels.window = window  # type: ignore[method-assign]
        result = sim.simulate(net.graph, x, [timesteps], batch_size=len(x), engine=engine)
    finally:
        registry.OPS.clear()
        registry.OPS.update(saved_ops)
        for m, fn in saved_batch.items():
            setattr(sim._Batch, m, fn)
        FastKernels.window = saved_window  # type: ignore[method-assign]
        if saved_env is None:
            os.environ.pop("SNNC_THREADS")
        else:
            os.environ["SNNC_THREADS"] = saved_env
    static = sim._static_nodes(net.graph)
    rows = []
    for node in net.graph.nodes[1:]:
        if node.name in static:
            continue
        rate = None
        if node.op == "if":
            rate = float(result.spikes[node.name][0].sum()) / (
                len(x) * timesteps * int(np.prod(node.shape)))
        us = 1e6 * spent.get(node.name, 0.0) / (len(x) * timesteps)
        rows.append((node.name, node.op, us, rate))
    return rows


def export_for_torch(net: snnc.CompiledNetwork, path: Path) -> None:
    """The SNN as a node list and arrays, for sim_speed_sj.py (which cannot import snnc)."""
    nodes = [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": dict(n.attrs)}
             for n in net.graph.nodes]
    arrays = {f"{n.name}.{k}": np.asarray(v, np.float32) for n in net.graph.nodes
              for k, v in n.params.items()}
    if nodes[-1]["name"] != net.graph.output:
        raise SystemExit("the output node is not the last node; sim_speed_sj.py assumes it is")
    np.savez(path, graph=json.dumps(nodes), **arrays)


def spikingjelly(net: snnc.CompiledNetwork, x: np.ndarray, timesteps: int,
                 repeats: int) -> dict | None:
    """None without the peers venv, or for neurons SpikingJelly has no model of."""
    if not PEERS_PYTHON.exists() or any(
            n.op == "if" and (n.attrs.get("signed") or n.attrs.get("reset") == "zero")
            for n in net.graph.nodes):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        export_for_torch(net, Path(tmp) / "net.npz")
        np.save(Path(tmp) / "x.npy", x)
        proc = subprocess.run([str(PEERS_PYTHON), str(SJ_SCRIPT), str(Path(tmp) / "net.npz"),
                               str(Path(tmp) / "x.npy"), "--timesteps", str(timesteps),
                               "--threads", str(parallel.workers()), "--repeats",
                               str(repeats)], capture_output=True, text=True, check=False)
    if proc.returncode:
        print(f"SpikingJelly run failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["outputs"] = np.asarray(report["outputs"], np.float32)
    return report


def memory_child(model: Path, samples: int, timesteps: int, batch: int,
                 simulator: str | None, neuron: str) -> dict:
    """Runs in a fresh process, so that ru_maxrss is this simulation's own peak."""
    with np.load(TEST, allow_pickle=False) as f:
        x = np.resize(f["x"], (samples, *f["x"].shape[1:]))
    net = snnc.compile(model, calib=CALIB, neuron=neuron)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t = time.perf_counter()
    load_simulator(simulator).simulate(net.graph, x, [timesteps], batch_size=batch)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"peak_gib": peak, "before_gib": base, "seconds": seconds}


def print_layers(rows: list[tuple[str, str, float, float | None]]) -> None:
    total = sum(r[2] for r in rows) or 1.0
    for name, op, us, rate in rows:
        note = f"  rate {rate:.3f}" if rate is not None else ""
        print(f"    {name:>14} {op:>8} {us:7.2f} us  {100 * us / total:5.1f}%{note}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--timesteps", type=int, default=32)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--layers", action="store_true")
    p.add_argument("--memory", action="store_true")
    p.add_argument("--simulator", help="a simulator.py to use instead of snnc's")
    p.add_argument("--neuron", default="if", help="if (what SpikingJelly also simulates), "
                   "signed or lif; see snnc compile --neuron")
    p.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ["SNNC_THREADS"] = str(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, 10_000, 64, args.batch,
                                      args.simulator, args.neuron)))
        return
    sim = load_simulator(args.simulator)
    with np.load(TEST, allow_pickle=False) as f:
        x = np.resize(f["x"], (args.batch, *f["x"].shape[1:]))  # repeats the 540 if needed
    print(f"batch {len(x)}, T={args.timesteps}, --neuron {args.neuron}, {args.threads} "
          f"thread(s) each, median of "
          f"{args.repeats}, load average {os.getloadavg()[0]:.1f} at start; "
          "us = microseconds per sample (ORT) or per sample per step (SNN, SJ), wall|CPU")
    print(f"{'model':>24}  {'ORT us':>11}  {'SNN us':>11}  {'SNN/ORT':>11}  {'fast us':>11}  "
          f"{'fast/ORT':>11}  {'SJ us':>13}  {'SNN/SJ':>11}  {'fast/SJ':>11}  agree")
    for model in args.models:
        r = measure(model, x, args.timesteps, args.repeats, sim, args.neuron)
        sj = spikingjelly(r["net"], x, args.timesteps, min(args.repeats, 3))
        # agree: the share of samples where the engines (and SpikingJelly) pick one class
        agree = float(np.mean(r["fast_outputs"].argmax(1) == r["outputs"].argmax(1)))
        peer = f"{'n/a':>13}  {'n/a':>11}  {'n/a':>11}  {agree:.3f}"
        if sj is not None:
            agree = min(agree, float(np.mean(sj["outputs"].argmax(1) == r["outputs"].argmax(1))))
            peer = (f"{_pair(sj['wall'], sj['cpu'], 13, 0)}  "
                    f"{_pair(r['sim_wall'] / sj['wall'], r['sim_cpu'] / sj['cpu'], 11, 2)}  "
                    f"{_pair(r['fast_wall'] / sj['wall'], r['fast_cpu'] / sj['cpu'], 11, 2)}  "
                    f"{agree:.3f}")
        print(f"{model.name:>24}  {_pair(r['ort_wall'], r['ort_cpu'])}  "
              f"{_pair(r['sim_wall'], r['sim_cpu'])}  "
              f"{_pair(r['sim_ratio_wall'], r['sim_ratio_cpu'], 11, 2)}  "
              f"{_pair(r['fast_wall'], r['fast_cpu'])}  "
              f"{_pair(r['fast_ratio_wall'], r['fast_ratio_cpu'], 11, 2)}  {peer}")
        if args.layers:
            for engine in ENGINES:
                print(f"  {engine} engine, where a step goes:")
                print_layers(layer_times(r["net"], x, args.timesteps, sim, engine))
    if not PEERS_PYTHON.exists():
        print(f"(SpikingJelly: {PEERS_PYTHON} missing; run benchmarks/peers/setup_env.sh)")
    if args.memory:
        for model in args.models:
            cmd = [sys.executable, __file__, "--memory-child", str(model), "--batch",
                   str(args.batch), "--threads", str(args.threads), "--neuron", args.neuron]
            if args.simulator:
                cmd += ["--simulator", args.simulator]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{model.name:>24}: 10,000 samples x T=64 in {m['seconds']:.1f} s, peak RSS "
                  f"{m['peak_gib']:.2f} GiB ({m['before_gib']:.2f} GiB before simulating)")


def _pair(wall: float, cpu: float, width: int = 11, digits: int = 1) -> str:
    return f"{wall:.{digits}f}|{cpu:.{digits}f}".rjust(width)


if __name__ == "__main__":
    main()
