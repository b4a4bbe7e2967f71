"""Add, Sub, Mul, Div, Sum. Two activations: `add` (Sub negates one side first). An activation
and a constant: `affine` (x*scale + shift), which fold-batchnorm later merges into the layer
before it when the constant is per channel (MatMul+Add, BN written out as Mul/Add)."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .registry import handles


def per_sample(ctx: ImportContext, c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A constant operand reshaped to broadcast against one sample of the activation."""
    full_rank = len(shape) + 1
    if c.ndim > full_rank:
        raise ctx.fail(f"constant of shape {list(c.shape)} has more axes than the activation")
    c = c.reshape((1,) * (full_rank - c.ndim) + c.shape)
    if c.shape[0] != 1:
        raise ctx.fail(f"constant of shape {list(c.shape)} differs per batch row")
    c = c[0]
    try:
        out = np.broadcast_shapes(c.shape, shape)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ctx.fail(f"constant of shape {list(c.shape)} does not broadcast to "
                       f"the activation's [N, {', '.join(map(str, shape))}]")
    return (c.reshape(()) if c.size == 1 else c).astype(np.float32)


def _affine(ctx: ImportContext, x_name: str, scale: np.ndarray | float,
            shift: np.ndarray | float) -> None:
    ctx.emit("affine", [ctx.value(x_name)],
             params={"scale": np.asarray(scale, np.float32), "shift": np.asarray(shift,
                                                                                 np.float32)})


@handles("Add", "Sub", "Mul", "Div")
def binary(ctx: ImportContext, node: onnx.NodeProto) -> None:
    a, b = node.input[0], node.input[1]
    op = node.op_type
    if ctx.is_value(a) and ctx.is_value(b):
        if op == "Add":
            ctx.emit("add", [ctx.value(a), ctx.value(b)])
            return
        if op == "Sub":
            neg = ctx.emit("affine", [ctx.value(b)], output="",
                           params={"scale": np.float32(-1), "shift": np.float32(0)})
            ctx.emit("add", [ctx.value(a), neg.name])
            return
        raise ctx.fail(f"{op} of two activations has no spiking equivalent "
                       "(only Add/Sub of activations, or Mul/Div by constants)")
    x, c_name, x_first = (a, b, True) if ctx.is_value(a) else (b, a, False)
    c = per_sample(ctx, ctx.const(c_name, "the constant operand"), ctx.shape(x))
    if op == "Add":
        _affine(ctx, x, 1.0, c)
    elif op == "Sub":
        _affine(ctx, x, 1.0, -c) if x_first else _affine(ctx, x, -1.0, c)
    elif op == "Mul":
        _affine(ctx, x, c, 0.0)
    elif not x_first:
        raise ctx.fail("division by an activation has no spiking equivalent")
    elif np.any(c == 0):
        raise ctx.fail("division by a constant that contains zeros")
    else:
        _affine(ctx, x, 1.0 / c, 0.0)


@handles("Sum")
def sum_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    values = [i for i in node.input if ctx.is_value(i)]
    consts = [ctx.consts[i] for i in node.input if ctx.is_const(i)]
    if len(values) == 1 and not consts:
        ctx.alias(node.output[0], ctx.value(values[0]))
        return
    if consts:
        total = per_sample(ctx, np.sum(np.broadcast_arrays(*consts), axis=0),
                           ctx.shape(values[0]))
        if len(values) == 1:
            _affine(ctx, values[0], 1.0, total)
            return
        summed = ctx.emit("add", [ctx.value(v) for v in values], output="")
        ctx.emit("affine", [summed.name], params={"scale": np.float32(1), "shift": total})
        return
    ctx.emit("add", [ctx.value(v) for v in values])
