"""Transposed convolution (ONNX ConvTranspose; any number of spatial dims, grouped): every
input position scatters its weighted kernel into the output,

    y[n, g*Og + o, *(i*s - p + k*d)] += sum_c weight[g*Cg + c, o, *k] * x[n, g*Cg + c, *i]

with weight (C_in, C_out / groups, *kernel), p the begin pads, and per spatial axis the output
length s (L - 1) + output_padding + d (K - 1) + 1 - pad_begin - pad_end. It is the adjoint
(transpose) of the conv with the same weight, strides, pads and dilations, which is how the
Loihi targets build its synapses (compiler/loihi/op_maps.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from ..parallel import split_rows
from .conv import window_settings
from .registry import OpDef, Shape, register

# bound on the (samples, C_out, kernel, positions) scatter columns of one chunk
_COLUMN_BYTES = 32 * 2**20


def output_size(size: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                pads: Sequence[int], dilations: Sequence[int],
                output_padding: Sequence[int]) -> list[int]:
    nsp = len(size)
    return [strides[i] * (size[i] - 1) + output_padding[i] + dilations[i] * (kernel[i] - 1)
            + 1 - pads[i] - pads[i + nsp] for i in range(nsp)]


def _shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    c, *spatial = shapes[0]
    w = node.params["weight"]
    a = node.attrs
    g = int(a["groups"])
    if c != w.shape[0] or c % g:
        raise ValueError(f"input has {c} channels but the weight expects {w.shape[0]}, "
                         f"in {g} groups")
    if w.ndim != len(spatial) + 2:
        raise ValueError(f"a {w.ndim - 2}-d kernel cannot run on {len(spatial)}-d input "
                         f"{shapes[0]}")
    out = output_size(spatial, w.shape[2:], a["strides"], a["pads"], a["dilations"],
                      a["output_padding"])
    if min(out) < 1:
        raise ValueError(f"pads {list(a['pads'])} leave no output of input {list(spatial)}")
    return (w.shape[1] * g, *out)


def conv_transpose(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                   strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
                   groups: int, output_padding: Sequence[int]) -> np.ndarray:
    n, ci, *size = x.shape
    _, cog, *kernel = weight.shape
    nsp, g = len(size), int(groups)
    cig, co, k, p = ci // g, cog * g, math.prod(kernel), math.prod(size)
    out = output_size(size, kernel, strides, pads, dilations, output_padding)
    # the un-cropped output: every scattered tap, and room for output_padding beyond them
    full = [max(strides[i] * (size[i] - 1) + dilations[i] * (kernel[i] - 1) + 1,
                pads[i] + out[i]) for i in range(nsp)]
    w = np.ascontiguousarray(np.asarray(weight, np.float32).reshape(g, cig, cog * k)
                             .transpose(0, 2, 1))  # (g, Og*K, Cg)
    y = np.empty((n, co, *out), np.float32)
    crop = tuple(slice(pads[i], pads[i] + out[i]) for i in range(nsp))

    def chunk(rows: slice) -> None:
        step = max(1, _COLUMN_BYTES // (4 * co * k * p))
        for start in range(rows.start, rows.stop, step):
            xs = x[start:min(rows.stop, start + step)]
            b = len(xs)
            cols = np.matmul(w[None], np.asarray(xs, np.float32).reshape(b, g, cig, p))
            cols = cols.reshape(b, co, *kernel, *size)
            buf = np.zeros((b, co, *full), np.float32)
            for offset in np.ndindex(*kernel):
                at = tuple(slice(o * d, o * d + s * (m - 1) + 1, s) for o, d, s, m in
                           zip(offset, dilations, strides, size, strict=True))
                buf[(slice(None), slice(None), *at)] += cols[(slice(None), slice(None),
                                                              *offset)]
            y[start:start + b] = buf[(slice(None), slice(None), *crop)]

    split_rows(chunk, n, min_rows=max(1, 2_000_000 // max(1, weight.size * p)))
    y += np.asarray(bias, np.float32).reshape(1, -1, *([1] * nsp))
    return y


def _eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    a = node.attrs
    return conv_transpose(inputs[0], node.params["weight"], node.params["bias"], a["strides"],
                          a["pads"], a["dilations"], a["groups"], a["output_padding"])


def _describe(node: Node) -> str:
    padding = node.attrs["output_padding"]
    return window_settings(node, [f"op={','.join(map(str, padding))}"] if any(padding) else [])


register(OpDef("conv_transpose", _shape, _eval, _describe, linear=True))
