"""ImageNet-size CNNs with random weights, exported to ONNX from torch layer definitions (no
torchvision, no downloads): ResNet-50, VGG-16 and DenseNet-121 (BatchNorm kept as nodes).

    .venv/bin/pip install torch==2.13.0        # a local CPU wheel on this machine
    .venv/bin/python benchmarks/scale/make_models.py --out /tmp/snnc-scale
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from torch import nn


def cbr(c_in: int, c_out: int, k: int, stride: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                               nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU()] if relu else layers


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * 4
        self.body = nn.Sequential(*cbr(c_in, width, 1), *cbr(width, width, 3, stride),
                                  *cbr(width, out, 1, relu=False))
        self.short = (nn.Sequential(*cbr(c_in, out, 1, stride, relu=False))
                      if stride != 1 or c_in != out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


def resnet50() -> nn.Module:
    layers: list[nn.Module] = [*cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for k in range(blocks):
            layers.append(Bottleneck(c, width, stride if k == 0 else 1))
            c = width * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000))


def vgg16() -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += cbr(c, int(v), 3)
            c = int(v)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(),
                         nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
                         nn.Linear(4096, 1000))


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(),
                                  nn.Conv2d(c_in, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(),
                                  nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def densenet121() -> nn.Module:
    layers: list[nn.Module] = [*cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for k, n in enumerate([6, 12, 24, 16]):
        for _ in range(n):
            layers.append(DenseLayer(c))
            c += 32
        if k < 3:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False),
                       nn.AvgPool2d(2)]
            c //= 2
    return nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(c, 1000))


MODELS = {"resnet50": resnet50, "vgg16": vgg16, "densenet121": densenet121}


def export(name: str, out: Path, opset: int = 13) -> Path:
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with torch.no_grad():  # give BN non-trivial statistics so folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    path = out / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False,
                          opset_version=opset, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.EVAL, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}})
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/snnc-scale")
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        path = export(name, out)
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
