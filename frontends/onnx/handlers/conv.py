"""Conv and ConvTranspose (1-d, 2-d, 3-d; grouped and depthwise) with constant weights."""

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


@handles("ConvTranspose")
def conv_transpose(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """Weight (C_in, C_out / group, *kernel). `output_shape` (or auto_pad SAME_*, output =
    input x stride) sets the pads as ONNX says: total = s (L - 1) + output_padding
    + d (K - 1) + 1 - output, split evenly, the odd one at the end for SAME_UPPER and
    NOTSET, at the beginning for SAME_LOWER; a negative total is output padding."""
    x = ctx.value(node.input[0])
    weight = ctx.const(node.input[1], "the weight")
    bias = ctx.optional_const(2, "the bias")
    channels, *spatial = ctx.shape(node.input[0])
    nsp = len(spatial)
    if weight.ndim != nsp + 2:
        raise ctx.fail(f"weight of rank {weight.ndim} does not fit input with {nsp} spatial "
                       "dims")
    kernel = list(ctx.attr("kernel_shape", weight.shape[2:]))
    if kernel != list(weight.shape[2:]):
        raise ctx.fail(f"kernel_shape {kernel} disagrees with weight shape {list(weight.shape)}")
    groups = int(ctx.attr("group", 1))
    if channels != weight.shape[0] or channels % groups:
        raise ctx.fail(f"input has {channels} channels; the weight {list(weight.shape)} "
                       f"expects {weight.shape[0]} in {groups} group(s)")
    strides = list(ctx.attr("strides", [1] * nsp))
    dilations = list(ctx.attr("dilations", [1] * nsp))
    pads = list(ctx.attr("pads", [0] * (2 * nsp)))
    extra = list(ctx.attr("output_padding", [0] * nsp))
    if len(strides) != nsp or len(dilations) != nsp or len(pads) != 2 * nsp \
            or len(extra) != nsp:
        raise ctx.fail(f"strides/dilations/pads/output_padding do not match a {nsp}-d kernel")
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise ctx.fail(f"auto_pad '{auto_pad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, "
                       "VALID")
    target = ctx.attr("output_shape")
    if target is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = [spatial[i] * strides[i] for i in range(nsp)]
    if auto_pad == "VALID":
        pads = [0] * (2 * nsp)
    if target is not None:
        target = list(target)[-nsp:]  # with or without the batch and channel entries
        for i in range(nsp):
            total = (strides[i] * (spatial[i] - 1) + extra[i]
                     + dilations[i] * (kernel[i] - 1) + 1 - target[i])
            if total < 0:  # a larger output than the taps cover: zeros (bias) at the end
                extra[i] -= total
                total = 0
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nsp] = (big, small) if auto_pad == "SAME_LOWER" else (small, big)
    if min(pads) < 0:
        raise ctx.fail(f"negative pads {pads} are not supported")
    if min(strides + dilations) < 1 or min(extra) < 0:
        raise ctx.fail(f"strides {strides} and dilations {dilations} must be positive and "
                       f"output_padding {extra} not negative")
    if bias is None:
        bias = np.zeros(weight.shape[1] * groups, dtype=np.float32)
    ctx.emit("conv_transpose", [x], params={"weight": weight, "bias": bias.reshape(-1)},
             attrs={"strides": strides, "pads": pads, "dilations": dilations,
                    "groups": groups, "output_padding": extra})
