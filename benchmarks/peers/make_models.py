"""Train the peer-benchmark models on digits upsampled to 32x32 and export them to ONNX.

    .venv/bin/python benchmarks/peers/make_models.py            # all models (~5-10 min, 2 cores)
    .venv/bin/python benchmarks/peers/make_models.py --only vgg_clip

Data: scikit-learn's 8x8 digits, split exactly as examples/digits/train.py does (70/30,
stratified, random_state=0: 1257 train / 540 test), upsampled 8x8 -> 32x32 bilinearly
(align_corners=False; smoother than nearest, so the 3x3 convs see real strokes rather than 4x4
blocks), then standardised with the training set's mean and std. The calibration set is the first
256 training images. Written to tests/data/heldout/digits32_{calib,test}.npz (compressed).

Models (benchmarks/peers/models_def.py) go to tests/data/heldout/<name>.onnx (TorchScript
exporter, opset 13, BatchNormalization kept as nodes) and their state_dicts to
benchmarks/peers/models/<name>.pt, for SpikingJelly to convert the identical weights.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from models_def import MODELS, build
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
HELDOUT = HERE.parents[1] / "tests" / "data" / "heldout"
NUM_CALIB = 256
BATCH_SIZE = 64
SIZE = 32
# per model: (seed, epochs, lr, fold BN). The ReLU nets keep BatchNormalization nodes, like the
# shipped examples; the QCFS/clip nets are exported with torch's default constant folding (BN
# folded into the convs, the clamp's Casts folded away), as a user's plain export would be
RECIPES: dict[str, tuple[int, int, float, bool]] = {
    "vgg11_maxpool": (1, 12, 3e-3, False),
    "resnet_small": (2, 12, 3e-3, False),
    "vgg_qcfs_L4": (3, 15, 3e-3, True),
    "resnet_qcfs_L8": (4, 15, 3e-3, True),
    "vgg_clip": (5, 12, 3e-3, True),
}


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """examples/digits/train.py's split, upsampled to 32x32 and standardised."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y)
    up = [F.interpolate(torch.from_numpy(a), size=(SIZE, SIZE), mode="bilinear",
                        align_corners=False).numpy() for a in (x_train, x_test)]
    mean, std = float(up[0].mean()), float(up[0].std())
    return (up[0] - mean) / std, (up[1] - mean) / std, y_train, y_test


def save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez_compressed(path, x=np.ascontiguousarray(x, dtype=np.float32),
                        y=y.astype(np.int64))


def param_groups(model: nn.Module, lr: float) -> list[dict]:
    """The scalar clip bounds (QCFS λ, clip a) get 10x the learning rate: at the base rate
    Adam moves them by < 0.5 in a short run, so they would stay near their initial value."""
    named = list(model.named_parameters())
    bounds = [p for n, p in named if n.endswith((".lam", ".a"))]
    rest = [p for n, p in named if not n.endswith((".lam", ".a"))]
    return [{"params": rest, "lr": lr}] + ([{"params": bounds, "lr": 10 * lr}] if bounds else [])


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, seed: int, epochs: int,
          lr: float) -> None:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(param_groups(model, lr))
    steps = epochs * -(-len(xt) // BATCH_SIZE)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        perm, total = torch.randperm(len(xt), generator=gen), 0.0
        for i in range(0, len(xt), BATCH_SIZE):
            idx = perm[i:i + BATCH_SIZE]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1:2d}/{epochs}  loss {total / len(xt):.4f}", flush=True)


def export(model: nn.Module, path: Path, fold: bool) -> None:
    model.eval()
    with warnings.catch_warnings():  # dynamo=False is deliberate: opset 13, no dynamo
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 1, SIZE, SIZE),), str(path), dynamo=False,
                          opset_version=13, training=torch.onnx.TrainingMode.EVAL,
                          do_constant_folding=fold, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


@torch.no_grad()
def check_export(model: nn.Module, path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """onnxruntime's test accuracy, after checking that it agrees with torch.

    QCFS floors can flip at a level boundary between torch's and onnxruntime's float rounding
    (one flip moves a logit by up to λ/L·|w|), so quantized nets may differ in a few samples.
    """
    model.eval()
    ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    diff = float(np.abs(ref - got).max())
    flips = int((ref.argmax(1) != got.argmax(1)).sum())
    if flips > len(x) // 100 or (diff > 1e-3 and not has_floor(path)):
        raise RuntimeError(f"{path.name}: onnxruntime differs from torch "
                           f"(max |diff| {diff:.2g}, {flips} predictions)")
    if flips or diff > 1e-3:
        print(f"  note: onnxruntime vs torch: max |logit diff| {diff:.2g}, "
              f"{flips} predictions differ")
    return float((got.argmax(1) == y).mean())


def has_floor(path: Path) -> bool:
    return any(n.op_type == "Floor" for n in onnx.load(str(path)).graph.node)


def make(name: str, data: tuple[np.ndarray, ...]) -> None:
    x_train, x_test, y_train, y_test = data
    seed, epochs, lr, fold = RECIPES[name]
    torch.manual_seed(seed)
    model = build(name)
    t0 = time.perf_counter()
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    train(model, x_train, y_train, seed, epochs, lr)
    path = HELDOUT / f"{name}.onnx"
    export(model, path, fold)
    torch.save(model.state_dict(), HERE / "models" / f"{name}.pt")
    acc = check_export(model, path, x_test, y_test)
    ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
    print(f"{name}: test accuracy {100 * acc:.2f}%, {time.perf_counter() - t0:.0f}s, "
          f"{path.stat().st_size / 1e6:.2f} MB, ops {ops}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # determinism, and the machine is shared
    HELDOUT.mkdir(parents=True, exist_ok=True)
    (HERE / "models").mkdir(exist_ok=True)
    data = load_split()
    save_npz(HELDOUT / "digits32_calib.npz", data[0][:NUM_CALIB], data[2][:NUM_CALIB])
    save_npz(HELDOUT / "digits32_test.npz", data[1], data[3])
    print(f"data: {len(data[0])} train / {len(data[1])} test, calib {NUM_CALIB}")
    for name in args.only:
        make(name, data)


if __name__ == "__main__":
    main()
