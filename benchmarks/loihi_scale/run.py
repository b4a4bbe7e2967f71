"""Compile the real-size models for the Lava/Loihi targets; wall time and peak memory of each.

    .venv/bin/python benchmarks/loihi_scale/make_models.py   # first: out/loihi_scale/*.onnx
    .venv/bin/python benchmarks/loihi_scale/run.py
    .venv/bin/python benchmarks/loihi_scale/run.py --only vgg16 resnet20 --targets loihi,lif
    .venv/bin/python benchmarks/loihi_scale/run.py --json out/loihi_scale/results.json
    .venv/bin/python benchmarks/loihi_scale/run.py --snnc /path/to/wrapper  # another checkout

Models: every out/loihi_scale/*.onnx plus tests/data/heldout/{vgg11_maxpool,resnet_small}.onnx.
Each (model, target) is one fresh child process

    .venv/bin/snnc compile MODEL --target T --calib C --timesteps 8 --norm percentile:99.99
        --per-channel --calibrate none -o out/loihi_scale/NAME-TARGET[-TAG].snn

with targets loihi (`--target loihi`), lava (`--target lava`) and lif (`--target loihi
--neuron lif`). C is out/loihi_scale/calib224.npz for models named *_224, else
tests/data/heldout/digits32_calib.npz. The child's peak RSS comes from os.wait4 (the rusage of
that one child and the children it waited for, as /usr/bin/time -v reports it); wall time is
measured around it. The full output of each compile is kept in out/loihi_scale/logs/; the table
shows its exit code, the neurocores and chips from its "total: ..." line, and its last lines.
A failing compile is reported, not raised (exit 6 = the network is refused for the target);
run.py exits 0 unless --strict is given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out" / "loihi_scale"
HELDOUT = ROOT / "tests" / "data" / "heldout"
EXTRA = [HELDOUT / "vgg11_maxpool.onnx", HELDOUT / "resnet_small.onnx"]
TARGETS: dict[str, list[str]] = {
    "loihi": ["--target", "loihi"],
    "lava": ["--target", "lava"],
    "lif": ["--target", "loihi", "--neuron", "lif"],
}
COMMON = ["--timesteps", "8", "--norm", "percentile:99.99", "--per-channel",
          "--calibrate", "none"]
LAST = "last lines of the compile output"
TOTAL = re.compile(r"total:\s*(\d+)\s+neurocores?\s+on\s+(\d+)\s+Loihi", re.IGNORECASE)


def models(only: list[str] | None) -> list[Path]:
    found = sorted(OUT.glob("*.onnx")) + [p for p in EXTRA if p.exists()]
    if only:
        by_name = {p.stem: p for p in found}
        missing = [n for n in only if n not in by_name]
        if missing:
            sys.exit(f"no such model(s) {missing}; have {sorted(by_name)}")
        found = [by_name[n] for n in only]
    return found


def calib_for(model: Path) -> Path:
    if model.stem.endswith("_224"):
        return OUT / "calib224.npz"
    return HELDOUT / "digits32_calib.npz"


def default_snnc() -> str:
    exe = Path(sys.executable).with_name("snnc")
    return str(exe if exe.exists() else ROOT / ".venv" / "bin" / "snnc")


def compile_one(model: Path, target: str, timeout: float, snnc: str, tag: str) -> dict:
    stem = f"{model.stem}-{target}" + (f"-{tag}" if tag else "")
    out, log = OUT / f"{stem}.snn", OUT / "logs" / f"{stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [snnc, "compile", str(model), *TARGETS[target], "--calib", str(calib_for(model)),
           *COMMON, "-o", str(out)]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)
        timed_out = False
        while True:  # os.wait4, not proc.wait(): it returns this child's own rusage
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout and not timed_out:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    text = log.read_text(errors="replace")
    total = TOTAL.findall(text)
    cores, chips = (int(total[-1][0]), int(total[-1][1])) if total else (None, None)
    return {"model": model.stem, "target": target, "rc": proc.returncode,
            "timed_out": timed_out, "wall_s": wall,
            "peak_gib": usage.ru_maxrss / 2**20,  # Linux: KiB
            "cores": cores, "chips": chips,
            "artifact_mb": out.stat().st_size / 1e6 if out.exists() else None,
            "log": str(log.relative_to(ROOT)), "command": cmd,
            "tail": [ln for ln in text.splitlines()[1:] if ln.strip()][-12:]}


def fmt(v: object, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", metavar="NAME", help="model file stems (comma or space "
                   "separated), e.g. vgg16 resnet20")
    p.add_argument("--targets", default="loihi,lava,lif",
                   help="comma-separated subset of loihi,lava,lif (default: all three)")
    p.add_argument("--tail", type=int, default=3, help="compile output lines shown per run")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per compile")
    p.add_argument("--snnc", default=default_snnc(),
                   help="snnc executable (default: the one beside this Python, i.e. .venv's); "
                   "e.g. a wrapper running another checkout, for a before/after comparison")
    p.add_argument("--tag", default="", help="suffix for the .snn and log names "
                   "(NAME-TARGET-TAG), so runs of two checkouts do not overwrite each other")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--strict", action="store_true", help="exit 1 if any compile failed")
    args = p.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        p.error(f"unknown target(s) {bad}; choose from {list(TARGETS)}")
    only = [n for item in args.only for n in item.split(",") if n] if args.only else None
    paths = models(only)
    if not paths:
        sys.exit(f"no models in {OUT}: run benchmarks/loihi_scale/make_models.py first")
    results = []
    head = (f"{'model':<16} {'target':<6} {'rc':>4} {'wall s':>8} {'peak GiB':>8} "
            f"{'cores':>6} {'chips':>5}  {LAST}")
    print(head, flush=True)
    for model in paths:
        for target in targets:
            r = compile_one(model, target, args.timeout, args.snnc, args.tag)
            results.append(r)
            rc = "T/O" if r["timed_out"] else str(r["rc"])
            tail = r["tail"][-args.tail:] if args.tail > 0 else []
            print(f"{r['model']:<16} {target:<6} {rc:>4} {r['wall_s']:8.1f} "
                  f"{r['peak_gib']:8.2f} {fmt(r['cores']):>6} {fmt(r['chips']):>5}  "
                  + (tail[0][:200] if tail else ""), flush=True)
            for line in tail[1:]:
                print(" " * (len(head) - len(LAST)) + line[:200], flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    failed = [r for r in results if r["rc"] != 0]
    print(f"{len(results) - len(failed)}/{len(results)} compiled; logs in "
          f"{(OUT / 'logs').relative_to(ROOT)}/")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
