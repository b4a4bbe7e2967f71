"""Train VGG-16 and ResNet-20 on the cluttered-digits task (data.py) and export them to ONNX.

    .venv/bin/python benchmarks/deep/make_models.py                  # both; see Timing below
    .venv/bin/python benchmarks/deep/make_models.py --only resnet20
    .venv/bin/python benchmarks/deep/make_models.py --only vgg16 --width 1 --epochs 3

Writes, under out/deep/:

* calib.npz, test.npz: data.py's splits (256 / 2,000 samples; rebuilt deterministically, the
  10,000 training samples are kept in memory only);
* vgg16.onnx, resnet20.onnx: TorchScript exporter, opset 13, BatchNormalization kept as nodes,
  input "input" with a dynamic batch axis, output "logits" (benchmarks/loihi_scale's export(),
  checked against torch with onnxruntime by benchmarks/peers' check_export());
* models/<name>.pt: the state_dict, for SpikingJelly (sj_eval.py rebuilds the module with
  nets.build(name, width));
* models/meta.json: per model its width, epochs, seed, training seconds and accuracies.

Architectures (nets.py = benchmarks/loihi_scale/make_models.py's definitions): VGG-16 = 13
conv3x3-BN-ReLU (64,64,M,128,128,M,256x3,M,512x3,M,512x3,M; M = MaxPool2d(2)) x `--width`
(default 0.5, so 32..256 channels: the full width costs 4x the training and simulation time),
Flatten, Linear; ResNet-20 = CIFAR layout, 16/32/64 channels, 3x3 BasicBlocks, GAP, Linear.

Training: Adam, one-cycle schedule, batch 128, fixed seeds, torch.use_deterministic_algorithms,
`--threads` CPU threads (default 2). Per epoch it prints the training loss and the accuracy on
the calibration split (never the test split); the test accuracy is measured once, after export,
with onnxruntime.

Timing and accuracy, measured once (2026-12-02) on the shared 2-core machine at load 7-14 (other
jobs running; an idle machine should be several times faster, not measured): data 12 s;
VGG-16 w0.5, 5 epochs: 1745 s, test 82.70% (train 93.1%); ResNet-20, 5 epochs: 2965 s, test
85.75%. Both are still improving at the last epoch: --epochs trades time for accuracy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import data  # noqa: E402
import nets  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "loihi_scale_make_models", ROOT / "benchmarks" / "loihi_scale" / "make_models.py")
assert _spec is not None and _spec.loader is not None
loihi_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loihi_scale)  # also loads benchmarks/peers/make_models.py as .peers

OUT = ROOT / "out" / "deep"
BATCH_SIZE = 128
# per model: (seed, epochs, peak lr)
RECIPES: dict[str, tuple[int, int, float]] = {
    "vgg16": (21, 5, 2e-3),
    "resnet20": (22, 5, 3e-3),
}


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    pred = torch.cat([model(torch.from_numpy(x[i:i + 256])).argmax(1)
                      for i in range(0, len(x), 256)])
    return float((pred.numpy() == y).mean())


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray],
          seed: int, epochs: int, lr: float) -> None:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(xt) // BATCH_SIZE)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm, total = torch.randperm(len(xt), generator=gen), 0.0
        for i in range(0, len(xt), BATCH_SIZE):
            idx = perm[i:i + BATCH_SIZE]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1:2d}/{epochs}  loss {total / len(xt):.4f}  calib accuracy "
              f"{100 * accuracy(model, *val):.2f}%  {time.perf_counter() - t0:.0f} s",
              flush=True)


def make(name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]], width: float,
         epochs: int | None) -> dict:
    seed, default_epochs, lr = RECIPES[name]
    epochs = epochs or default_epochs
    torch.manual_seed(seed)
    model = nets.build(name, width)
    n_params = sum(p.numel() for p in model.parameters())
    shape = f"width {width:g}, " if name == "vgg16" else ""
    print(f"{name}: {n_params} parameters, {shape}{epochs} epochs", flush=True)
    t0 = time.perf_counter()
    train(model, *splits["train"], splits["calib"], seed, epochs, lr)
    seconds = time.perf_counter() - t0
    path = OUT / f"{name}.onnx"
    loihi_scale.export(model, path, splits["train"][0].shape[1:])
    torch.save(model.state_dict(), OUT / "models" / f"{name}.pt")
    x_test, y_test = splits["test"]
    acc = loihi_scale.peers.check_export(model, path, x_test, y_test)  # raises if ORT differs
    print(f"{name}: test accuracy {100 * acc:.2f}% (onnxruntime, {len(y_test)} samples), "
          f"training {seconds:.0f} s; {loihi_scale.describe(path)}", flush=True)
    return {"width": width if name == "vgg16" else 1.0, "epochs": epochs, "seed": seed,
            "lr": lr, "batch_size": BATCH_SIZE, "parameters": n_params,
            "train_seconds": round(seconds, 1), "ann_test_accuracy": acc,
            "ann_calib_accuracy": accuracy(model, *splits["calib"]),
            "ann_train_accuracy": accuracy(model, *splits["train"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    p.add_argument("--width", type=float, default=0.5, help="VGG-16 width multiplier")
    p.add_argument("--epochs", type=int, help="override every model's epochs")
    p.add_argument("--seed", type=int, default=data.SEED, help="data seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    (OUT / "models").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    splits = data.make_splits(args.seed)
    data.write(splits, OUT)
    print(f"data: {', '.join(f'{k} {len(v[1])}' for k, v in splits.items())} "
          f"({time.perf_counter() - t0:.0f} s); {OUT}/calib.npz, test.npz", flush=True)
    meta_path = OUT / "models" / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    for name in args.only:
        meta[name] = {**make(name, splits, args.width, args.epochs), "data_seed": args.seed}
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
