"""Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Pad on activations, and the
pass-through ops Identity and Dropout. None of them may touch the batch axis."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .registry import handles


@handles("Identity")
def identity(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.alias(node.output[0], ctx.value(node.input[0]))


@handles("Dropout")
def dropout(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """The identity in inference. Old exporters give every Dropout a mask output that nothing
    reads: only a mask that is used is refused."""
    if len(node.output) > 1 and node.output[1] and ctx.is_used(node.output[1]):
        raise ctx.fail(f"the mask output '{node.output[1]}' of Dropout is used; in inference "
                       "Dropout keeps everything, so the mask has no spiking equivalent: "
                       "remove what reads it")
    training = ctx.optional_const(2, "training_mode")
    if training is not None and training.size and bool(training.reshape(-1)[0]):
        raise ctx.fail("Dropout runs in training mode; export the model in eval mode "
                       "(model.eval())")
    ctx.alias(node.output[0], ctx.value(node.input[0]))


def _reshape_to(ctx: ImportContext, node: onnx.NodeProto, shape: tuple[int, ...]) -> None:
    x = ctx.value(node.input[0])
    if tuple(shape) == ctx.shapes[x]:
        ctx.alias(node.output[0], x)
    else:
        ctx.emit("reshape", [x], attrs={"shape": [int(d) for d in shape]})


@handles("Flatten")
def flatten(ctx: ImportContext, node: onnx.NodeProto) -> None:
    shape = ctx.shape(node.input[0])
    axis = int(ctx.attr("axis", 1))
    axis = axis + len(shape) + 1 if axis < 0 else axis
    if axis != 1:
        raise ctx.fail(f"Flatten with axis={axis} mixes the batch axis with features; "
                       "only axis=1 is supported")
    if len(shape) == 1:
        ctx.alias(node.output[0], ctx.value(node.input[0]))
    else:
        ctx.emit("flatten", [ctx.value(node.input[0])])


@handles("Reshape")
def reshape(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """The target's first entry is the batch (often folded from Shape as 1, or -1/0): it is
    dropped, and the rest must describe one sample."""
    shape = ctx.shape(node.input[0])
    target = [int(d) for d in ctx.const(node.input[1], "the target shape").reshape(-1)]
    if not target:
        raise ctx.fail("reshape to a scalar would drop the batch axis")
    # any other first entry, e.g. Shape(x)[0] * C (folded with the batch as 1), moves features
    # into the batch axis: the rest would still hold one sample's size, and pass the check below
    if target[0] not in (-1, 0, 1, ctx.batch):
        raise ctx.fail(f"target shape {target} merges the batch axis with other axes; its "
                       "first entry must be the batch size, -1 or 0")
    rest = target[1:]
    if not ctx.attr("allowzero", 0):
        rest = [shape[k] if d == 0 and k < len(shape) else d for k, d in enumerate(rest)]
    size = int(np.prod(shape))
    if rest.count(-1) > 1:
        raise ctx.fail(f"target shape {target} has more than one -1")
    if -1 in rest:
        known = int(np.prod([d for d in rest if d != -1]))
        if known == 0 or size % known:
            raise ctx.fail(f"cannot reshape [N, {', '.join(map(str, shape))}] to {target}")
        rest[rest.index(-1)] = size // known
    if int(np.prod(rest)) != size:
        raise ctx.fail(f"target shape {target} keeps the batch axis only if the rest holds "
                       f"{size} values per sample; it holds {int(np.prod(rest))}")
    _reshape_to(ctx, node, tuple(rest))


def _axes(ctx: ImportContext, node: onnx.NodeProto) -> list[int] | None:
    if ctx.opset >= 13:
        axes = ctx.optional_const(1, "axes")
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    axes = ctx.attr("axes")
    return None if axes is None else list(axes)


@handles("Squeeze")
def squeeze(ctx: ImportContext, node: onnx.NodeProto) -> None:
    shape = list(ctx.shape(node.input[0]))
    rank = len(shape) + 1
    axes = _axes(ctx, node)
    if axes is None:
        axes = [k + 1 for k, d in enumerate(shape) if d == 1]
    axes = [a + rank if a < 0 else a for a in axes]
    if 0 in axes:
        raise ctx.fail("Squeeze of the batch axis is not supported")
    if any(shape[a - 1] != 1 for a in axes):
        raise ctx.fail(f"cannot squeeze axes {axes} of [N, {', '.join(map(str, shape))}]")
    _reshape_to(ctx, node, tuple(d for k, d in enumerate(shape) if k + 1 not in axes))


@handles("Unsqueeze")
def unsqueeze(ctx: ImportContext, node: onnx.NodeProto) -> None:
    shape = list(ctx.shape(node.input[0]))
    axes = _axes(ctx, node)
    if axes is None:
        raise ctx.fail("Unsqueeze needs axes")
    rank = len(shape) + 1 + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if 0 in axes:
        raise ctx.fail("Unsqueeze in front of the batch axis is not supported")
    out = [-1] + shape
    for a in axes:
        out.insert(a, 1)
    _reshape_to(ctx, node, tuple(out[1:]))


@handles("Transpose")
def transpose(ctx: ImportContext, node: onnx.NodeProto) -> None:
    rank = len(ctx.shape(node.input[0])) + 1
    perm = list(ctx.attr("perm", list(range(rank))[::-1]))
    if perm[0] != 0:
        raise ctx.fail(f"perm {perm} moves the batch axis; only perms that keep axis 0 "
                       "first are supported")
    ctx.emit("transpose", [ctx.value(node.input[0])], attrs={"perm": [p - 1 for p in perm[1:]]})


@handles("Concat")
def concat(ctx: ImportContext, node: onnx.NodeProto) -> None:
    if any(ctx.is_const(i) for i in node.input):
        raise ctx.fail("concatenating constants with activations is not supported")
    rank = len(ctx.shape(node.input[0])) + 1
    axis = int(ctx.attr("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ctx.fail("Concat along the batch axis is not supported")
    ctx.emit("concat", [ctx.value(i) for i in node.input], attrs={"axis": axis - 1})


@handles("Pad")
def pad(ctx: ImportContext, node: onnx.NodeProto) -> None:
    mode = ctx.attr("mode", "constant")
    if mode != "constant":
        raise ctx.fail(f"Pad mode '{mode}' is not supported; only constant padding is")
    rank = len(ctx.shape(node.input[0])) + 1
    if ctx.opset < 11:
        pads = list(ctx.attr("pads", ctx.attr("paddings", [])))
        value = float(ctx.attr("value", 0.0))
        axes = list(range(rank))
    else:
        pads = [int(p) for p in ctx.const(node.input[1], "pads").reshape(-1)]
        cv = ctx.optional_const(2, "constant_value")
        value = 0.0 if cv is None or cv.size == 0 else float(cv.reshape(-1)[0])
        ax = ctx.optional_const(3, "axes")
        axes = list(range(rank)) if ax is None else [int(a) % rank for a in ax.reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise ctx.fail(f"pads {pads} do not match {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        begin[a], end[a] = pads[k], pads[k + len(axes)]
    if begin[0] or end[0]:
        raise ctx.fail("padding the batch axis is not supported")
    if min(begin + end) < 0:
        raise ctx.fail(f"negative pads (cropping) {pads} are not supported")
    ctx.emit("pad", [ctx.value(node.input[0])],
             attrs={"begin": begin[1:], "end": end[1:], "value": value})
