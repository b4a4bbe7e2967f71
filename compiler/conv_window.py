"""Which lowered synapse matrices are convolutions, so a backend can use a convolution process
(Lava's Conv) instead of the dense matrix.

`lower-synapses` records, for the path of ops from a source population to a target, the one
sliding window it amounts to (`window_of`): chains of conv and avgpool compose into a single
window (dilation 1), channel-wise ops and `add` keep it:

    kernel k = k1 + d2 (k2 - 1) s1,  stride s = s1 s2,  begin pad p = p1 + p2 s1

e.g. avgpool 2x2/2 then conv 3x3 pad 1 = one 6x6 window, stride 2, pad 2. That is only a
hint: `kernel_of` reads the kernel back out of a (quantized) dense matrix and accepts it only
if the convolution with it rebuilds that matrix exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir.graph import Graph, Node

_SAME_GEOMETRY = ("add", "batchnorm", "affine")


def _path(graph: Graph, cone: dict[str, Node], start: str, source: str) -> list[Node] | None:
    """The ops from `source` to `start` (in order), if there is exactly one path."""
    reaches: dict[str, bool] = {}

    def reach(name: str) -> bool:
        if name == source:
            return True
        if name not in cone:
            return False
        if name not in reaches:
            reaches[name] = any(reach(i) for i in cone[name].inputs)
        return reaches[name]

    path: list[Node] = []
    name = start
    while name != source:
        node = cone[name]
        nxt = [i for i in node.inputs if reach(i)]
        if len(nxt) != 1:
            return None
        path.append(node)
        name = nxt[0]
    return path[::-1]


def _geometry(node: Node) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """(kernel, strides, begin pads, dilations) of a window op; None if it is not one."""
    a = node.attrs
    if node.op == "conv":
        kernel = [int(k) for k in np.shape(node.params["weight"])[2:]]
    elif node.op == "avgpool":
        kernel = [int(k) for k in a["kernel"]]
    else:
        return None
    if len(kernel) != 2:
        return None
    return (kernel, [int(v) for v in a["strides"]], [int(v) for v in a["pads"][:2]],
            [int(v) for v in a.get("dilations", [1, 1])])


def window_of(graph: Graph, cone: list[Node], source: str, start: str) -> dict[str, Any] | None:
    """The single window that the ops from `source` to `start` amount to, or None."""
    src, out = graph.node(source), graph.node(start)
    if len(src.shape) != 3 or len(out.shape) != 3:
        return None
    path = _path(graph, {n.name: n for n in cone}, start, source)
    if not path:
        return None
    k, s, p = [1, 1], [1, 1], [0, 0]
    for node in path:
        if node.op in _SAME_GEOMETRY:
            continue
        geo = _geometry(node)
        if geo is None:
            return None
        k2, s2, p2, d2 = geo
        k = [k[i] + d2[i] * (k2[i] - 1) * s[i] for i in range(2)]
        p = [p[i] + p2[i] * s[i] for i in range(2)]
        s = [s[i] * s2[i] for i in range(2)]
    return {"in_shape": list(src.shape), "out_shape": list(out.shape), "kernel": k,
            "strides": s, "pads": p}


def _taps(n_out: int, n_in: int, k: int, s: int, p: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each kernel offset: the output positions whose input position is inside, and it."""
    out = np.arange(n_out)
    taps = []
    for j in range(k):
        pos = out * s - p + j
        ok = (pos >= 0) & (pos < n_in)
        taps.append((out[ok], pos[ok]))
    return taps


def kernel_of(weights: np.ndarray, window: dict[str, Any]) -> np.ndarray | None:
    """The kernel (C_out, C_in, kH, kW) whose convolution (cross-correlation, `window`'s stride
    and zero padding) is exactly the dense matrix `weights` (n_out, n_in); None if none is."""
    ci, h, w = window["in_shape"]
    co, ho, wo = window["out_shape"]
    (kh, kw), (sh, sw), (ph, pw) = window["kernel"], window["strides"], window["pads"]
    if (h + 2 * ph - kh) // sh + 1 != ho or (w + 2 * pw - kw) // sw + 1 != wo:
        return None  # asymmetric padding: not a (symmetric) Lava Conv
    dense = weights.reshape(co, ho, wo, ci, h, w)
    rows, cols = _taps(ho, h, kh, sh, ph), _taps(wo, w, kw, sw, pw)
    kernel = np.zeros((co, ci, kh, kw), weights.dtype)
    rebuilt = np.zeros_like(dense)
    for ky, (oy, y) in enumerate(rows):
        for kx, (ox, x) in enumerate(cols):
            if len(oy) and len(ox):
                kernel[:, :, ky, kx] = dense[:, oy[0], ox[0], :, y[0], x[0]]
                rebuilt[:, oy[:, None], ox[None, :], :, y[:, None], x[None, :]] = \
                    kernel[:, :, ky, kx]
    return kernel if np.array_equal(rebuilt, dense) else None
