"""Max, average and global average pooling over any number of spatial dims."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, register
from .windows import ceil_extra, output_size, pad_spatial, reduce_windows


def _geometry(node: Node, spatial: Sequence[int]) -> tuple[list[int], list[int]]:
    """Output sizes and the extra trailing padding that ceil mode needs."""
    a = node.attrs
    nsp = len(spatial)
    out, extra = [], []
    for i in range(nsp):
        k, s, d = a["kernel"][i], a["strides"][i], a["dilations"][i]
        pb, pe = a["pads"][i], a["pads"][i + nsp]
        o = output_size(spatial[i], k, s, d, pb, pe, bool(a["ceil_mode"]))
        out.append(o)
        extra.append(ceil_extra(spatial[i], k, s, d, pb + pe, o))
    return out, extra


def _pool_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    c, *spatial = shapes[0]
    if len(spatial) != len(node.attrs["kernel"]):
        raise ValueError(f"a {len(node.attrs['kernel'])}-d pool cannot run on {shapes[0]}")
    out, _ = _geometry(node, spatial)
    if min(out) < 1:
        raise ValueError(f"kernel {node.attrs['kernel']} does not fit input {list(spatial)}")
    return (c, *out)


def maxpool(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    out, extra = _geometry(node, x.shape[2:])
    xp = pad_spatial(x, a["pads"], -np.inf, extra)
    return reduce_windows(xp, a["kernel"], a["strides"], a["dilations"], out, np.maximum)


def avgpool(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    nsp = len(a["kernel"])
    out, extra = _geometry(node, x.shape[2:])
    geometry = (a["kernel"], a["strides"], a["dilations"], out)
    total = reduce_windows(pad_spatial(x, a["pads"], 0.0, extra), *geometry, np.add)
    if not any(a["pads"]) and not any(extra):  # every window lies inside: one divisor
        total /= np.float32(np.prod(a["kernel"]))
        return total
    # divisor: window cells inside the input (plus declared pads if count_include_pad);
    # the extra ceil-mode padding never counts
    ones = np.ones((1, 1, *x.shape[2:]), dtype=np.float32)
    if a["count_include_pad"]:
        mask = pad_spatial(pad_spatial(ones, a["pads"], 1.0), [0] * (2 * nsp), 0.0, extra)
    else:
        mask = pad_spatial(ones, a["pads"], 0.0, extra)
    count = reduce_windows(mask, *geometry, np.add)
    total /= np.maximum(count, 1.0)
    return total


def _describe_pool(node: Node) -> str:
    a = node.attrs
    parts = [f"k={'x'.join(map(str, a['kernel']))}", f"s={','.join(map(str, a['strides']))}"]
    if any(a["pads"]):
        parts.append(f"p={','.join(map(str, a['pads']))}")
    if any(d != 1 for d in a["dilations"]):
        parts.append(f"d={','.join(map(str, a['dilations']))}")
    if a["ceil_mode"]:
        parts.append("ceil")
    return ", ".join(parts)


def _gap_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    c, *spatial = shapes[0]
    return (c, *([1] * len(spatial)))


def _gap(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    x = inputs[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float32)


register(OpDef("maxpool", _pool_shape, lambda n, i: maxpool(n, i[0]), _describe_pool))
register(OpDef("avgpool", _pool_shape, lambda n, i: avgpool(n, i[0]), _describe_pool,
               linear=True))
register(OpDef("global_avgpool", _gap_shape, _gap, linear=True))
