"""Convert the peer-benchmark models with SpikingJelly 2.0.0's ann2snn and measure accuracy per T.

Runs in benchmarks/peers/.venv (setup_env.sh), never in snnc's venv:

    benchmarks/peers/.venv/bin/python benchmarks/peers/sj_eval.py --out /tmp/sj.json

For each model it rebuilds the torch module (models_def.py), loads the weights make_models.py
saved, converts with each SpikingJelly recipe below (calibration data: digits32_calib.npz), and
simulates the 540 test images for max(T) steps, feeding the same analog image every step and
summing the output layer over the steps. One run gives every T as a prefix (the network is
causal and reset only before each batch). Output JSON:

    {model: {"ann_accuracy": a, "sj_input": "...", "modes": {mode: {T: accuracy}},
             "delay_start": {T: d}}}

SpikingJelly converts only `nn.ReLU` modules, so QCFS and clip models are given to it as their
"ReLU twin" (same weights, every QCFS/clip activation replaced by nn.ReLU); its recipes then
calibrate thresholds from data as for any ReLU net. `ann_accuracy` is the original model's.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from models_def import MODELS, build
from spikingjelly.activation_based import ann2snn, functional
from torch import nn

HERE = Path(__file__).resolve().parent
HELDOUT = HERE.parents[1] / "tests" / "data" / "heldout"
TEST_BATCH = 270


class Batches:
    """A re-iterable calibration loader over an array, `repeats` passes of `batch` images."""

    def __init__(self, x: np.ndarray, batch: int, repeats: int = 1) -> None:
        self.x, self.batch, self.repeats = torch.from_numpy(x), batch, repeats

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _ in range(self.repeats):
            for i in range(0, len(self.x), self.batch):
                yield self.x[i:i + self.batch]

    def __len__(self) -> int:
        return self.repeats * -(-len(self.x) // self.batch)


def recipes(calib: np.ndarray, ltb_batches: list[int],
            ltb_repeats: int) -> dict[str, Callable[[], Any]]:
    """SpikingJelly modes by name. The percentile modes see the whole calibration set as one
    batch (their hooks keep an EMA over batches; one batch gives the exact percentile)."""
    whole = Batches(calib, len(calib))
    modes: dict[str, Callable[[], Any]] = {
        # layer-wise max norm, IF neurons starting at 0 (SpikingJelly's classic mode)
        "max": lambda: ann2snn.RateCodingRecipe(dataloader=whole, mode="max"),
        # per-channel 99.9% percentile, θ/2 start, MaxPool moved before the neuron: the settings
        # of SpikingJelly's own ImageNet example (examples/imagenet_resnet18_ltb.py, "robust")
        "99.9%-ch-half": lambda: ann2snn.RateCodingRecipe(
            dataloader=whole, mode="99.9%", fuse_flag=True, channel_wise=True,
            pre_spike_maxpool=True, half_threshold=True),
    }
    # local threshold balancing (Bu, Li, Yu, CVPR 2025): per-channel thresholds that start at 0
    # and grow by 2·mean(overflow) per calibration batch, θ/2 start, MaxPool before the neuron.
    # The result depends on the number of batches (SpikingJelly's examples use ~400-600
    # batches of ~100 images); with 256 calibration images no batch size is best for every
    # model, so several are run and the best SJ mode is taken per T.
    for b in ltb_batches:
        loader = Batches(calib, b, ltb_repeats)
        modes[f"ltb-b{b}"] = lambda loader=loader: ann2snn.LocalThresholdBalancingRecipe(
            dataloader=loader, fuse_flag=True)
    return modes


def relu_twin(model: nn.Module) -> tuple[nn.Module, bool]:
    """A copy with every non-ReLU activation module replaced by nn.ReLU (and whether any was)."""
    twin, changed = copy.deepcopy(model), False
    for parent in twin.modules():
        for name, child in parent.named_children():
            if type(child).__name__ in ("QCFS", "TrainableClip"):
                setattr(parent, name, nn.ReLU())
                changed = True
    return twin, changed


@torch.no_grad()
def ann_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


@torch.no_grad()
def step_outputs(snn: nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The output layer at each step, [steps, N, classes], the same image fed every step."""
    snn.eval()
    outs = []
    for i in range(0, len(x), TEST_BATCH):
        functional.reset_net(snn)
        outs.append(torch.stack([snn(x[i:i + TEST_BATCH]) for _ in range(steps)]))
    functional.reset_net(snn)
    return torch.cat(outs, dim=1)


