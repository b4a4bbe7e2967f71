"""Build the real-size models for checking the Loihi lowering, exported to out/loihi_scale/.

    .venv/bin/python benchmarks/loihi_scale/make_models.py  # all three (~10 min, 2 cores)
    .venv/bin/python benchmarks/loihi_scale/make_models.py --only resnet20
    .venv/bin/python benchmarks/loihi_scale/make_models.py --only vgg16 --width 0.5
    .venv/bin/python benchmarks/loihi_scale/run.py                    # then compile them all

Models (TorchScript exporter, opset 13, BatchNormalization kept as nodes, input "input" with a
dynamic batch axis, output "logits"), each checked against onnxruntime after export:

* vgg16.onnx: VGG-16 on 1x32x32 digits: 13 conv3x3-BN-ReLU (64,64,M,128,128,M,256x3,M,512x3,M,
  512x3,M; M = MaxPool2d(2)), the five pools end at 1x1, then Flatten -> Linear(512, 10).
  `--width W` scales every conv width (W != 1 writes vgg16_w<W>.onnx instead).
* resnet20.onnx: CIFAR ResNet-20 on 1x32x32 digits: conv3x3(16)-BN-ReLU stem, 3 stages x 3
  BasicBlocks (16/32/64 channels, 32->16->8 px; 1x1 stride-2 conv + BN shortcut where the shape
  changes, identity otherwise; residual Add, then ReLU), global average pool, Linear(64, 10).
* resnet18_224.onnx: torchvision-layout ResNet-18 on 3x224x224 (7x7 stride-2 stem, MaxPool 3x3
  stride 2 pad 1, 4 stages x 2 BasicBlocks 64/128/256/512, GAP, Linear(512, 1000)), RANDOM weights
  (no training, no torchvision, no downloads). Its BatchNorm statistics are those of its own
  random calibration images (a train-mode pass, then random affine parameters), so every layer
  sees O(1) activations rather than ones that vanish with depth. Calibration file:
  out/loihi_scale/calib224.npz (x: 8 samples, float32 [8,3,224,224], N(0,1)).

Data for the 32x32 models is the peer benchmark's (benchmarks/peers/make_models.py, imported):
sklearn digits, 1257 train / 540 test, upsampled bilinearly to 32x32 and standardised.
out/loihi_scale/calib.npz and test.npz are copies of tests/data/heldout/digits32_{calib,test}.npz
(x float32 [N,1,32,32], y int64; 256 calibration / 540 test images); the held-out files are
written first by the peers' load_split() if they are missing. The 32x32 models are trained with
the peers' train() (Adam, one-cycle, batch 64, fixed seeds, deterministic algorithms).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = ROOT / "benchmarks" / "peers"
sys.path.insert(0, str(PEERS))  # peers' make_models.py imports its sibling models_def
from models_def import BasicBlock, conv_bn  # noqa: E402

# loaded by path: this file has the same module name
_spec = importlib.util.spec_from_file_location("peers_make_models", PEERS / "make_models.py")
assert _spec is not None and _spec.loader is not None
peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peers)

OUT = ROOT / "out" / "loihi_scale"
HELDOUT = ROOT / "tests" / "data" / "heldout"
VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                              512, 512, 512, "M", 512, 512, 512, "M"]
# per trained model: (seed, epochs, peak lr)
RECIPES: dict[str, tuple[int, int, float]] = {
    "vgg16": (11, 5, 2e-3),
    "resnet20": (12, 8, 3e-3),
}
CALIB224 = 8


def vgg16(width: float = 1.0, in_ch: int = 1, classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_ch
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            out = max(1, round(int(v) * width))
            layers += [*conv_bn(c, out), nn.ReLU()]
            c = out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, classes))


def _resnet(stem: list[nn.Module], c: int, stages: list[tuple[int, int, int]],
            classes: int) -> nn.Sequential:
    """stem, then per stage (width, blocks, stride of its first block), GAP, Linear."""
    layers = list(stem)
    for width, blocks, stride in stages:
        for k in range(blocks):
            layers.append(BasicBlock(c, width, stride if k == 0 else 1, "relu", 0, "old"))
            c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def resnet20(in_ch: int = 1, classes: int = 10) -> nn.Sequential:
    return _resnet([*conv_bn(in_ch, 16), nn.ReLU()], 16, [(16, 3, 1), (32, 3, 2), (64, 3, 2)],
                   classes)


def resnet18(in_ch: int = 3, classes: int = 1000) -> nn.Sequential:
    stem = [*conv_bn(in_ch, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]  # conv pad 3
    return _resnet(stem, 64, [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], classes)


def export(model: nn.Module, path: Path, shape: tuple[int, ...]) -> None:
    """TorchScript exporter, opset 13, no constant folding (BN stays as nodes)."""
    model.eval()
    with warnings.catch_warnings():  # dynamo=False is deliberate: opset 13, no dynamo
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, *shape),), str(path), dynamo=False,
                          opset_version=13, training=torch.onnx.TrainingMode.EVAL,
                          do_constant_folding=False, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def describe(path: Path) -> str:
    g = onnx.load(str(path)).graph
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return (f"{path.stat().st_size / 1e6:.1f} MB, "
            + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))


def make_trained(name: str, data: tuple[np.ndarray, ...], width: float) -> float:
    x_train, x_test, y_train, y_test = data
    seed, epochs, lr = RECIPES[name]
    torch.manual_seed(seed)
    model = vgg16(width) if name == "vgg16" else resnet20()
    stem = name if name != "vgg16" or width == 1.0 else f"vgg16_w{width:g}"
    t0 = time.perf_counter()
    print(f"{stem}: {sum(p.numel() for p in model.parameters())} parameters, "
          f"{epochs} epochs", flush=True)
    peers.train(model, x_train, y_train, seed, epochs, lr)
    path = OUT / f"{stem}.onnx"
    export(model, path, x_train.shape[1:])
    acc = peers.check_export(model, path, x_test, y_test)  # raises if ORT disagrees
    print(f"{stem}: test accuracy {100 * acc:.2f}% (onnxruntime, {len(y_test)} images), "
          f"{time.perf_counter() - t0:.0f} s; {describe(path)}", flush=True)
    return acc


@torch.no_grad()
def make_resnet18_224() -> None:
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = resnet18()
    x = np.random.default_rng(0).standard_normal((CALIB224, 3, 224, 224), dtype=np.float32)
    # BN statistics from the calibration images themselves (cumulative average over one
    # train-mode pass), then random affine parameters so folding the BN is not a no-op
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    model(torch.from_numpy(x))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
    model.eval()
    np.savez_compressed(OUT / "calib224.npz", x=x)
    path = OUT / "resnet18_224.onnx"
    export(model, path, x.shape[1:])
    ref = model(torch.from_numpy(x[:2])).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x[:2]})[0]
    rel = float(np.abs(ref - got).max() / np.abs(ref).max())
    if rel > 1e-4:
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch (rel {rel:.2g})")
    print(f"resnet18_224: {sum(p.numel() for p in model.parameters())} parameters, random "
          f"weights, ORT vs torch rel err {rel:.1e}, {time.perf_counter() - t0:.0f} s; "
          f"{describe(path)}", flush=True)


def main() -> None:
    choices = ["vgg16", "resnet20", "resnet18_224"]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=choices, default=choices)
    p.add_argument("--width", type=float, default=1.0, help="VGG-16 width multiplier")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = peers.load_split()
    for split, x, y in (("calib", data[0][:peers.NUM_CALIB], data[2][:peers.NUM_CALIB]),
                        ("test", data[1], data[3])):
        src = HELDOUT / f"digits32_{split}.npz"
        if not src.exists():
            peers.save_npz(src, x, y)
        with np.load(src) as f:  # the held-out file is what the other benchmarks use
            if f["x"].shape != x.shape or not np.allclose(f["x"], x, atol=1e-6):
                print(f"warning: {src} differs from peers.load_split()'s {split} split")
        shutil.copyfile(src, OUT / f"{split}.npz")
    print(f"data: {len(data[0])} train / {len(data[1])} test; {OUT}/calib.npz, test.npz",
          flush=True)
    for name in args.only:
        if name == "resnet18_224":
            make_resnet18_224()
        else:
            make_trained(name, data, args.width)
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
