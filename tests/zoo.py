"""Small-width model-zoo-style graphs built with onnx.helper (ResNet, VGG, SqueezeNet, DenseNet,
Inception, ShuffleNet), written the way older and newer exporters write them:

* style "old": opset 9, initializers also listed as graph inputs, BatchNormalization written
  out as Mul/Add with Unsqueeze'd constants, Flatten as Shape→Gather→Unsqueeze→Concat→Reshape;
* style "new": opset 17, BatchNormalization nodes, Flatten; ShuffleNet's head is torch's
  `x.mean([2, 3])`, exported as ReduceMean(keepdims=0).

`with_ops` inserts ops with no spiking equivalent (LRN as in AlexNet/GoogLeNet-v1 zoo files,
a Sigmoid gate, a Softmax inside the net) for the unsupported-op tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from netgen import _Net
from onnx import TensorProto, helper


class _Zoo(_Net):
    def __init__(self, seed: int, style: str) -> None:
        super().__init__(np.random.default_rng(seed))
        self.style = style

    def ints(self, base: str, value: list[int]) -> str:
        name = self.name(base)
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(value)], value))
        return name

    def conv(self, x: str, c_in: int, c_out: int, k: int = 3, stride: int = 1,
             groups: int = 1, pad: int | None = None) -> str:
        pad = k // 2 if pad is None else pad
        w = self.rng.normal(0, np.sqrt(2.0 / (c_in * k * k / groups)), (c_out, c_in // groups,
                                                                            k, k))
        return self.node("Conv", [x, self.const("w", w)], kernel_shape=[k, k],
                         strides=[stride, stride], pads=[pad] * 4, group=groups)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        gamma, beta = r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c)
        mean, var = r.normal(0, 0.1, c), r.uniform(0.5, 1.5, c)
        if self.style == "new":
            return self.node("BatchNormalization", [x, self.const("g", gamma), self.const(
                "b", beta), self.const("m", mean), self.const("v", var)])
        scale = gamma / np.sqrt(var + 1e-5)
        shift = beta - mean * scale
        s = self.node("Unsqueeze", [self.const("s", scale)], axes=[1, 2])  # (C,) -> (C,1,1)
        t = self.node("Unsqueeze", [self.const("t", shift)], axes=[1, 2])
        return self.node("Add", [self.node("Mul", [x, s]), t])

    def cbr(self, x: str, c_in: int, c_out: int, k: int = 3, stride: int = 1,
            groups: int = 1, relu: bool = True) -> str:
        y = self.bn(self.conv(x, c_in, c_out, k, stride, groups), c_out)
        return self.node("Relu", [y]) if relu else y

    def flatten(self, x: str) -> str:
        if self.style == "new":
            return self.node("Flatten", [x])
        shape = self.node("Shape", [x])
        batch = self.node("Gather", [shape, self.ints("i", [0])], axis=0)
        target = self.node("Concat", [batch, self.ints("m", [-1])], axis=0)
        return self.node("Reshape", [x, target])

    def head(self, x: str, c: int, classes: int = 5, reduce_mean: bool = False) -> str:
        if reduce_mean:
            x = self.node("ReduceMean", [x], axes=[2, 3], keepdims=0)
        else:
            x = self.flatten(self.node("GlobalAveragePool", [x]))
        w = self.rng.normal(0, 1 / np.sqrt(c), (classes, c))
        return self.node("Gemm", [x, self.const("fc", w), self.const("fb", np.zeros(classes))],
                         transB=1)

    def model(self, out: str, channels: int, size: int, classes: int = 5) -> onnx.ModelProto:
        opset = 17 if self.style == "new" else 9
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                ["N", channels, size, size])]
        if self.style == "old":  # old exporters list every weight as a graph input too
            inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                       for t in self.inits]
        graph = helper.make_graph(self.nodes, "zoo", inputs, [helper.make_tensor_value_info(
            out, TensorProto.FLOAT, ["N", classes])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 7 if self.style == "new" else 4
        onnx.checker.check_model(model)
        return model


def resnet(z: _Zoo) -> str:
    x = z.node("MaxPool", [z.cbr("input", 3, 8, 3, 2)], kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1])
    c = 8
    for width, stride in [(4, 1), (8, 2)]:  # bottlenecks with a projection shortcut
        out = width * 4
        y = z.cbr(z.cbr(x, c, width, 1), width, width, 3, stride)
        y = z.cbr(y, width, out, 1, relu=False)
        short = z.cbr(x, c, out, 1, stride, relu=False)
        x, c = z.node("Relu", [z.node("Add", [y, short])]), out
    return z.head(x, c)


def vgg(z: _Zoo) -> str:
    x, c = "input", 3
    for out in (8, 16):
        x = z.cbr(z.cbr(x, c, out), out, out)
        x, c = z.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2]), out
    x = z.flatten(x)
    w = z.rng.normal(0, 1 / np.sqrt(c * 16), (5, c * 16))
    return z.node("Gemm", [x, z.const("fc", w), z.const("fb", np.zeros(5))], transB=1)


def squeezenet(z: _Zoo) -> str:
    x = z.node("Relu", [z.conv("input", 3, 8, 3, 2)])
    c = 8
    for squeeze, expand in [(4, 8), (4, 8)]:  # fire modules
        s = z.node("Relu", [z.conv(x, c, squeeze, 1)])
        e1 = z.node("Relu", [z.conv(s, squeeze, expand, 1)])
        e3 = z.node("Relu", [z.conv(s, squeeze, expand, 3)])
        x, c = z.node("Concat", [e1, e3], axis=1), 2 * expand
    x = z.node("Dropout", [x])
    x = z.node("Relu", [z.conv(x, c, 5, 1)])
    return z.flatten(z.node("GlobalAveragePool", [x]))


def densenet(z: _Zoo) -> str:
    x, c = z.conv("input", 3, 8, 3, 2), 8
    for _ in range(3):  # pre-activation dense layers: BN-ReLU-Conv, then Concat
        y = z.conv(z.node("Relu", [z.bn(x, c)]), c, 4)
        x, c = z.node("Concat", [x, y], axis=1), c + 4
    x = z.conv(z.node("Relu", [z.bn(x, c)]), c, 8, 1)  # transition
    x = z.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    return z.head(z.node("Relu", [z.bn(x, 8)]), 8)


def inception(z: _Zoo) -> str:
    x, c = z.cbr("input", 3, 8, 3, 2), 8
    b1 = z.cbr(x, c, 4, 1)
    b2 = z.cbr(z.cbr(x, c, 4, 1), 4, 6, 3)
    b3 = z.cbr(z.cbr(z.cbr(x, c, 2, 1), 2, 4, 3), 4, 4, 3)
    b4 = z.cbr(z.node("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1],
                      pads=[1, 1, 1, 1]), c, 4, 1)
    return z.head(z.node("Concat", [b1, b2, b3, b4], axis=1), 18)


def shufflenet(z: _Zoo) -> str:
    x, c = z.cbr("input", 3, 8, 3, 2), 8
    for _ in range(2):  # ShuffleNet-v2 unit: channel split, branch, concat, shuffle
        left, right = z.name("split_l"), z.name("split_r")
        z.nodes.append(helper.make_node("Split", [x], [left, right], axis=1,
                                        **({"split": [4, 4]} if z.style == "old" else {})))
        if z.style == "new":
            z.nodes[-1].input.append(z.ints("sp", [4, 4]))
        r = z.cbr(z.cbr(right, 4, 4, 1), 4, 4, 3, groups=4, relu=False)
        r = z.cbr(r, 4, 4, 1)
        x = z.node("Concat", [left, r], axis=1)
        size = 8  # 16 / 2
        x = z.node("Reshape", [x, z.ints("s", [-1, 2, 4, size, size])])
        x = z.node("Transpose", [x], perm=[0, 2, 1, 3, 4])
        x = z.node("Reshape", [x, z.ints("s", [-1, 8, size, size])])
    return z.head(x, c, reduce_mean=z.style == "new")


ARCHS: dict[str, Callable[[_Zoo], str]] = {
    "resnet": resnet, "vgg": vgg, "squeezenet": squeezenet, "densenet": densenet,
    "inception": inception, "shufflenet": shufflenet,
}


def with_ops(style: str, ops: tuple[str, ...] = ("LRN", "Sigmoid")) -> onnx.ModelProto:
    """A GoogLeNet-v1-style stem with any of: LRN, a Sigmoid gate, an inner Softmax."""
    z = _Zoo(0, style)
    x = z.node("Relu", [z.conv("input", 3, 8, 3, 2)])
    if "LRN" in ops:
        x = z.node("LRN", [x], size=5, alpha=1e-4, beta=0.75, bias=1.0)
    if "Sigmoid" in ops:
        x = z.node("Mul", [x, z.node("Sigmoid", [z.conv(x, 8, 8, 1)])])
    if "Softmax" in ops:
        x = z.node("Softmax", [z.conv(x, 8, 8, 1)], axis=1)
    return z.model(z.head(x, 8), 3, 16)


def zoo_model(arch: str, style: str, seed: int = 0, size: int = 16) -> onnx.ModelProto:
    z = _Zoo(seed, style)
    out = ARCHS[arch](z)
    return z.model(out, 3, size)
