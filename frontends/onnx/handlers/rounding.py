"""Floor, Round, Ceil, Neg, and Min/Max by constants: the pieces of quantized and clipped
activations as exporters write them (QCFS: Div -> Mul -> Add -> Floor -> Div -> Clip -> Mul;
ReLU -> Min(a)). They import as plain IR ops; `recognise-activations` turns a whole chain into
one activation, or explains why it cannot."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .arith import per_sample
from .registry import handles


@handles("Floor", "Round", "Ceil")
def rounding(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.emit("round", [ctx.value(node.input[0])], attrs={"mode": node.op_type.lower()})


@handles("Neg")
def neg(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.emit("affine", [ctx.value(node.input[0])],
             params={"scale": np.float32(-1), "shift": np.float32(0)})


@handles("Min", "Max")
def min_max(ctx: ImportContext, node: onnx.NodeProto) -> None:
    values = [i for i in node.input if ctx.is_value(i)]
    consts = [ctx.const(i, "a constant operand") for i in node.input if i and ctx.is_const(i)]
    if len(values) != 1:
        raise ctx.fail(f"{node.op_type} of {len(values)} activations has no spiking equivalent "
                       f"(supported: {node.op_type} of one activation and constants)")
    x = ctx.value(values[0])
    if not consts:
        ctx.alias(node.output[0], x)
        return
    reduce = np.minimum if node.op_type == "Min" else np.maximum
    c = per_sample(ctx, reduce.reduce(np.broadcast_arrays(*consts)), ctx.shape(values[0]))
    if c.size == 1:  # a scalar bound is a Clip, which normalize-thresholds reads directly
        bound = float(c)
        attrs = {"min": None, "max": bound} if node.op_type == "Min" else {"min": bound,
                                                                           "max": None}
        ctx.emit("clip", [x], attrs=attrs)
        return
    inf = np.full_like(c, np.inf)
    lo, hi = (-inf, c) if node.op_type == "Min" else (c, inf)
    ctx.emit("bound", [x], params={"lo": lo, "hi": hi})
