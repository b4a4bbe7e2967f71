"""Slice and Split of activations (channel splits in ShuffleNet-style blocks, crops) become
`slice` nodes: one per output, each along per-sample axes with normalised bounds."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .registry import handles


def _normalise(size: int, start: int, end: int, step: int) -> tuple[int, int, int]:
    """ONNX bounds (negative, out of range) to what Python's slice gives the same result.
    end = -1 stands for 'to the start' when stepping backwards."""
    lo, hi, st = slice(start, end, step).indices(size)
    return lo, (-1 if hi < 0 else hi), st


def _emit_slice(ctx: ImportContext, x: str, axes: list[int], starts: list[int],
                ends: list[int], steps: list[int], output: str) -> None:
    shape = ctx.shape(x)
    rank = len(shape) + 1
    norm = []
    for axis, s, e, st in zip(axes, starts, ends, steps, strict=True):
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            raise ctx.fail("slicing the batch axis is not supported")
        if not 0 < axis < rank:
            raise ctx.fail(f"axis {axis} is out of range for rank {rank}")
        if st == 0:
            raise ctx.fail("slice step 0")
        norm.append((axis - 1, *_normalise(shape[axis - 1], s, e, st)))
    norm.sort()
    attrs = {"axes": [n[0] for n in norm], "starts": [n[1] for n in norm],
             "ends": [n[2] for n in norm], "steps": [n[3] for n in norm]}
    ctx.emit("slice", [ctx.value(x)], attrs=attrs, output=output)


def _ints(value: np.ndarray) -> list[int]:
    return [int(v) for v in value.reshape(-1)]


@handles("Slice")
def slice_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = node.input[0]
    if ctx.opset < 10:
        starts, ends = list(ctx.attr("starts", [])), list(ctx.attr("ends", []))
        axes = list(ctx.attr("axes", range(1, len(starts) + 1)))
        steps = [1] * len(starts)
    else:
        starts = _ints(ctx.const(node.input[1], "starts"))
        ends = _ints(ctx.const(node.input[2], "ends"))
        given_axes = ctx.optional_const(3, "axes")
        given_steps = ctx.optional_const(4, "steps")
        axes = list(range(len(starts))) if given_axes is None else _ints(given_axes)
        steps = [1] * len(starts) if given_steps is None else _ints(given_steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.fail("starts, ends, axes and steps differ in length")
    _emit_slice(ctx, x, axes, starts, ends, steps, node.output[0])


@handles("Split")
def split(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = node.input[0]
    rank = len(ctx.shape(x)) + 1
    axis = int(ctx.attr("axis", 0))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ctx.fail("Split along the batch axis is not supported")
    size = ctx.shape(x)[axis - 1]
    outputs = list(node.output)
    if ctx.opset < 13:
        parts = ctx.attr("split")
    else:
        given = ctx.optional_const(1, "split")
        parts = None if given is None else _ints(given)
    if parts is None:
        n = int(ctx.attr("num_outputs", len(outputs)))
        chunk = -(-size // n)  # the last part may be smaller (opset 18 rule)
        parts = [min(chunk, size - k * chunk) for k in range(n)]
    parts = [int(p) for p in parts]
    if len(parts) != len(outputs) or sum(parts) != size or min(parts) < 1:
        raise ctx.fail(f"split {parts} does not divide axis {axis} of size {size} into "
                       f"{len(outputs)} outputs")
    start = 0
    for out, p in zip(outputs, parts, strict=True):
        if out:
            _emit_slice(ctx, x, [axis], [start], [start + p], [1], out)
        start += p
