"""BatchNormalization in inference mode (opsets 9-15 and 15+ with training_mode=0)."""

from __future__ import annotations

import onnx

from ..context import ImportContext
from .registry import handles


@handles("BatchNormalization")
def batchnorm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    if ctx.attr("training_mode", 0):
        raise ctx.fail("training_mode=1; export the model in eval mode (model.eval())")
    if any(out for out in node.output[1:]):
        raise ctx.fail("running-statistics outputs are used; export the model in eval mode")
    x = ctx.value(node.input[0])
    if not ctx.shape(node.input[0]):
        raise ctx.fail("input has no channel axis")
    names = ("gamma", "beta", "mean", "var")
    params = {k: ctx.const(node.input[i + 1], k).reshape(-1) for i, k in enumerate(names)}
    channels = ctx.shape(node.input[0])[0]
    for key, value in params.items():
        if value.size != channels:
            raise ctx.fail(f"{key} has {value.size} entries for {channels} channels")
    ctx.emit("batchnorm", [x], attrs={"epsilon": float(ctx.attr("epsilon", 1e-5))},
             params=params)