def accuracy_per_t(outs: torch.Tensor, y: torch.Tensor, ts: list[int],
                   start: dict[int, int] | None = None) -> dict[int, float]:
    """Accuracy of argmax(sum of outputs over steps [start(T), T)) for each T."""
    acc = {}
    for t in ts:
        s = 0 if start is None else start[t]
        acc[t] = float((outs[s:t].sum(0).argmax(1) == y).float().mean())
    return acc


def evaluate_model(name: str, data: dict[str, torch.Tensor], ts: list[int],
                   make_recipes: dict[str, Callable[[], Any]], calib: np.ndarray,
                   weights: Path) -> dict[str, Any]:
    model = build(name)
    model.load_state_dict(torch.load(weights / f"{name}.pt", weights_only=True))
    model.eval()
    twin, changed = relu_twin(model)
    x, y = data["x"], data["y"]
    result: dict[str, Any] = {
        "ann_accuracy": ann_accuracy(model, x, y),
        "sj_input": "ReLU twin of the model" if changed else "the model itself",
        "modes": {}, "delay_start": {},
    }
    if changed:
        result["ann_relu_twin_accuracy"] = ann_accuracy(twin, x, y)
    for mode, make_recipe in make_recipes.items():
        snn = ann2snn.Converter(recipe=make_recipe(), device="cpu").convert(copy.deepcopy(twin))
        outs = step_outputs(snn, x, max(ts))
        result["modes"][mode] = accuracy_per_t(outs, y, ts)
        if mode.startswith("ltb"):
            # SpikingJelly's delayed readout (estimate_delay_start, its ImageNet example's
            # default): drop the first d(T) steps' outputs, d estimated on calibration data
            delay = {t: ann2snn.estimate_delay_start(snn, Batches(calib, 64), "cpu", t)
                     for t in ts}
            result["delay_start"][mode] = delay
            result["modes"][f"{mode}+delay"] = accuracy_per_t(outs, y, ts, delay)
    for mode, acc in result["modes"].items():
        print(f"{name:>16} {mode:>14}: " + " ".join(f"{100 * a:6.2f}" for a in acc.values()),
              flush=True)
    return result


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return f["x"].astype(np.float32), f["y"].astype(np.int64)


def quiet_logs() -> None:
    """SpikingJelly logs every conversion through loguru; keep the output for results."""
    try:
        from loguru import logger
        logger.remove()
    except ImportError:
        logging.getLogger("spikingjelly").setLevel(logging.WARNING)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--timesteps", default="1,2,4,8,16,32")
    p.add_argument("--data", type=Path, default=HELDOUT / "digits32_test.npz")
    p.add_argument("--calib", type=Path, default=HELDOUT / "digits32_calib.npz")
    p.add_argument("--weights", type=Path, default=HERE / "models")
    p.add_argument("--modes", nargs="+", choices=["max", "99.9%-ch-half", "ltb"],
                   default=["max", "99.9%-ch-half", "ltb"])
    p.add_argument("--ltb-batches", default="16,4,1",
                   help="LTB calibration batch sizes, one mode each")
    p.add_argument("--ltb-repeats", type=int, default=1,
                   help="passes over the calibration set for LTB")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    quiet_logs()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ts = sorted({int(t) for t in args.timesteps.split(",")})
    x, y = load_npz(args.data)
    calib, _ = load_npz(args.calib)
    data = {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}
    batches = [int(b) for b in args.ltb_batches.split(",")]
    make_recipes = {m: r for m, r in recipes(calib, batches, args.ltb_repeats).items()
                    if m.split("-b")[0] in args.modes}
    print(f"{'model':>16} {'mode':>14}: T = " + " ".join(f"{t:>6}" for t in ts))
    results = {name: evaluate_model(name, data, ts, make_recipes, calib, args.weights)
               for name in args.models}
    results["_settings"] = {"ltb_batches": batches, "ltb_repeats": args.ltb_repeats,
                            "calibration_images": len(calib), "test_images": len(x)}
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
