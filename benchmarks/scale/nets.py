"""ImageNet-size CNNs as torch layer definitions (no torchvision, random weights), written the
way the model-zoo originals are: ResNet-50, VGG-16, DenseNet-121 (Concat-heavy), SqueezeNet 1.1
(fire modules), GoogLeNet (Inception blocks with BN) and ShuffleNet v2 1.0x (channel split,
channel shuffle as view->transpose->view, mean over H and W as ReduceMean)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def cbr(c_in: int, c_out: int, k: int, stride: int = 1, relu: bool = True,
        groups: int = 1) -> list[nn.Module]:
    """Conv (no bias) -> BatchNorm [-> ReLU]."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(c_out)]
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


class Fire(nn.Module):
    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(c_in, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


def squeezenet11() -> nn.Module:
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool, Fire(64, 16, 64), Fire(128, 16, 64), pool,
        Fire(128, 32, 128), Fire(256, 32, 128), pool, Fire(256, 48, 192), Fire(384, 48, 192),
        Fire(384, 64, 256), Fire(512, 64, 256), nn.Dropout(), nn.Conv2d(512, 1000, 1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Inception(nn.Module):
    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int,
                 pool: int) -> None:
        super().__init__()
        self.b1 = nn.Sequential(*cbr(c_in, c1, 1))
        self.b2 = nn.Sequential(*cbr(c_in, c3r, 1), *cbr(c3r, c3, 3))
        self.b3 = nn.Sequential(*cbr(c_in, c5r, 1), *cbr(c5r, c5, 3))  # torchvision: 3x3
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), *cbr(c_in, pool, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def googlenet() -> nn.Module:
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    return nn.Sequential(
        *cbr(3, 64, 7, 2), pool, *cbr(64, 64, 1), *cbr(64, 192, 3), pool,
        Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64), pool,
        Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
        Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
        Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(2, 2, ceil_mode=True),
        Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1024, 1000))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        half = c_out // 2
        self.stride = stride
        if stride > 1:
            self.left = nn.Sequential(*cbr(c_in, c_in, 3, stride, relu=False, groups=c_in),
                                      *cbr(c_in, half, 1))
        self.right = nn.Sequential(*cbr(c_in if stride > 1 else half, half, 1),
                                   *cbr(half, half, 3, stride, relu=False, groups=half),
                                   *cbr(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat((left, self.right(right)), 1)
        else:
            out = torch.cat((self.left(x), self.right(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [*cbr(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
        c = 24
        for repeats, out in [(4, 116), (8, 232), (4, 464)]:
            layers += [ShuffleUnit(c, out, 2)] + [ShuffleUnit(out, out, 1)
                                                  for _ in range(repeats - 1)]
            c = out
        self.features = nn.Sequential(*layers, *cbr(c, 1024, 1))
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean([2, 3]))  # exported as ReduceMean


MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet50": resnet50, "vgg16": vgg16, "densenet121": densenet121,
    "squeezenet11": squeezenet11, "googlenet": googlenet, "shufflenet_v2": ShuffleNetV2,
}
