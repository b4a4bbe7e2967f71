"""Layout ops that move values without arithmetic: flatten, reshape, transpose, concat, pad.
All axes and shapes here are per sample (the batch axis is never touched)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_number, register


def _flatten_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    return (int(np.prod(shapes[0])),)


def _reshape_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    target = tuple(node.attrs["shape"])
    if int(np.prod(target)) != int(np.prod(shapes[0])):
        raise ValueError(f"cannot reshape {list(shapes[0])} to {list(target)}")
    return target


def _transpose_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    perm = node.attrs["perm"]
    if sorted(perm) != list(range(len(shapes[0]))):
        raise ValueError(f"perm {perm} does not fit rank {len(shapes[0])}")
    return tuple(shapes[0][p] for p in perm)


def _concat_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    axis = node.attrs["axis"]
    first = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for k, (a, b) in enumerate(zip(s, first, strict=True)) if k != axis
        ):
            raise ValueError(f"cannot concatenate {[list(s) for s in shapes]} on axis {axis}")
    first[axis] = sum(s[axis] for s in shapes)
    return tuple(first)


def _pad_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    begin, end = node.attrs["begin"], node.attrs["end"]
    return tuple(d + b + e for d, b, e in zip(shapes[0], begin, end, strict=True))


def _pad(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    widths = [(0, 0)] + list(zip(node.attrs["begin"], node.attrs["end"], strict=True))
    return np.pad(inputs[0], widths, constant_values=node.attrs["value"])


def _describe_pad(node: Node) -> str:
    text = f"begin={list(node.attrs['begin'])}, end={list(node.attrs['end'])}"
    value = node.attrs["value"]
    return text if value == 0 else f"{text}, value={fmt_number(value)}"


register(OpDef("flatten", _flatten_shape, lambda n, i: i[0].reshape(len(i[0]), -1),
               linear=True))
register(OpDef("reshape", _reshape_shape,
               lambda n, i: i[0].reshape(len(i[0]), *n.attrs["shape"]),
               lambda n: f"shape={list(n.attrs['shape'])}", linear=True))
register(OpDef("transpose", _transpose_shape,
               lambda n, i: np.ascontiguousarray(
                   i[0].transpose(0, *[p + 1 for p in n.attrs["perm"]])),
               lambda n: f"perm={list(n.attrs['perm'])}", linear=True))
register(OpDef("concat", _concat_shape,
               lambda n, i: np.concatenate(i, axis=n.attrs["axis"] + 1),
               lambda n: f"axis={n.attrs['axis']}", arity=None, linear=True))
register(OpDef("pad", _pad_shape, _pad, _describe_pad, linear=True))


def _slices(node: Node) -> tuple[slice, ...]:
    """Per-sample index: one slice per axis (attrs hold normalised starts/ends/steps)."""
    a = node.attrs
    index = [slice(None)] * (max(a["axes"]) + 1 if a["axes"] else 0)
    for axis, start, end, step in zip(a["axes"], a["starts"], a["ends"], a["steps"],
                                      strict=True):
        index[axis] = slice(start, None if end < 0 else end, step)
    return tuple(index)


def _slice_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    out = list(shapes[0])
    for axis, s in enumerate(_slices(node)):
        out[axis] = len(range(*s.indices(shapes[0][axis])))
    if min(out, default=1) < 1:
        raise ValueError(f"slice {node.attrs} of {list(shapes[0])} is empty")
    return tuple(out)


register(OpDef("slice", _slice_shape, lambda n, i: np.ascontiguousarray(
    i[0][(slice(None), *_slices(n))]), lambda n: ", ".join(
    f"{a}:{s}:{e}:{st}" for a, s, e, st in zip(n.attrs["axes"], n.attrs["starts"],
                                              n.attrs["ends"], n.attrs["steps"], strict=True)),
    linear=True))
