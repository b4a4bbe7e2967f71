"""Helpers shared by the test files: ONNX models from ONNX's text format, seeded random inputs,
onnxruntime as the reference, and the relative error the tests compare against it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper


def ir_version(opset: int) -> int:
    """The IR version that goes with `opset` (onnx's own table)."""
    return 7 if opset <= 12 else 8 if opset <= 18 else 9 if opset <= 20 else 10


def parse_model(text: str, opset: int = 13, consts: dict[str, np.ndarray] | None = None,
                extra_opsets: str = "") -> onnx.ModelProto:
    """A model from the body of ONNX's text format (`graph (...) => (...) {...}`); `consts`
    become initializers."""
    model = onnx.parser.parse_model(
        f'<ir_version: {ir_version(opset)}, opset_import: ["" : {opset}{extra_opsets}]>\n'
        f"{text}")
    for name, value in (consts or {}).items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def make_model(body: str, x_shape: tuple[int | str, ...], *, opset: int = 13,
               consts: dict[str, np.ndarray] | None = None,
               y_shape: tuple[int | str, ...] | None = None) -> onnx.ModelProto:
    """A model with input `x` and output `y` from the nodes in `body`; `consts` become
    initializers. The output's shape is `y_shape`, or what ONNX shape inference finds."""
    y_type = "float" if y_shape is None else f"float[{','.join(map(str, y_shape))}]"
    model = parse_model(f"g (float[{','.join(map(str, x_shape))}] x) => ({y_type} y) {{\n"
                        f"{body}\n}}", opset, consts)
    if y_shape is None:
        model.graph.output[0].type.tensor_type.ClearField("shape")  # not a scalar: unknown
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    return model


class SeededRandom:
    """`rand(*shape)`: standard-normal float32 arrays from one generator (`.rng`), which
    `reset()` reseeds, so that a test gets the same data however tests are selected or
    ordered (call it from an autouse fixture)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The model's first output in onnxruntime (CPU), for `x` as its first input."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def max_rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref| (the denominator at least 1e-6); the shapes must agree."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-6))


def small_32x32_net(name: str):  # noqa: ANN202 - torch is imported lazily
    """A small 32x32 net for the Lava tests: 'vgg_maxpool' (three conv-BN-ReLU-maxpool
    blocks, linear) or 'resnet_skip' (residual blocks with skip Adds, average pooling), with
    BN statistics drawn at random (seeded) so that folding them matters."""
    import torch
    from torch import nn

    torch.manual_seed(16)

    def block(c_in: int, c_out: int, stride: int = 1) -> list:
        return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out),
                nn.ReLU()]

    if name == "vgg_maxpool":
        model = nn.Sequential(*block(3, 4), nn.MaxPool2d(2), *block(4, 6), nn.MaxPool2d(2),
                              *block(6, 8), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(8 * 4 * 4, 5))
    else:
        class Residual(nn.Module):
            def __init__(self, c: int) -> None:
                super().__init__()
                self.body = nn.Sequential(*block(c, c), nn.Conv2d(c, c, 3, padding=1))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.relu(x + self.body(x))

        model = nn.Sequential(*block(3, 4), Residual(4), *block(4, 6, 2), Residual(6),
                              nn.AvgPool2d(16), nn.Flatten(), nn.Linear(6, 5))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export_small_32x32(name: str, path: Path) -> Path:
    """small_32x32_net(name) as ONNX (TorchScript exporter, opset 13, dynamic batch)."""
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small_32x32_net(name), (torch.zeros(2, 3, 32, 32),), str(path),
                          dynamo=False, opset_version=13, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})
    return path
