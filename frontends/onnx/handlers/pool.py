"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, and ReduceMean/ReduceMax over all
spatial axes (global pools)."""

from __future__ import annotations

import onnx

from ..context import ImportContext
from .registry import handles
from .spatial import geometry


@handles("MaxPool", "AveragePool")
def pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise ctx.fail("the Indices output of MaxPool is not supported")
    x = ctx.value(node.input[0])
    _, *spatial = ctx.shape(node.input[0])
    kernel = list(ctx.attr("kernel_shape", []))
    if len(kernel) != len(spatial):
        raise ctx.fail(f"kernel_shape {kernel} does not match {len(spatial)} spatial dims")
    attrs: dict = geometry(ctx, kernel, spatial)
    attrs.update(kernel=kernel, ceil_mode=int(ctx.attr("ceil_mode", 0)))
    if node.op_type == "MaxPool":
        ctx.emit("maxpool", [x], attrs=attrs)
    else:
        attrs["count_include_pad"] = int(ctx.attr("count_include_pad", 0))
        ctx.emit("avgpool", [x], attrs=attrs)


@handles("GlobalAveragePool")
def global_avgpool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.emit("global_avgpool", [ctx.value(node.input[0])])


@handles("GlobalMaxPool")
def global_maxpool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _, *spatial = ctx.shape(node.input[0])
    nsp = len(spatial)
    ctx.emit("maxpool", [ctx.value(node.input[0])],
             attrs={"kernel": spatial, "strides": [1] * nsp, "pads": [0] * (2 * nsp),
                    "dilations": [1] * nsp, "ceil_mode": 0})


@handles("ReduceMean", "ReduceMax")
def reduce_spatial(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """A mean (or max) over all spatial axes is a global pool: `x.mean([2, 3])` in torch
    exports as ReduceMean (ShuffleNet, MobileNet heads). keepdims=0 adds a reshape."""
    x = ctx.value(node.input[0])
    shape = ctx.shape(node.input[0])
    rank = len(shape) + 1
    if ctx.opset >= 18:
        given = ctx.optional_const(1, "axes")
        axes = None if given is None else [int(a) for a in given.reshape(-1)]
    else:
        axes = ctx.attr("axes")
    spatial = list(range(2, rank))
    if axes is None or not len(axes):
        axes = [] if ctx.attr("noop_with_empty_axes", 0) else list(range(rank))
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if axes != spatial or not spatial:
        raise ctx.fail(f"{node.op_type} over axes {axes} of [N, {', '.join(map(str, shape))}] "
                       f"is not supported; only over all spatial axes {spatial} (a global "
                       "pool)")
    keep = bool(ctx.attr("keepdims", 1))
    out = "" if not keep else None
    if node.op_type == "ReduceMean":
        pooled = ctx.emit("global_avgpool", [x], output=out)
    else:
        nsp = len(spatial)
        pooled = ctx.emit("maxpool", [x], output=out, attrs={
            "kernel": list(shape[1:]), "strides": [1] * nsp, "pads": [0] * (2 * nsp),
            "dilations": [1] * nsp, "ceil_mode": 0})
    if not keep:
        ctx.emit("reshape", [pooled.name], attrs={"shape": [shape[0]]})
