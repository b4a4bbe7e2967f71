"""Random small CNNs as ONNX models, for property tests and fuzzing: conv (grouped, strided,
padded), BatchNormalization, ReLU/Clip, max/average pooling, residual Add, channel Concat,
then global pooling or Flatten and a Gemm head. Every model is valid ONNX by construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class _Net:
    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    count: int = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv(net: _Net, x: str, c_in: int, c_out: int, k: int, stride: int, pad: int,
          groups: int = 1) -> str:
    w = net.rng.normal(0, 1.0 / np.sqrt(c_in * k * k / groups), (c_out, c_in // groups, k, k))
    b = net.rng.normal(0, 0.1, c_out)
    return net.node("Conv", [x, net.const("w", w), net.const("b", b)], kernel_shape=[k, k],
                    strides=[stride, stride], pads=[pad] * 4, group=groups)


def _activation(net: _Net, x: str, kind: str, channels: int, bn: bool) -> str:
    if bn:
        r = net.rng
        x = net.node("BatchNormalization", [x, net.const("g", r.uniform(0.5, 1.5, channels)),
                                            net.const("be", r.normal(0, 0.1, channels)),
                                            net.const("m", r.normal(0, 0.1, channels)),
                                            net.const("v", r.uniform(0.5, 1.5, channels))])
    if kind == "clip":
        lo = net.const("lo", np.array(0.0))
        hi = net.const("hi", np.array(net.rng.uniform(0.5, 2.0)))
        return net.node("Clip", [x, lo, hi])
    return net.node("Relu", [x])


def random_cnn(seed: int, blocks: list[str], channels: int = 2, size: int = 8,
               act: str = "relu", head: str = "gap", classes: int = 4) -> onnx.ModelProto:
    """blocks: a list of 'conv', 'conv_s2', 'depthwise', 'maxpool', 'avgpool', 'residual',
    'concat'. The input is [N, channels, size, size]."""
    net = _Net(np.random.default_rng(seed))
    x, c, s = "input", channels, size
    for k, block in enumerate(blocks):
        bn = k % 2 == 0
        if block in ("conv", "conv_s2") or (block == "depthwise" and c < 2):
            stride = 2 if block == "conv_s2" and s >= 4 else 1
            out_c = c + 1 + k % 2
            x = _activation(net, _conv(net, x, c, out_c, 3, stride, 1), act, out_c, bn)
            c, s = out_c, (s - 1) // stride + 1
        elif block == "depthwise":
            x = _activation(net, _conv(net, x, c, c, 3, 1, 1, groups=c), act, c, bn)
        elif block in ("maxpool", "avgpool") and s >= 2:
            op = "MaxPool" if block == "maxpool" else "AveragePool"
            x = net.node(op, [x], kernel_shape=[2, 2], strides=[2, 2])
            s //= 2
        elif block == "residual":
            branch = _activation(net, _conv(net, x, c, c, 3, 1, 1), act, c, bn)
            branch = _conv(net, branch, c, c, 1, 1, 0)
            x = net.node("Relu", [net.node("Add", [x, branch])])
        elif block == "concat":
            a = _activation(net, _conv(net, x, c, 2, 1, 1, 0), act, 2, False)
            b = _activation(net, _conv(net, x, c, 1, 3, 1, 1), act, 1, False)
            x, c = net.node("Concat", [a, b], axis=1), 3
    if head == "gap":
        x = net.node("Flatten", [net.node("GlobalAveragePool", [x])])
        features = c
    else:
        x = net.node("Flatten", [x])
        features = c * s * s
    w = net.rng.normal(0, 1.0 / np.sqrt(features), (classes, features))
    x = net.node("Gemm", [x, net.const("fc", w), net.const("fb", net.rng.normal(0, .1, classes))],
                 transB=1)
    graph = helper.make_graph(
        net.nodes, "random_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", classes])], net.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
