"""MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool."""

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
