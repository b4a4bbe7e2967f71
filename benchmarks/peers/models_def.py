"""Torch definitions of the peer-benchmark models, shared by make_models.py (snnc's venv) and
sj_eval.py (the SpikingJelly venv), so both tools convert the identical trained weights.

Every activation is its own module instance: SpikingJelly's converter only rewrites
`nn.ReLU` *modules* it finds by FX tracing (`type(m) is nn.ReLU`), not `torch.relu` calls.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
# VGG-11's layout ([64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]) at reduced widths,
# so the ONNX file stays ~1.5 MB; on 32x32 inputs the five pools end at 1x1
VGG11_CFG: list[int | str] = [16, "M", 32, "M", 64, 64, "M", 96, 96, "M", 96, 96, "M"]


class _STEFloor(torch.autograd.Function):
    """floor() with a straight-through gradient (QCFS); exports as a plain ONNX Floor."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        return g.op("Floor", x)


class QCFS(nn.Module):
    """λ·clip(⌊x·L/λ + ½⌋/L, 0, 1) with a trainable per-layer λ (Bu et al., ICLR 2022).

    `order="old"` writes it as the original QCFS code does (floor, then clamp), which exports as
    Div→Mul→Add→Floor→Div→Clip→Mul; `order="new"` clamps first (the newer QCFS repo), exporting
    as Div→Clip→Mul→Add→Floor→Div→Mul. Both give the same values.
    """

    def __init__(self, levels: int, lam: float = 4.0, order: str = "old") -> None:
        super().__init__()
        if order not in ("old", "new"):
            raise ValueError(f"order must be 'old' or 'new', got {order!r}")
        self.levels, self.order = levels, order
        self.lam = nn.Parameter(torch.tensor([lam]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / self.lam
        if self.order == "new":
            x = torch.clamp(x, 0.0, 1.0)
        x = _STEFloor.apply(x * self.levels + 0.5) / self.levels
        if self.order == "old":
            x = torch.clamp(x, 0.0, 1.0)
        return x * self.lam


class TrainableClip(nn.Module):
    """clamp(x, 0, a) with a trainable per-layer bound a.

    On export the trained a is baked in as a float, so ONNX gets Clip(0, a) with constant
    bounds (a learnable tensor bound would export as a computed input).
    """

    def __init__(self, a: float = 4.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return F.hardtanh(x, 0.0, float(self.a))
        return torch.minimum(F.relu(x), self.a)  # gradient reaches a where x > a


def make_act(act: str, levels: int = 0, order: str = "old") -> nn.Module:
    if act == "relu":
        return nn.ReLU()
    if act == "qcfs":
        return QCFS(levels, order=order)
    if act == "clip":
        return TrainableClip()
    raise ValueError(f"unknown activation {act!r}")


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)]


def vgg11(act: str = "relu", pool: str = "max", levels: int = 0) -> nn.Sequential:
    """VGG-11-like: 8 conv-BN-act blocks, 5 pools (max, or avg as QCFS uses), linear head."""
    layers: list[nn.Module] = []
    c = 1
    for v in VGG11_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
        else:
            layers += [*conv_bn(c, int(v)), make_act(act, levels)]
            c = int(v)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, NUM_CLASSES))


class BasicBlock(nn.Module):
    """ResNet basic block; the shortcut is a 1x1 conv + BN when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str, levels: int,
                 order: str) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), make_act(act, levels, order),
                                  *conv_bn(c_out, c_out, 3))
        self.short = (nn.Sequential(*conv_bn(c_in, c_out, 1, stride))
                      if stride != 1 or c_in != c_out else nn.Identity())
        self.act = make_act(act, levels, order)  # after the residual Add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


def resnet_small(act: str = "relu", levels: int = 0, order: str = "old") -> nn.Sequential:
    """Stem + 3 stages of one BasicBlock (16, 32, 64 channels; 32→16→8 px), GAP, linear."""
    layers: list[nn.Module] = [*conv_bn(1, 16), make_act(act, levels, order)]
    c = 16
    for width, stride in [(16, 1), (32, 2), (64, 2)]:
        layers.append(BasicBlock(c, width, stride, act, levels, order))
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(c, NUM_CLASSES))


# name -> (builder, kwargs); the ONNX file is tests/data/heldout/<name>.onnx and the weights
# benchmarks/peers/models/<name>.pt
MODELS: dict[str, tuple[Any, dict[str, Any]]] = {
    "vgg11_maxpool": (vgg11, {}),
    "resnet_small": (resnet_small, {}),
    "vgg_qcfs_L4": (vgg11, {"act": "qcfs", "pool": "avg", "levels": 4}),
    "resnet_qcfs_L8": (resnet_small, {"act": "qcfs", "levels": 8, "order": "new"}),
    "vgg_clip": (vgg11, {"act": "clip"}),
}


def build(name: str) -> nn.Module:
    builder, kwargs = MODELS[name]
    return builder(**kwargs)
