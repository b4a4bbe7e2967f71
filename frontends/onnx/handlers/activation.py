"""Relu, Clip (attribute form before opset 11, input form after) and Softmax/LogSoftmax."""

from __future__ import annotations

import onnx

from ..context import ImportContext
from .registry import handles


@handles("Relu")
def relu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.emit("relu", [ctx.value(node.input[0])])


def _bound(ctx: ImportContext, index: int, what: str) -> float | None:
    """Clip's min or max input: a scalar, or a one-element tensor (onnxruntime accepts [1])."""
    value = ctx.optional_const(index, what)
    if value is None:
        return None
    if value.size != 1:
        raise ctx.fail(f"{what} has shape {list(value.shape)}; Clip needs a single value")
    return float(value.reshape(-1)[0])


@handles("Clip")
def clip(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.value(node.input[0])
    if ctx.opset < 11:
        lo, hi = ctx.attr("min"), ctx.attr("max")
    else:
        lo, hi = _bound(ctx, 1, "min"), _bound(ctx, 2, "max")
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
