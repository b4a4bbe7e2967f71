"""The NumPy bit-exact `loihi` mode against the float simulator, side by side in one run: time per
sample per time step of each, their ratio, and the test accuracy of each at the same T.

    .venv/bin/python benchmarks/loihi_speed.py [--timesteps 8] [--repeats 1] [--limit N]
        [--engine fast] [--memory 540,2160] [--json FILE] [MODEL ...]

Models (default): tests/data/heldout/{vgg11_maxpool,resnet_small}.onnx and
out/loihi_scale/{vgg16,resnet20}.onnx (if present; benchmarks/loihi_scale/make_models.py) on
tests/data/heldout/digits32_{calib,test}.npz, and examples/digits/model.onnx on
examples/digits/{calib,test}.npz. Each is compiled twice with the same conversion,

    snnc.compile(model, calib=C, timesteps=T, norm="percentile:99.99", per_channel=True,
                 calibrate="none", neuron="if", target="numpy" | "loihi")

(IF neurons with reset by subtraction: what the Loihi target runs), and the whole test set is
simulated for T steps by the float simulator (`simulate`, the fast engine unless --engine) and
by the loihi mode (`simulate_loihi`, no rasters), alternating, --repeats times each; medians of
wall-clock and of CPU time (this process, all threads) are reported per sample-step. On a
shared machine the CPU ratio is the steadier one.
--memory N1,N2 also saves each compiled loihi network and runs it, in a fresh child process per
size that loads it, on the test set tiled to N1, then N2 samples, printing the child's peak RSS
before and after the run: it should not grow with N (batches run in chunks; only outputs and
per-sample counts are kept).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "tests" / "data" / "heldout"
DIGITS = ROOT / "examples" / "digits"
SCALE = ROOT / "out" / "loihi_scale"
DIGITS32 = (HELDOUT / "digits32_calib.npz", HELDOUT / "digits32_test.npz")
MODELS: list[tuple[Path, tuple[Path, Path]]] = [
    (DIGITS / "model.onnx", (DIGITS / "calib.npz", DIGITS / "test.npz")),
    (HELDOUT / "vgg11_maxpool.onnx", DIGITS32),
    (HELDOUT / "resnet_small.onnx", DIGITS32),
    (SCALE / "vgg16.onnx", DIGITS32),
    (SCALE / "resnet20.onnx", DIGITS32),
]


def data_for(model: Path) -> tuple[Path, Path]:
    for path, data in MODELS:
        if path.resolve() == model.resolve():
            return data
    return DIGITS32


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return f["x"], f["y"]


def compile_both(model: Path, calib: Path, timesteps: int) -> tuple[object, object, float]:
    import snnc

    kw = {"calib": calib, "timesteps": timesteps, "norm": "percentile:99.99",
          "per_channel": True, "calibrate": "none", "neuron": "if"}
    t = time.perf_counter()
    flt = snnc.compile(model, target="numpy", **kw)
    fixed = snnc.compile(model, target="loihi", **kw)
    return flt, fixed, time.perf_counter() - t


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def measure(model: Path, timesteps: int, repeats: int, limit: int | None,
            engine: str) -> tuple[dict, object]:
    from snnc.backends.numpy import simulate
    from snnc.backends.numpy.loihi import simulate_loihi

    calib, test = data_for(model)
    x, y = _load(test)
    if limit:
        x, y = x[:limit], y[:limit]
    flt, fixed, compile_s = compile_both(model, calib, timesteps)
    # warm up: onnxruntime sessions, numba's compiled kernels
    simulate(flt.graph, x[:4], [2], engine=engine)
    simulate_loihi(fixed.graph, x[:4], [2], rasters=False)
    runs: dict[str, list] = {"float": [], "loihi": []}
    for _ in range(repeats):
        runs["float"].append(_timed(lambda: simulate(flt.graph, x, [timesteps],
                                                     batch_size=len(x), engine=engine)))
        runs["loihi"].append(_timed(lambda: simulate_loihi(fixed.graph, x, [timesteps],
                                                           batch_size=len(x), rasters=False)))
    steps = len(x) * timesteps
    r: dict = {"model": model.stem, "n": len(x), "T": timesteps, "compile_s": compile_s}
    for name, rs in runs.items():
        for k, kind in enumerate(("wall", "cpu")):
            r[f"{name}_{kind}_us"] = 1e6 * float(np.median([t[k] for t in rs])) / steps
    for kind in ("wall", "cpu"):
        r[f"ratio_{kind}"] = r[f"loihi_{kind}_us"] / r[f"float_{kind}_us"]
    pf = runs["float"][-1][2].outputs[0].reshape(len(x), -1).argmax(1)
    pl = runs["loihi"][-1][2].outputs[0].reshape(len(x), -1).argmax(1)
    r["float_acc"], r["loihi_acc"] = float((pf == y).mean()), float((pl == y).mean())
    r["delta_points"] = 100 * (r["loihi_acc"] - r["float_acc"])
    r["agree"] = float((pf == pl).mean())
    return r, fixed


def _child(artifact: str, test: str, n: int, timesteps: int) -> None:
    """--memory's child: load the compiled network, warm up, one loihi-mode run on n samples
    (the test set, tiled); the peak RSS before and after that run."""
    import snnc
    from snnc.backends.numpy.loihi import simulate_loihi

    x, _ = _load(Path(test))
    x = np.resize(x, (n, *x.shape[1:]))
    graph = snnc.load(artifact).graph
    simulate_loihi(graph, x[:4], [2], rasters=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    simulate_loihi(graph, x, [timesteps], rasters=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "rss_before_mib": before, "rss_after_mib": after,
                      "run_s": time.perf_counter() - t}))


def memory(fixed: object, test: Path, sizes: list[int], timesteps: int) -> list[dict]:
    """Each size in a fresh child that loads the saved network (no compile in its peak)."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "net.snn"
        fixed.save(artifact)  # type: ignore[attr-defined]
        for n in sizes:
            done = subprocess.run([sys.executable, __file__, "--child", str(artifact),
                                   str(test), str(n), str(timesteps)],
                                  capture_output=True, text=True, check=True)
            out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N test samples only")
    ap.add_argument("--engine", default="fast", help="the float simulator's engine")
    ap.add_argument("--memory", default="", help="N1,N2: peak RSS of a loihi-mode run on "
                    "N1 and N2 samples, in a child process")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))
        return 0
    models = args.models or [m for m, _ in MODELS if m.exists()]
    sizes = [int(s) for s in args.memory.split(",") if s.strip()]
    head = (f"{'model':<16}{'N':>5}{'T':>3} | {'float us':>9}{'loihi us':>10}{'ratio':>7}"
            f"{'(cpu)':>7} | {'float acc':>9}{'loihi acc':>10}{'delta':>7}{'agree':>7}")
    print(f"per sample-step (wall; CPU ratio in brackets), float = simulate(engine="
          f"{args.engine!r}), loihi = simulate_loihi; IF neurons, percentile:99.99")
    print(head)
    print("-" * len(head))
    results = []
    for model in models:
        r, fixed = measure(model, args.timesteps, args.repeats, args.limit, args.engine)
        if sizes:
            r["memory"] = memory(fixed, data_for(model)[1], sizes, args.timesteps)
        results.append(r)
        print(f"{r['model']:<16}{r['n']:>5}{r['T']:>3} | {r['float_wall_us']:>9.1f}"
              f"{r['loihi_wall_us']:>10.1f}{r['ratio_wall']:>7.2f}{r['ratio_cpu']:>7.2f} | "
              f"{100 * r['float_acc']:>8.2f}%{100 * r['loihi_acc']:>9.2f}%"
              f"{r['delta_points']:>+7.2f}{100 * r['agree']:>6.1f}%", flush=True)
        for m in r.get("memory", []):
            print(f"{'':<16}memory: N={m['n']}: peak RSS {m['rss_before_mib']:.0f} MiB "
                  f"before the run, {m['rss_after_mib']:.0f} MiB after ({m['run_s']:.1f} s)",
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
