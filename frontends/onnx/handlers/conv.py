"""Conv (1-d, 2-d, 3-d; grouped and depthwise) with constant weights."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .registry import handles
from .spatial import geometry


@handles("Conv")
def conv(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.value(node.input[0])
    weight = ctx.const(node.input[1], "the weight")
    bias = ctx.optional_const(2, "the bias")
    channels, *spatial = ctx.shape(node.input[0])
    if weight.ndim != len(spatial) + 2:
        raise ctx.fail(f"weight of rank {weight.ndim} does not fit input with "
                       f"{len(spatial)} spatial dims")
    kernel = list(ctx.attr("kernel_shape", weight.shape[2:]))
    if kernel != list(weight.shape[2:]):
        raise ctx.fail(f"kernel_shape {kernel} disagrees with weight shape {list(weight.shape)}")
    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    attrs = geometry(ctx, kernel, spatial)
    attrs["groups"] = int(ctx.attr("group", 1))
    ctx.emit("conv", [x], attrs=attrs, params={"weight": weight, "bias": bias.reshape(-1)})
