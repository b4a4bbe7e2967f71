"""Cast and CastLike. snnc computes in float32, so a cast of an activation to a float type is
the identity; CastLike(constant, x), which dynamo writes for every scalar it uses with `optimize=
False` (Clip bounds, fill values), folds to the constant in x's element type."""

from __future__ import annotations

import onnx
from onnx import helper

from ..context import ImportContext
from .registry import handles

FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
          onnx.TensorProto.BFLOAT16}


def _name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type)


def _activation_cast(ctx: ImportContext, node: onnx.NodeProto, to: int) -> None:
    if to not in FLOATS:
        raise ctx.fail(f"casting an activation to {_name(to)} rounds or truncates it, which "
                       "has no spiking equivalent; keep the activation a float")
    ctx.alias(node.output[0], ctx.value(node.input[0]))


@handles("Cast")
def cast(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _activation_cast(ctx, node, int(ctx.attr("to", onnx.TensorProto.FLOAT)))


@handles("CastLike")
def cast_like(ctx: ImportContext, node: onnx.NodeProto) -> None:
    source, like = node.input[0], node.input[1]
    # activations are floats; a type shape inference did not record is float32
    to = ctx.types.get(like, onnx.TensorProto.FLOAT)
    if ctx.is_const(source):
        try:
            dtype = helper.tensor_dtype_to_np_dtype(to)
        except (KeyError, TypeError, ValueError):
            raise ctx.fail(f"cannot cast the constant to element type {to}") from None
        ctx.set_const(node.output[0], ctx.consts[source].astype(dtype))
        return
    _activation_cast(ctx, node, to)
