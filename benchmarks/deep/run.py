"""snnc (binary and graded spikes) vs SpikingJelly on VGG-16 and ResNet-20, cluttered digits.

    .venv/bin/python benchmarks/deep/data.py          # optional: make_models.py writes the data
    .venv/bin/python benchmarks/deep/make_models.py   # out/deep/{vgg16,resnet20}.onnx (~15 min)
    benchmarks/peers/setup_env.sh                     # optional: SpikingJelly's venv (~1 min)
    .venv/bin/python benchmarks/deep/run.py           # everything; tables; results.json
    .venv/bin/python benchmarks/deep/run.py --only vgg16 --skip-sj --skip-graded
    .venv/bin/python benchmarks/deep/run.py --only resnet20 --timesteps 1,4 --limit 200
    .venv/bin/python benchmarks/deep/run.py --resume   # keep finished cells of --out
    .venv/bin/python benchmarks/deep/run.py --sj-modes max ltb --sj-ltb-batches 4

Per model and T, one fresh child process

    .venv/bin/snnc eval out/deep/MODEL.onnx --data out/deep/test.npz --calib out/deep/calib.npz
        --timesteps T --json ... [--spike-bits 3] [--per-layer]

with the default preset (`calibrated`), once with binary spikes and once with graded spikes
(`--spike-bits 3`: up to 7 counts of theta per message), the latter skipped when the installed
snnc does not accept the flag or the eval fails. One process per T gives each T's wall time
(the default preset tunes and calibrates for each T anyway, so nothing is shared between Ts);
its full output is kept in out/deep/logs/. SpikingJelly (when benchmarks/peers/.venv exists and
--skip-sj is not given) runs sj_eval.py once per model: every mode of benchmarks/peers/sj_eval.py,
all T as prefixes of one max(T)-step run; "SJ best" is the best mode at each T, picked on the
test set itself (an upper bound on what a SpikingJelly user gets), its wall time that of the
whole SpikingJelly run of the model (all modes, all T).

Results go to out/deep/results.json (--out), rewritten after every cell, so an interrupted run
keeps what it finished and --resume continues it.
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

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "out" / "deep"
PEERS_PYTHON = ROOT / "benchmarks" / "peers" / ".venv" / "bin" / "python"
MODELS = ["vgg16", "resnet20"]
GRADED_BITS = 3
VARIANTS = {"binary": [], "graded": ["--spike-bits", str(GRADED_BITS)]}


def snnc_exe() -> str:
    exe = Path(sys.executable).with_name("snnc")
    return str(exe if exe.exists() else ROOT / ".venv" / "bin" / "snnc")


def accepts_spike_bits(snnc: str) -> bool:
    done = subprocess.run([snnc, "eval", "--help"], capture_output=True, text=True)
    return done.returncode == 0 and "--spike-bits" in done.stdout


def run_snnc(snnc: str, model: str, t: int, variant: str, data: Path, calib: Path,
             per_layer: bool, tmp: Path) -> dict[str, Any]:
    """One `snnc eval` at one T; its row, wall time and log (or the error)."""
    stem = f"{model}-{variant}-T{t}"
    out, log = tmp / f"{stem}.json", OUT / "logs" / f"{stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [snnc, "eval", str(OUT / f"{model}.onnx"), "--data", str(data), "--calib",
           str(calib), "--timesteps", str(t), "--json", str(out), *VARIANTS[variant],
           *(["--per-layer"] if per_layer else [])]
    t0 = time.perf_counter()
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    seconds = round(time.perf_counter() - t0, 1)
    if done.returncode != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        return {"error": f"exit {done.returncode}: {tail[0][:200]}", "seconds": seconds}
    report = json.loads(out.read_text())
    row = report["snn"][0]
    cell = {"accuracy": row["accuracy"], "seconds": seconds, "ann_accuracy":
            report["ann_accuracy"], "messages_per_sample": row.get("messages_per_sample"),
            "payload_per_sample": row.get("payload_per_sample"),
            "spike_bits": row.get("spike_bits", 1), "settings": report.get("settings", {})}
    timing = [line for line in log.read_text().splitlines() if line.startswith("time ")]
    if timing:  # snnc's own breakdown: ANN, compile (tuning, calibration), test simulation
        cell["time_breakdown"] = timing[-1]
    if per_layer:
        cell["per_layer"] = report.get("per_layer", [])
    return cell


def run_sj(model: str, ts: list[int], data: Path, calib: Path, tmp: Path,
           extra: list[str]) -> dict[str, Any]:
    out = tmp / f"sj_{model}.json"
    log = OUT / "logs" / f"{model}-sj.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(PEERS_PYTHON), str(HERE / "sj_eval.py"), "--models", model, "--timesteps",
           ",".join(map(str, ts)), "--data", str(data), "--calib", str(calib), "--out",
           str(out), *extra]
    t0 = time.perf_counter()
    with log.open("w") as f:  # stderr: SpikingJelly's progress bars
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL)
    seconds = round(time.perf_counter() - t0, 1)
    if done.returncode != 0 or not out.exists():
        return {"error": f"sj_eval.py exit {done.returncode} (see {log})", "seconds": seconds}
    r = json.loads(out.read_text())[model]
    modes = r["modes"]
    best = {str(t): max(modes, key=lambda m, t=t: modes[m][str(t)]) for t in ts}
    return {"modes": modes, "best_mode": best,
            "best": {t: modes[m][t] for t, m in best.items()}, "seconds": seconds,
            "ann_accuracy_torch": r["ann_accuracy"], "delay_start": r.get("delay_start", {})}


def subset(src: Path, n: int | None, tmp: Path) -> Path:
    if n is None:
        return src
    with np.load(src) as f:
        x, y = f["x"][:n], f["y"][:n]
    path = tmp / f"{src.stem}_{n}.npz"
    np.savez(path, x=x, y=y)
    return path


def fmt(v: float | None) -> str:
    return f"{100 * v:6.2f}" if v is not None else "     -"


def table(name: str, r: dict[str, Any], ts: list[int]) -> str:
    meta = r.get("meta", {})
    ann = next((c["ann_accuracy"] for v in r["snnc"].values() for c in v.values()
                if "ann_accuracy" in c), meta.get("ann_test_accuracy"))
    sj = r.get("sj", {})
    head = (f"{name} (width {meta.get('width', '?')}, {r.get('samples', '?')} test samples): "
            f"ANN {fmt(ann).strip()}% (onnxruntime); times: wall seconds per snnc eval "
            "(one T), SJ: whole run (all modes, all T)")
    lines = [head, f"{'T':>3} {'ANN':>6} {'binary':>6} {'graded':>6} {'SJbest':>6}  "
             f"{'SJ mode':<14} {'t_bin':>7} {'t_grd':>7} {'t_SJ':>7}"]
    for t in ts:
        b, g = r["snnc"].get("binary", {}).get(str(t), {}), r["snnc"].get("graded", {}).get(
            str(t), {})
        sj_best = sj.get("best", {}).get(str(t))
        mode = sj.get("best_mode", {}).get(str(t), "")
        t_sj = sj.get("seconds", "-") if t == ts[0] else ""
        lines.append(f"{t:>3} {fmt(ann)} {fmt(b.get('accuracy'))} {fmt(g.get('accuracy'))} "
                     f"{fmt(sj_best)}  {mode:<14} {b.get('seconds', '-'):>7} "
                     f"{g.get('seconds', '-'):>7} {t_sj:>7}")
    errors = [f"  {v} T={t}: {c['error']}" for v, cells in r["snnc"].items()
              for t, c in cells.items() if "error" in c]
    if "error" in sj:
        errors.append(f"  SJ: {sj['error']}")
    return "\n".join(lines + errors)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=MODELS, default=MODELS)
    p.add_argument("--timesteps", default="1,2,4,8,16,32")
    p.add_argument("--skip-sj", action="store_true", help="no SpikingJelly run")
    p.add_argument("--sj-modes", nargs="+", choices=["max", "99.9%-ch-half", "ltb"],
                   help="SpikingJelly modes (default: all of sj_eval.py's)")
    p.add_argument("--sj-ltb-batches", help="LTB calibration batch sizes (default 16,4,1)")
    p.add_argument("--skip-graded", action="store_true", help=f"no --spike-bits {GRADED_BITS}")
    p.add_argument("--skip-binary", action="store_true", help="no binary-spike snnc run")
    p.add_argument("--per-layer", action="store_true", help="pass --per-layer to snnc eval "
                   "(kept in results.json and the logs)")
    p.add_argument("--limit", type=int, help="only the first N test samples")
    p.add_argument("--out", type=Path, default=OUT / "results.json")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished cells of --out (same data and T assumed)")
    args = p.parse_args()
    ts = sorted({int(t) for t in args.timesteps.split(",")})
    snnc = snnc_exe()
    variants = [v for v, skip in (("binary", args.skip_binary), ("graded", args.skip_graded))
                if not skip]
    if "graded" in variants and not accepts_spike_bits(snnc):
        print(f"{snnc} eval has no --spike-bits: graded spikes skipped")
        variants.remove("graded")
    sj_on = not args.skip_sj and PEERS_PYTHON.exists()
    if not args.skip_sj and not sj_on:
        print(f"{PEERS_PYTHON} is missing (benchmarks/peers/setup_env.sh): SpikingJelly skipped")
    sj_extra = ((["--modes", *args.sj_modes] if args.sj_modes else [])
                + (["--ltb-batches", args.sj_ltb_batches] if args.sj_ltb_batches else []))
    meta_path = OUT / "models" / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    results: dict[str, Any] = (json.loads(args.out.read_text())
                               if args.resume and args.out.exists() else {})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = subset(OUT / "test.npz", args.limit, tmp)
        calib = OUT / "calib.npz"
        with np.load(data) as f:
            samples = len(f["y"])
        for name in args.only:
            if not (OUT / f"{name}.onnx").exists():
                sys.exit(f"{OUT / name}.onnx is missing: run make_models.py first")
            r = results.setdefault(name, {"snnc": {}})
            r.update(meta=meta.get(name, {}), samples=samples)
            if sj_on and not (args.resume and "best" in r.get("sj", {})):
                print(f"{name}: SpikingJelly ...", flush=True)
                r["sj"] = run_sj(name, ts, data, calib, tmp, sj_extra)
                args.out.write_text(json.dumps(results, indent=1) + "\n")
            for variant in variants:
                cells = r["snnc"].setdefault(variant, {})
                for t in ts:
                    if args.resume and "accuracy" in cells.get(str(t), {}):
                        continue
                    print(f"{name}: snnc eval {variant} T={t} ...", end=" ", flush=True)
                    cell = run_snnc(snnc, name, t, variant, data, calib, args.per_layer, tmp)
                    cells[str(t)] = cell
                    print(cell.get("error") or f"{fmt(cell['accuracy']).strip()}%, "
                          f"{cell['seconds']} s", flush=True)
                    args.out.write_text(json.dumps(results, indent=1) + "\n")
                    if variant == "graded" and "error" in cell and t == ts[0]:
                        print(f"  graded spikes skipped for {name}")
                        break
    results["_settings"] = {"snnc": "snnc eval, default preset", "graded_bits": GRADED_BITS,
                            "snnc_tree": git_state(), "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print()
    for name in args.only:
        print(table(name, results[name], ts) + "\n")
    print(f"wrote {args.out}")


def git_state() -> str:
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
