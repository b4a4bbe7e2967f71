"""SpikingJelly 2.0.0 ann2snn on the deep benchmark's models, per T (SpikingJelly's venv only).

    benchmarks/peers/.venv/bin/python benchmarks/deep/sj_eval.py --out /tmp/sj_deep.json
    benchmarks/peers/.venv/bin/python benchmarks/deep/sj_eval.py --models vgg16 \
        --data out/deep/test.npz --timesteps 1,2,4 --out /tmp/sj_deep.json

run.py calls this; it needs benchmarks/peers/setup_env.sh and make_models.py first. It is
benchmarks/peers/sj_eval.py's machinery (its recipes: max, 99.9%-ch-half, ltb-b16/b4/b1 and
their +delay readouts; its simulation: the same analog image every step, output summed over
steps, every T a prefix of one max(T)-step run) with the models rebuilt by nets.build(name,
width) from out/deep/models/<name>.pt and the width recorded in out/deep/models/meta.json.
Output JSON: {model: {"ann_accuracy", "sj_input", "modes": {mode: {T: acc}}, "delay_start",
"seconds"}, "_settings": {...}}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "out" / "deep"
sys.path.insert(0, str(HERE))
import nets  # noqa: E402  (puts benchmarks/peers on sys.path for models_def)

_spec = importlib.util.spec_from_file_location("peers_sj_eval",
                                               ROOT / "benchmarks" / "peers" / "sj_eval.py")
assert _spec is not None and _spec.loader is not None
peers_sj = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers_sj)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(nets.MODELS), default=list(nets.MODELS))
    p.add_argument("--timesteps", default="1,2,4,8,16,32")
    p.add_argument("--data", type=Path, default=OUT / "test.npz")
    p.add_argument("--calib", type=Path, default=OUT / "calib.npz")
    p.add_argument("--weights", type=Path, default=OUT / "models")
    p.add_argument("--modes", nargs="+", choices=["max", "99.9%-ch-half", "ltb"],
                   default=["max", "99.9%-ch-half", "ltb"])
    p.add_argument("--ltb-batches", default="16,4,1",
                   help="LTB calibration batch sizes, one mode each")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    peers_sj.quiet_logs()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    meta = json.loads((args.weights / "meta.json").read_text())
    # sj_eval.evaluate_model builds the torch module through its module-level build(name)
    peers_sj.build = lambda name: nets.build(name, meta[name]["width"])
    ts = sorted({int(t) for t in args.timesteps.split(",")})
    x, y = peers_sj.load_npz(args.data)
    calib, _ = peers_sj.load_npz(args.calib)
    data = {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}
    batches = [int(b) for b in args.ltb_batches.split(",")]
    make_recipes = {m: r for m, r in peers_sj.recipes(calib, batches, 1).items()
                    if m.split("-b")[0] in args.modes}
    print(f"{'model':>16} {'mode':>14}: T = " + " ".join(f"{t:>6}" for t in ts), flush=True)
    results: dict[str, Any] = {}
    for name in args.models:
        t0 = time.perf_counter()
        results[name] = peers_sj.evaluate_model(name, data, ts, make_recipes, calib,
                                                args.weights)
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
        results[name]["width"] = meta[name]["width"]
    results["_settings"] = {"ltb_batches": batches, "calibration_images": len(calib),
                            "test_images": len(x), "threads": args.threads}
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
