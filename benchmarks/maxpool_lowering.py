"""Max pooling on IF SNNs: today's spiking max pool vs the ReLU tree of lower-maxpool (issue 16).

    .venv/bin/python benchmarks/maxpool_lowering.py                  # small VGG, trained here
    .venv/bin/python benchmarks/maxpool_lowering.py --model out/deep/vgg16.onnx \\
        --data out/deep/test.npz --calib out/deep/calib.npz --presets rate-p99.99

Per model, preset and T, the same network compiled twice with IF neurons (reset by
subtraction: what Loihi runs), once with the default pipeline (max pools simulated as spiking
max pools: pooled cumulative inputs, a host process on Lava) and once with lower-maxpool after
fold-batchnorm (max pools as ReLU layers, their thresholds from calibration like any other);
both SNNs run on the same test samples with the NumPy simulator. Prints the test accuracy of
each side by side, the ANN's, and the messages (spikes) per sample.

The default model is a 32x32 VGG-like net with three 2x2 max pools (conv16-pool-conv32x2-pool-
conv32x2-pool-linear, BatchNorm) trained for a few epochs on benchmarks/deep's cluttered digits
(its own splits, 5,000 training samples; cached in out/maxpool/). Presets: `rate-p99.99`
(per-layer 99.99th-percentile thresholds, V(0) = theta/2, nothing tuned: one compile serves
every T) and `if` (the default `calibrated` preset with IF neurons: thresholds and calibration
tuned per T on the calibration data). This is a benchmark, not a test: it trains a model and
takes minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "maxpool"
sys.path.insert(0, str(ROOT / "benchmarks" / "deep"))

import snnc  # noqa: E402
from snnc.compiler.passes.lower_maxpool import NAME as LOWER_MAXPOOL  # noqa: E402
from snnc.compiler.passes.manager import DEFAULT_PIPELINE, FOLD_BATCHNORM  # noqa: E402
from snnc.compiler.tuning import TuningCache  # noqa: E402
from snnc.runtime import load_data  # noqa: E402

PIPELINES = {
    "spiking": DEFAULT_PIPELINE,
    "relu": tuple(p for name in DEFAULT_PIPELINE
                  for p in ((name, LOWER_MAXPOOL) if name == FOLD_BATCHNORM else (name,))),
}
# presets whose compile does not depend on T: one compile, all T as prefixes of one run
T_FREE = ("rate-p99.99", "rate-max", "qcfs")


def small_vgg(epochs: int, seed: int = 16) -> tuple[Path, Path, Path]:
    """Train (or reuse) the small VGG; returns (model, calib, test) paths."""
    model_path, calib_path, test_path = (OUT / f for f in ("vgg3.onnx", "calib.npz", "test.npz"))
    if model_path.exists() and calib_path.exists() and test_path.exists():
        return model_path, calib_path, test_path
    import torch
    from data import make_splits, save_npz
    from torch import nn
    from torch.nn import functional as F

    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    splits = make_splits(sizes={"train": 5000, "calib": 256, "test": 1000})
    print(f"data: {time.perf_counter() - t0:.0f} s", flush=True)
    torch.manual_seed(seed)

    def conv(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU()]

    pool = nn.MaxPool2d(2)
    model = nn.Sequential(*conv(1, 16), pool, *conv(16, 32), *conv(32, 32), pool,
                          *conv(32, 32), *conv(32, 32), pool, nn.Flatten(),
                          nn.Linear(32 * 4 * 4, 10))
    x, y = (torch.from_numpy(a) for a in splits["train"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = 128
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3,
                                                total_steps=epochs * -(-len(x) // batch))
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}: {time.perf_counter() - t0:.0f} s", flush=True)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 1, 32, 32),), str(model_path), dynamo=False,
                          opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    save_npz(calib_path, *splits["calib"])
    save_npz(test_path, *splits["test"])
    return model_path, calib_path, test_path


def ann_accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float((out.argmax(1) == y).mean())


def evaluate(model: Path, calib: np.ndarray, x: np.ndarray, y: np.ndarray, preset: str,
             pipeline: tuple[str, ...], timesteps: list[int]) -> dict[int, dict[str, float]]:
    """{T: accuracy, messages per sample, seconds} for one pipeline."""
    options: dict[str, Any] = {"calib": calib, "preset": preset, "neuron": "if"}
    cache = TuningCache()
    rows: dict[int, dict[str, float]] = {}
    if preset in T_FREE:
        t0 = time.perf_counter()
        net = snnc.compile(model, pipeline=pipeline, timesteps=max(timesteps), cache=cache,
                           **options)
        result = net.simulate(x, timesteps)
        seconds = time.perf_counter() - t0
        for k, t in enumerate(timesteps):
            out = result.outputs[k]
            spikes = sum(s[k] for s in result.spikes.values())
            rows[t] = {"accuracy": float((out.reshape(len(out), -1).argmax(1) == y).mean()),
                       "messages": float(np.mean(spikes)), "seconds": seconds}
        return rows
    for t in timesteps:
        t0 = time.perf_counter()
        net = snnc.compile(model, pipeline=pipeline, timesteps=t, cache=cache, **options)
        run = net.run(x, t)
        rows[t] = {"accuracy": run.accuracy(y), "messages": run.spikes_per_sample,
                   "seconds": time.perf_counter() - t0}
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="ONNX model (default: the small VGG)")
    p.add_argument("--data", type=Path, help="test npz (x, y), with --model")
    p.add_argument("--calib", type=Path, help="calibration npz, with --model")
    p.add_argument("--limit", type=int, default=300, help="test samples (default 300)")
    p.add_argument("--timesteps", default="4,8,16,32")
    p.add_argument("--presets", default="rate-p99.99,if")
    p.add_argument("--epochs", type=int, default=10, help="training epochs of the small VGG")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args()
    if args.model is None:
        model, calib_path, test_path = small_vgg(args.epochs)
    elif args.data is None or args.calib is None:
        p.error("--model needs --data and --calib")
    else:
        model, calib_path, test_path = args.model, args.calib, args.data
    x, y = load_data(test_path)
    x, y = x[:args.limit], y[:args.limit]
    calib = load_data(calib_path)[0]
    timesteps = sorted(int(t) for t in args.timesteps.split(","))
    ann = ann_accuracy(model, x, y)
    print(f"{model.name}: {len(y)} test samples, {len(calib)} calibration samples, "
          f"ANN accuracy {100 * ann:.2f}%; IF neurons (reset by subtraction)")
    results: dict[str, Any] = {"model": str(model), "samples": len(y), "ann_accuracy": ann}
    for preset in args.presets.split(","):
        side = {name: evaluate(model, calib, x, y, preset, pipe, timesteps)
                for name, pipe in PIPELINES.items()}
        results[preset] = side
        print(f"\npreset {preset}")
        print(f"{'T':>4}  {'spiking maxpool':>15}  {'ReLU tree':>10}  {'tree-spiking':>12}  "
              f"{'msgs spiking':>12}  {'msgs tree':>10}")
        for t in timesteps:
            a, b = side["spiking"][t], side["relu"][t]
            print(f"{t:>4}  {100 * a['accuracy']:>14.2f}%  {100 * b['accuracy']:>9.2f}%  "
                  f"{100 * (b['accuracy'] - a['accuracy']):>+12.2f}  {a['messages']:>12.0f}  "
                  f"{b['messages']:>10.0f}")
        seconds = {k: round(max(r["seconds"] for r in v.values()) if preset in T_FREE
                            else sum(r["seconds"] for r in v.values()), 1)
                   for k, v in side.items()}
        print(f"time: spiking {seconds['spiking']} s, ReLU tree {seconds['relu']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
