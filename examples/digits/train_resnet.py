"""Train a small ResNet-like CNN (residual Adds, BatchNorm kept) on the 8x8 digits and export it
to ONNX: the held-out residual model of the Lava/Loihi acceptance tests (tests/data/).

    python examples/digits/train_resnet.py --out tests/data    # writes digits_resnet.onnx

Same data split, training loop and export settings as train.py (imported from beside it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train as base  # noqa: E402 - the sibling script's helpers


class Residual(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def build_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        Residual(16),
        nn.AvgPool2d(2),  # 8x8 -> 4x4
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        Residual(32),
        nn.AvgPool2d(2),  # 4x4 -> 2x2
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, base.NUM_CLASSES),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = base.load_data()
    model = build_model()
    t0 = time.perf_counter()
    base.train(model, x_train, y_train, args.epochs, 1e-2, args.seed)
    print(f"trained in {time.perf_counter() - t0:.1f}s")
    path = args.out / "digits_resnet.onnx"
    base.export_onnx(model, path, 13)
    got = base.ort_logits(path, x_test)
    ref = base.torch_logits(model, x_test)
    assert np.abs(ref - got).max() < 1e-4
    print(f"test accuracy {float((got.argmax(1) == y_test).mean()):.4f} -> {path}")


if __name__ == "__main__":
    main()
