"""Shape of an activation is a constant once the per-sample shape is static. The batch
size is not known at compile time: it is written as 1, which Reshape then ignores."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .registry import handles


@handles("Shape")
def shape(ctx: ImportContext, node: onnx.NodeProto) -> None:
    full = np.array([1, *ctx.shape(node.input[0])], dtype=np.int64)
    start = int(ctx.attr("start", 0))
    end = ctx.attr("end")
    ctx.set_const(node.output[0], full[start:end])

