"""Relu, Clip (attribute form before opset 11, input form after) and Softmax/LogSoftmax."""

from __future__ import annotations

import onnx

from ..context import ImportContext
from .registry import handles


@handles("Relu")
def relu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.emit("relu", [ctx.value(node.input[0])])


@handles("Clip")
def clip(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.value(node.input[0])
    if ctx.opset < 11:
        lo, hi = ctx.attr("min"), ctx.attr("max")
    else:
        lo_c, hi_c = ctx.optional_const(1, "min"), ctx.optional_const(2, "max")
        lo = None if lo_c is None else float(lo_c)
        hi = None if hi_c is None else float(hi_c)
    ctx.emit("clip", [x], attrs={"min": None if lo is None else float(lo),
                                 "max": None if hi is None else float(hi)})


@handles("Softmax", "LogSoftmax")
def softmax(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.value(node.input[0])
    rank = len(ctx.shape(node.input[0])) + 1
    default = -1 if ctx.opset >= 13 else 1
    axis = int(ctx.attr("axis", default))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ctx.fail("softmax over the batch axis mixes samples; use axis=1 or -1")
    # before opset 13, softmax normalises over all axes from `axis` on
    axes = [axis - 1] if ctx.opset >= 13 else list(range(axis - 1, rank - 1))
    ctx.emit("softmax", [x], attrs={"axes": axes, "log": node.op_type == "LogSoftmax"})
