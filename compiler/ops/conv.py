"""Convolution (any number of spatial dims, grouped and depthwise) as BLAS matrix products,
one per kernel offset, over strided views of the padded input.

    y[n, o, *p] = bias[o] + sum_{c, *k} weight[o, c, *k] * x_pad[n, g*Cg + c, *(p*s + k*d)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, register
from .windows import offset_views, output_size, pad_spatial, windows


def conv_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    (c, *spatial) = shapes[0]
    w = node.params["weight"]
    a = node.attrs
    if c != w.shape[1] * a["groups"]:
        raise ValueError(
            f"input has {c} channels but the weight expects {w.shape[1]} x {a['groups']} groups"
        )
    if w.shape[0] % a["groups"]:  # each group needs the same number of output channels
        raise ValueError(f"{w.shape[0]} output channels do not split into {a['groups']} groups")
    nsp = len(spatial)
    if len(w.shape) != nsp + 2:
        raise ValueError(f"a {w.ndim - 2}-d kernel cannot slide over {nsp}-d input {shapes[0]}")
    out = [
        output_size(spatial[i], w.shape[2 + i], a["strides"][i], a["dilations"][i],
                    a["pads"][i], a["pads"][i + nsp])
        for i in range(nsp)
    ]
    if min(out) < 1:
        raise ValueError(f"kernel {list(w.shape[2:])} does not fit input {list(spatial)}")
    return (w.shape[0], *out)


def _pointwise(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
               strides: Sequence[int]) -> np.ndarray:
    """A 1x1 ungrouped, unpadded conv is one matrix product per sample: no windows needed."""
    x = x[(slice(None), slice(None), *(slice(None, None, s) for s in strides))]
    n, c, *spatial = x.shape
    w = weight.reshape(weight.shape[0], c)
    y = np.matmul(w, x.reshape(n, c, -1))  # (N, O, P)
    y += bias.reshape(1, -1, 1)
    return y.reshape(n, -1, *spatial).astype(np.float32, copy=False)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, strides: Sequence[int],
         pads: Sequence[int], dilations: Sequence[int], groups: int) -> np.ndarray:
    if groups == 1 and not any(pads) and all(k == 1 for k in weight.shape[2:]):
        return _pointwise(x, weight, bias, strides)
    if weight.shape[1] < _THIN:
        return _im2col(x, weight, bias, strides, pads, dilations, groups)
    return _shift_accumulate(x, weight, bias, strides, pads, dilations, groups)


# below this many input channels per group, per-offset products are too thin for BLAS
_THIN = 16


def _shift_accumulate(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                      strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
                      groups: int) -> np.ndarray:
    """For each kernel offset, one strided slice of the padded input times that offset's
    weights, as a batched BLAS product: cheaper than building the whole patch matrix
    (im2col), whose transposing copy dominates on large maps with many channels."""
    n, c, *size = x.shape
    o, cg, *kernel = weight.shape
    og = o // groups
    xp = pad_spatial(x, pads)
    out = [(size[i] + pads[i] + pads[i + len(size)] - dilations[i] * (kernel[i] - 1) - 1)
           // strides[i] + 1 for i in range(len(size))]
    w = weight.reshape(groups, og, cg, -1)  # (G, Og, Cg, K)
    p = n * int(np.prod(out))
    # channels first, batch and positions merged: one wide product per offset (and group)
    # instead of one small product per sample
    y = np.zeros((groups, og, p), dtype=np.float32)
    for k, view in enumerate(offset_views(xp, kernel, strides, dilations, out)):
        xs = np.ascontiguousarray(np.moveaxis(view, 1, 0)).reshape(groups, cg, p)
        y += np.matmul(w[:, :, :, k], xs)
    y = np.moveaxis(y.reshape(o, n, *out), 0, 1)
    y += bias.reshape(1, o, *([1] * len(out)))
    return np.ascontiguousarray(y)


def _im2col(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, strides: Sequence[int],
            pads: Sequence[int], dilations: Sequence[int], groups: int) -> np.ndarray:
    """One batched product over the full patch matrix: best when channels are few (the
    first layer), where per-offset products would be too thin for BLAS."""
    n, c = x.shape[:2]
    o, cg, *kernel = weight.shape
    win = windows(pad_spatial(x, pads), kernel, strides, dilations)  # (N, C, *out, *k)
    out_sp = win.shape[2:2 + len(kernel)]
    k = int(np.prod(kernel))
    # (N, G, Cg, *out, *k) -> (G, N, *out, Cg, *k) -> (G, P, Cg*k)
    win = win.reshape(n, groups, cg, *out_sp, *kernel)
    nsp = len(kernel)
    order = (1, 0, *range(3, 3 + nsp), 2, *range(3 + nsp, 3 + 2 * nsp))
    patches = np.ascontiguousarray(win.transpose(order)).reshape(groups, -1, cg * k)
    w = weight.reshape(groups, o // groups, cg * k).transpose(0, 2, 1)  # (G, Cg*k, Og)
    y = np.matmul(patches, w)  # (G, P, Og)
    y = y.reshape(groups, n, *out_sp, o // groups)
    y = np.moveaxis(y, 0, -2).reshape(n, *out_sp, o)
    y = np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y + bias.reshape(1, o, *([1] * nsp)), dtype=np.float32)


def _eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    a = node.attrs
    return conv(inputs[0], node.params["weight"], node.params["bias"], a["strides"], a["pads"],
                a["dilations"], a["groups"])


def _describe(node: Node) -> str:
    a = node.attrs
    k = "x".join(str(s) for s in node.params["weight"].shape[2:])
    parts = [f"k={k}", f"s={','.join(map(str, a['strides']))}",
             f"p={','.join(map(str, a['pads']))}"]
    if any(d != 1 for d in a["dilations"]):
        parts.append(f"d={','.join(map(str, a['dilations']))}")
    if a["groups"] != 1:
        parts.append(f"g={a['groups']}")
    return ", ".join(parts)


register(OpDef("conv", conv_shape, _eval, _describe, linear=True))
