"""Simulator throughput of every engine side by side, in samples x time steps per second: the
`reference` and `fast` numpy engines and the `torch` engine on the CPU (and on CUDA where torch
sees a GPU), on the same compiled networks and the same samples; then the speed-up of sharding
one run over a local Dask cluster (`--workers N`, runtime/distributed.py) against one process;
and on a GPU, the ratio of one simulated step to onnxruntime's ANN forward pass (CUDA provider
where onnxruntime has it, else its CPU one).

    .venv/bin/python benchmarks/engine_speed.py [--timesteps 32] [--samples 540]
        [--repeats 3] [--workers 2] [--dask-samples 4320] [--engines reference,fast,torch]
        [--resnet50 N] [MODEL ...]

Runs of the engines alternate (reference, fast, torch, reference, ...) and each figure is the
median of --repeats timed runs after a warm-up run (numba compilation, onnxruntime sessions,
torch's allocator), so that load from other processes hits all alike. Networks: the shipped
digits CNN and the held-out 8x8 VGG (max pooling) and ResNet, compiled with preset rate-p99.99
(no tuning), fed the digits test images. --resnet50 N also times ResNet-50 (224x224, random
weights, benchmarks/scale/nets.py) at T=32 on N random images with the torch engine on every
device it has (hours on a CPU: meant for a GPU machine), in images per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import snnc
from snnc.backends.numpy.simulator import ENGINES
from snnc.compiler.errors import UsageError
from snnc.runtime import load_data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = [ROOT / "examples" / "digits" / "model.onnx",
                  ROOT / "tests" / "data" / "digits_vgg_maxpool.onnx",
                  ROOT / "tests" / "data" / "digits_resnet.onnx"]
CALIB = ROOT / "examples" / "digits" / "calib.npz"
TEST = ROOT / "examples" / "digits" / "test.npz"


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _engines(wanted: list[str]) -> list[tuple[str, str | None]]:
    """(engine, device) pairs to time: torch on the CPU, and on CUDA where it is visible."""
    out: list[tuple[str, str | None]] = []
    for engine in wanted:
        if engine != "torch":
            out.append((engine, None))
            continue
        try:
            import torch
        except ImportError:
            print("torch is not installed: no torch figures (pip install 'snnc[torch]')")
            continue
        out.append(("torch", "cpu"))
        if torch.cuda.is_available():
            out.append(("torch", "cuda"))
    return out


def _ann_seconds(model: Path, x: np.ndarray, cuda: bool) -> tuple[float, str]:
    import onnxruntime as ort

    providers = (["CUDAExecutionProvider"] if cuda and "CUDAExecutionProvider"
                 in ort.get_available_providers() else ["CPUExecutionProvider"])
    session = ort.InferenceSession(str(model), providers=providers)
    name = session.get_inputs()[0].name
    session.run(None, {name: x})
    return _median_time(lambda: session.run(None, {name: x}), 3), providers[0]


def bench_model(model: Path, x: np.ndarray, calib: np.ndarray, t: int, repeats: int,
                engines: list[tuple[str, str | None]], workers: int,
                dask_samples: int) -> None:
    net = snnc.compile(model, calib=calib, timesteps=t, preset="rate-p99.99")
    work = len(x) * t
    for engine, device in engines:  # warm-up
        net.simulate(x[:64], [t], engine=engine, device=device)
    times: dict[tuple[str, str | None], list[float]] = {e: [] for e in engines}
    for _ in range(repeats):
        for engine, device in engines:
            times[(engine, device)].append(_median_time(
                lambda e=engine, d=device: net.simulate(x, [t], engine=e, device=d), 1))
    print(f"{model.name}: {len(x)} samples, T={t}")
    base = None
    for (engine, device), ts in times.items():
        rate = work / statistics.median(ts)
        base = base or rate
        label = engine + (f" ({device})" if device else "")
        print(f"  {label:<18} {rate:>12,.0f} samples*steps/s   x{rate / base:.2f} vs "
              f"{engines[0][0]}")
        if device == "cuda":
            ann, provider = _ann_seconds(model, x, True)
            step = statistics.median(ts) / t
            print(f"  {'':<18} one step = {step / ann:.2f} ANN forward passes "
                  f"(onnxruntime {provider})")
    if workers > 1:
        reps = -(-dask_samples // len(x))  # a run long enough to be worth sharding
        _bench_workers(net, np.concatenate([x] * reps)[:dask_samples], t, repeats, workers)


def _bench_workers(net: snnc.runtime.CompiledNetwork, x: np.ndarray, t: int, repeats: int,
                   workers: int) -> None:
    try:
        from snnc.runtime.distributed import Cluster
    except ImportError:
        return
    try:
        cluster = Cluster(workers=workers)
    except UsageError as exc:  # no dask
        print(f"  --workers {workers}: {exc}")
        return
    with cluster:
        cluster.simulate(net, x, [t])  # warm-up: the workers import snnc, load the network
        one = _median_time(lambda: net.simulate(x, [t]), repeats)
        many = _median_time(lambda: cluster.simulate(net, x, [t]), repeats)
    print(f"  fast, {len(x)} samples: one process {len(x) * t / one:,.0f}, --workers "
          f"{workers} {len(x) * t / many:,.0f} samples*steps/s: x{one / many:.2f}")


def bench_resnet50(samples: int, t: int, engines: list[tuple[str, str | None]]) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks" / "scale"))
    from nets import resnet50

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (samples, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        torch.onnx.export(resnet50().eval(), torch.from_numpy(x[:1]), str(path),
                          dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
        net = snnc.compile(path, calib=x[:8], timesteps=t, preset="rate-max")
    for engine, device in engines:
        if engine != "torch":
            continue
        net.simulate(x[:2], [2], engine=engine, device=device)
        seconds = _median_time(lambda d=device: net.simulate(x, [t], engine="torch",
                                                              device=d), 1)
        print(f"resnet50 224x224 T={t} torch ({device}): {samples / seconds:.2f} images/s "
              f"({samples * t / seconds:,.0f} samples*steps/s)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    p.add_argument("--timesteps", type=int, default=32)
    p.add_argument("--samples", type=int, default=540)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="0: skip the Dask figure")
    p.add_argument("--dask-samples", type=int, default=4320,
                   help="samples of the Dask run (the test images repeated)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--resnet50", type=int, default=0, metavar="N",
                   help="also ResNet-50 at T=32 on N images (torch engine; for a GPU)")
    args = p.parse_args()
    x = load_data(TEST)[0][:args.samples]
    calib = load_data(CALIB)[0]
    engines = _engines([e.strip() for e in args.engines.split(",") if e.strip()])
    for model in args.models:
        bench_model(model, x, calib, args.timesteps, args.repeats, engines, args.workers,
                    args.dask_samples)
    if args.resnet50:
        bench_resnet50(args.resnet50, 32, engines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
