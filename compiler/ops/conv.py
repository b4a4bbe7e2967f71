"""Convolution (any number of spatial dims, grouped and depthwise) as BLAS matrix products of
the weights with a patch matrix built from strided views of the padded input.

    y[n, o, *p] = bias[o] + sum_{c, *k} weight[o, c, *k] * x_pad[n, g*Cg + c, *(p*s + k*d)]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from ..node_cache import second_call
from ..parallel import split_rows
from .registry import OpDef, Shape, register
from .windows import offset_views, output_size, pad_spatial


def _out_size(size: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              pads: Sequence[int], dilations: Sequence[int]) -> list[int]:
    nsp = len(size)
    return [output_size(size[i], kernel[i], strides[i], dilations[i], pads[i], pads[i + nsp])
            for i in range(nsp)]


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
    out = _out_size(spatial, w.shape[2:], a["strides"], a["pads"], a["dilations"])
    if min(out) < 1:
        raise ValueError(f"kernel {list(w.shape[2:])} does not fit input {list(spatial)}")
    return (w.shape[0], *out)


def _pointwise(x: np.ndarray, weight: np.ndarray, strides: Sequence[int],
               y: np.ndarray) -> None:
    """A 1x1 ungrouped, unpadded conv on a large map is one product per sample: no copies."""
    x = x[(slice(None), slice(None), *(slice(None, None, s) for s in strides))]
    n, c = x.shape[:2]
    np.matmul(weight.reshape(weight.shape[0], c), x.reshape(n, c, -1), out=y)


def _patches_per_sample(x: np.ndarray, weight: np.ndarray, strides: Sequence[int],
                        pads: Sequence[int], dilations: Sequence[int], y: np.ndarray) -> None:
    """im2col as one copy of a strided view, (samples, C*k, positions), times the weights
    (O, C*k), one product per sample written straight into y (N, O, P): no transposes. Best
    when the weights are small (they are read once per sample) or the map is large."""
    n, c, *size = x.shape
    o, _, *kernel = weight.shape
    xp = pad_spatial(x, pads)
    out = _out_size(size, kernel, strides, pads, dilations)
    p, k = y.shape[2], int(np.prod(kernel))
    w = weight.reshape(o, c * k)
    sn, sc, *ss = xp.strides
    window = [s * d for s, d in zip(ss, dilations, strict=True)]
    slide = [s * st for s, st in zip(ss, strides, strict=True)]
    step = max(1, min(n, _PATCH_BYTES // (4 * c * k * p)))
    for i in range(0, n, step):
        xs = xp[i:i + step]
        b = len(xs)
        view = np.lib.stride_tricks.as_strided(xs, (b, c, *kernel, *out),
                                               (sn, sc, *window, *slide), writeable=False)
        np.matmul(w, np.ascontiguousarray(view).reshape(b, c * k, p), out=y[i:i + b])


def _patches_merged(x: np.ndarray, weight: np.ndarray, strides: Sequence[int],
                    pads: Sequence[int], dilations: Sequence[int], groups: int,
                    y: np.ndarray) -> None:
    """im2col with the patch matrix laid out (G, Cg*k, samples*positions), filled by one
    strided copy per kernel offset, times the weights (G, Og, Cg*k), into y (N, O, P). Enough
    samples per product that it is about _WIDTH columns wide: large weights on small maps
    (ResNet's last stage) are read once per product rather than once per sample, and groups
    are batched products."""
    n, c, *size = x.shape
    o, cg, *kernel = weight.shape
    xp = pad_spatial(x, pads)
    out = _out_size(size, kernel, strides, pads, dilations)
    p, k = y.shape[2], int(np.prod(kernel))
    w = weight.reshape(groups, o // groups, cg * k)
    step = max(1, min(n, _WIDTH // p))
    for i in range(0, n, step):
        xs = xp[i:i + step]
        b = len(xs)
        cols = np.empty((c, k, b, *out), dtype=np.float32)
        for j, view in enumerate(offset_views(xs, kernel, strides, dilations, out)):
            cols[:, j] = np.moveaxis(view, 1, 0)
        cols = cols.reshape(groups, cg * k, b * p)
        if b == 1:
            np.matmul(w, cols, out=y[i].reshape(groups, o // groups, p))
        else:
            y[i:i + b] = np.matmul(w, cols).reshape(o, b, p).transpose(1, 0, 2)


# columns per product: wide enough for BLAS, small enough that the patch matrix stays in cache
_WIDTH = 4096
_PATCH_BYTES = 8 * 2**20
# weights up to this size are cheap to read again for every sample
_SMALL_WEIGHTS = 512 * 2**10
# below this many multiply-adds per batch chunk, threads cost more than they save
_MIN_WORK = 2_000_000


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, strides: Sequence[int],
         pads: Sequence[int], dilations: Sequence[int], groups: int,
         unrolled: np.ndarray | None = None) -> np.ndarray:
    """`unrolled`: the conv as a dense (C*H*W, O*H'*W') matrix (see _unrolled), if known."""
    n, c, *size = x.shape
    out = _out_size(size, weight.shape[2:], strides, pads, dilations)
    p = int(np.prod(out))
    y = np.empty((n, weight.shape[0], p), dtype=np.float32)
    # a 1x1 conv on a small map is better served by many samples per product
    pointwise = (groups == 1 and not any(pads) and all(k == 1 for k in weight.shape[2:])
                 and p >= _WIDTH // 4)
    bias = bias.reshape(1, -1, 1)

    def chunk(rows: slice) -> None:
        if unrolled is not None:
            k = rows.stop - rows.start
            np.matmul(x[rows].reshape(k, -1), unrolled, out=y[rows].reshape(k, -1))
        elif pointwise:
            _pointwise(x[rows], weight, strides, y[rows])
        elif groups == 1 and (p >= _WIDTH // 4 or weight.nbytes <= _SMALL_WEIGHTS):
            _patches_per_sample(x[rows], weight, strides, pads, dilations, y[rows])
        else:
            _patches_merged(x[rows], weight, strides, pads, dilations, groups, y[rows])
        y[rows] += bias

    split_rows(chunk, n, min_rows=-(-_MIN_WORK // max(weight.size * p, 1)))
    return y.reshape(n, -1, *out)


# a conv on a tiny map (a spiking layer on 4x4 maps, say) is cheaper as one dense product with
# its unrolled matrix than through patches: up to this many times the conv's multiply-adds
_UNROLL_MACS = 4
_UNROLL_BYTES = 32 * 2**20


def _unrolled(node: Node, sample: Shape) -> np.ndarray | None:
    """The dense matrix of a conv on small maps, built on its second call (the simulator
    calls it every step; compiler/node_cache.py keeps it): the conv applied to the identity
    basis of its input space."""
    w = node.params["weight"]
    inputs, outputs = int(np.prod(sample)), int(np.prod(node.shape))
    if (inputs * outputs > _UNROLL_MACS * w.size * int(np.prod(node.shape[1:]))
            or 4 * inputs * outputs > _UNROLL_BYTES):
        return None

    def build() -> np.ndarray:
        a = node.attrs
        basis = np.eye(inputs, dtype=np.float32).reshape(inputs, *sample)
        return conv(basis, w, np.zeros(len(w), np.float32), a["strides"], a["pads"],
                    a["dilations"], a["groups"]).reshape(inputs, -1)

    return second_call(node, build)


def _eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    a = node.attrs
    return conv(inputs[0], node.params["weight"], node.params["bias"], a["strides"], a["pads"],
                a["dilations"], a["groups"], _unrolled(node, inputs[0].shape[1:]))


def window_settings(node: Node, extra: Sequence[str] = ()) -> str:
    """`k=3x3, s=1,1, p=1,1,1,1[, extra...][, d=..][, g=..]`: a conv-like node's window, as
    the printer shows it (conv, conv_transpose with its output padding as `extra`)."""
    a = node.attrs
    k = "x".join(str(s) for s in node.params["weight"].shape[2:])
    parts = [f"k={k}", f"s={','.join(map(str, a['strides']))}",
             f"p={','.join(map(str, a['pads']))}", *extra]
    if any(d != 1 for d in a["dilations"]):
        parts.append(f"d={','.join(map(str, a['dilations']))}")
    if a["groups"] != 1:
        parts.append(f"g={a['groups']}")
    return ", ".join(parts)


def _describe(node: Node) -> str:
    return window_settings(node)


register(OpDef("conv", conv_shape, _eval, _describe, linear=True))
