"""snnc vs SpikingJelly 2.0.0 ann2snn on the same models and the same test images, per T.

    .venv/bin/python benchmarks/peers/run.py                     # ~15-25 min on 2 cores
    .venv/bin/python benchmarks/peers/run.py --models vgg11_maxpool --timesteps 1,4,32

Runs `snnc eval` (the CLI, default settings) on each tests/data/heldout/<model>.onnx, runs
sj_eval.py in benchmarks/peers/.venv on the same weights (models/<model>.pt), prints a table
per model and writes benchmarks/peers/results.json. Needs setup_env.sh and make_models.py first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HELDOUT = HERE.parents[1] / "tests" / "data" / "heldout"
PEERS_PYTHON = HERE / ".venv" / "bin" / "python"
SJ_RESULTS = "sj_results.json"  # sj_eval.py's raw output, beside --out
MODELS = ["vgg11_maxpool", "resnet_small", "vgg_qcfs_L4", "resnet_qcfs_L8", "vgg_clip"]
# the acceptance: on ReLU models snnc's default >= the best SpikingJelly mode at every T
RELU_MODELS = {"vgg11_maxpool", "resnet_small"}


def run_snnc(model: str, ts: str, tmp: Path) -> dict[str, Any]:
    out = tmp / f"snnc_{model}.json"
    snnc = Path(sys.executable).parent / "snnc"
    cmd = [str(snnc), "eval", str(HELDOUT / f"{model}.onnx"),
           "--data", str(HELDOUT / "digits32_test.npz"),
           "--calib", str(HELDOUT / "digits32_calib.npz"), "--timesteps", ts, "--json", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def run_sj(models: list[str], ts: str, out: Path) -> dict[str, Any]:
    """sj_eval.py in the peers venv; its raw output is kept in `out` for --reuse-sj."""
    if not PEERS_PYTHON.exists():
        sys.exit(f"{PEERS_PYTHON} is missing: run benchmarks/peers/setup_env.sh first")
    cmd = [str(PEERS_PYTHON), str(HERE / "sj_eval.py"), "--models", *models,
           "--timesteps", ts, "--out", str(out)]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)  # stderr: SJ's tqdm bars
    return json.loads(out.read_text())


def combine(snnc: dict[str, Any], sj: dict[str, Any]) -> dict[str, Any]:
    """One model's row set: per T, snnc's and every SJ mode's accuracy, snnc − best SJ."""
    rows = snnc["snn"] if "snn" in snnc else snnc["methods"][0]["snn"]
    snn = {str(r["timesteps"]): r["accuracy"] for r in rows}
    modes = {m: {str(t): a for t, a in acc.items()} for m, acc in sj["modes"].items()}
    best = {t: max(acc[t] for acc in modes.values()) for t in snn}
    return {
        "ann_accuracy": snnc["ann_accuracy"], "ann_accuracy_torch": sj["ann_accuracy"],
        "sj_input": sj["sj_input"], "snnc": snn, "snnc_settings": snnc.get("settings", {}),
        "snnc_spikes_per_sample": {str(r["timesteps"]): r.get("spikes_per_sample")
                                   for r in rows},
        "sj": modes, "sj_delay_start": sj.get("delay_start", {}),
        "snnc_minus_best_sj": {t: snn[t] - best[t] for t in snn},
        **({"ann_relu_twin_accuracy": sj["ann_relu_twin_accuracy"]}
           if "ann_relu_twin_accuracy" in sj else {}),
    }


def table(name: str, r: dict[str, Any]) -> str:
    cols = ["ANN", "snnc", *r["sj"], "snnc-bestSJ"]
    width = {c: max(len(c), 6) for c in cols}
    twin = (f" (its ANN: {100 * r['ann_relu_twin_accuracy']:.2f}%)"
            if "ann_relu_twin_accuracy" in r else "")
    lines = [f"{name}: ANN {100 * r['ann_accuracy']:.2f}% (onnxruntime); SpikingJelly "
             f"converts {r['sj_input']}{twin}",
             f"{'T':>3} " + " ".join(f"{c:>{width[c]}}" for c in cols)]
    for t, acc in r["snnc"].items():
        vals = [r["ann_accuracy"], acc, *(r["sj"][m][t] for m in r["sj"])]
        cells = [f"{100 * v:>{width[c]}.2f}" for c, v in zip(cols, vals, strict=False)]
        cells.append(f"{100 * r['snnc_minus_best_sj'][t]:>+{width[cols[-1]]}.2f}")
        lines.append(f"{t:>3} " + " ".join(cells))
    return "\n".join(lines)


def verdict(name: str, r: dict[str, Any]) -> str:
    behind = [t for t, d in r["snnc_minus_best_sj"].items() if d < 0]
    kind = "ReLU model, acceptance" if name in RELU_MODELS else "not a ReLU model, info"
    return f"{name} ({kind}): " + (
        "snnc >= best SpikingJelly mode at every T" if not behind
        else f"snnc behind the best SpikingJelly mode at T = {', '.join(behind)}")


def git_state() -> str:
    """The snnc source the numbers came from (commit, and -dirty for uncommitted edits)."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE,
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    p.add_argument("--timesteps", default="1,2,4,8,16,32")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    p.add_argument("--reuse-sj", action="store_true",
                   help=f"take SpikingJelly's numbers from {SJ_RESULTS} beside --out "
                   "(a previous run with the same models and T)")
    args = p.parse_args()
    sj_path = args.out.parent / SJ_RESULTS
    if args.reuse_sj:
        sj = json.loads(sj_path.read_text())
    else:
        print("SpikingJelly (benchmarks/peers/.venv) ...", flush=True)
        sj = run_sj(args.models, args.timesteps, sj_path)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results: dict[str, Any] = {}
        for name in args.models:
            print(f"snnc eval {name} ...", end=" ", flush=True)
            results[name] = combine(run_snnc(name, args.timesteps, tmp), sj[name])
            print(" ".join(f"T={t}: {100 * a:.2f}" for t, a in results[name]["snnc"].items()),
                  flush=True)
    results["_settings"] = {**sj.get("_settings", {}), "snnc": "snnc eval defaults",
                            "snnc_tree": git_state(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print()
    for name in args.models:
        print(table(name, results[name]) + "\n")
    for name in args.models:
        print(verdict(name, results[name]))
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
