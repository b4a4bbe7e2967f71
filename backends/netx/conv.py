"""Recognise a dense synapse matrix that is a 2-d convolution, so that netx can store it as a
`conv` layer (kernel, stride, padding) instead of the full matrix.

lower-synapses turns everything between two spiking layers (conv, average pooling, per-channel
affine) into one dense matrix. The ops of that stretch suggest a geometry: a window op
(kernel K2, stride S2, pad P2) applied after another (K1, S1, P1) composes to

    K = K1 + (K2 - 1) * S1,   S = S1 * S2,   P = P1 + P2 * S1

so 2x2 average pooling followed by a 3x3 conv (pad 1) is one 6x6 conv with stride 2, pad 2.
The kernel is read off the matrix and kept only if it reproduces every entry exactly: a wrong
guess costs nothing but a dense layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from snnc.compiler.ir.graph import Graph, Node

_WINDOW_OPS = ("conv", "avgpool", "affine")


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)


def cone(graph: Graph, value: str) -> list[Node]:
    """The nodes computing `value` from the spiking layers it reads, in order (source side
    first); empty if the stretch branches."""
    nodes: list[Node] = []
    name = value
    while graph.node(name).op not in ("if", "input", "maxpool"):
        node = graph.node(name)
        if len(node.inputs) != 1:
            return []
        nodes.append(node)
        name = node.inputs[0]
    return nodes[::-1]


def _window(node: Node) -> ConvGeometry | None:
    if node.op == "affine":  # a per-channel scale/shift: a 1x1 window
        return ConvGeometry((1, 1))
    a = node.attrs
    pads = list(a["pads"])
    if len(pads) != 4 or pads[:2] != pads[2:]:
        return None  # 2-d, symmetric padding only (Lava's Conv)
    kernel = node.params["weight"].shape[2:] if node.op == "conv" else a["kernel"]
    return ConvGeometry(_pair(kernel), _pair(a["strides"]), _pair(pads[:2]),
                        _pair(a["dilations"]))


def _pair(v: Sequence[int]) -> tuple[int, int]:
    return int(v[0]), int(v[1])


def geometry(nodes: Sequence[Node]) -> ConvGeometry | None:
    """The single convolution that a chain of conv / average pooling / affine ops amounts to,
    or None if it is not one (other ops, dilation inside a composition, not 2-d). Ceil mode
    and excluded padding are left to `kernel_of`'s exact check."""
    if not nodes or any(n.op not in _WINDOW_OPS or len(n.shape) != 3 for n in nodes):
        return None
    windows = [w for w in (_window(n) for n in nodes) if w is not None]
    if len(windows) != len(nodes):
        return None
    if len(windows) == 1:
        return windows[0]
    if any(w.dilation != (1, 1) for w in windows):
        return None
    k, s, p = [1, 1], [1, 1], [0, 0]
    for w in windows:
        for i in range(2):
            k[i] += (w.kernel[i] - 1) * s[i]
            p[i] += w.padding[i] * s[i]
            s[i] *= w.stride[i]
    return ConvGeometry(_pair(k), _pair(s), _pair(p))


def _positions(in_shape: Sequence[int], out_shape: Sequence[int], g: ConvGeometry
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every (output pixel, kernel offset) inside the input: the output pixel's flat index,
    the input pixel's flat index and the kernel offset's flat index."""
    (_, h, w), (_, ho, wo) = in_shape, out_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel, g.stride, g.padding, g.dilation
    y, x, i, j = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw),
                             indexing="ij")
    iy, ix = y * sh - ph + i * dh, x * sw - pw + j * dw
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    return (y * wo + x)[ok], (iy * w + ix)[ok], (i * kw + j)[ok]


def kernel_of(matrix: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
              g: ConvGeometry) -> np.ndarray | None:
    """The (C_out, C_in, kH, kW) kernel whose convolution is exactly `matrix`
    (n_out x n_in, CHW order), or None if there is none with this geometry."""
    c, o = in_shape[0], out_shape[0]
    rows, cols, offsets = _positions(in_shape, out_shape, g)
    m = matrix.reshape(o, -1, c, matrix.shape[1] // c)
    values = m[:, rows, :, cols]  # (positions, C_out, C_in)
    kernel = np.zeros((o, c, g.kernel[0] * g.kernel[1]), matrix.dtype)
    kernel[:, :, offsets] = values.transpose(1, 2, 0)
    # every position must agree with the kernel, and the matrix hold nothing else
    if not np.array_equal(kernel[:, :, offsets].transpose(2, 0, 1), values):
        return None
    if np.abs(values).sum() != np.abs(matrix).sum():
        return None
    return kernel.reshape(o, c, *g.kernel)


def dense_of(kernel: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int],
             g: ConvGeometry, groups: int = 1) -> np.ndarray:
    """The inverse of `kernel_of` for a (C_out, C_in / groups, kH, kW) kernel."""
    c, o = in_shape[0], out_shape[0]
    full = np.zeros((o, c, *kernel.shape[2:]), kernel.dtype)
    cg, og = c // groups, o // groups
    for k in range(groups):
        full[k * og:(k + 1) * og, k * cg:(k + 1) * cg] = kernel[k * og:(k + 1) * og]
    rows, cols, offsets = _positions(in_shape, out_shape, g)
    m = np.zeros((o, out_shape[1] * out_shape[2], c, in_shape[1] * in_shape[2]), kernel.dtype)
    m[:, rows, :, cols] = full.reshape(o, c, -1)[:, :, offsets].transpose(2, 0, 1)
    return m.reshape(o * out_shape[1] * out_shape[2], -1)


def grouped(kernel: np.ndarray) -> tuple[np.ndarray, int]:
    """The kernel in the fewest weights: the largest group count whose off-group blocks are
    all zero (depthwise average pooling becomes groups = channels)."""
    o, c = kernel.shape[:2]
    for groups in sorted({g for g in range(1, min(o, c) + 1) if o % g == 0 and c % g == 0},
                         reverse=True):
        og, cg = o // groups, c // groups
        blocks = kernel.reshape(groups, og, groups, cg, *kernel.shape[2:])
        mask = ~np.eye(groups, dtype=bool)
        if not np.any(blocks.transpose(0, 2, 1, 3, 4, 5)[mask]):
            diag = blocks[np.arange(groups), :, np.arange(groups)]  # (groups, og, cg, kh, kw)
            return diag.reshape(o, cg, *kernel.shape[2:]), groups
    return kernel, 1
