"""Resize of the spatial axes (ONNX Resize, old Upsample), modes nearest and linear. Both are
separable: each spatial axis k has a 1-d interpolation matrix A_k (out_k, in_k), and

    y[n, c] = x[n, c] x_1 A_1 x_2 A_2 ...      (A_k applied along spatial axis k)

so resize is linear in x (a synapse like conv and pooling). The input coordinate of output
position i along an axis (`transform`, ONNX's coordinate_transformation_mode; s the scale,
L the input length, M the output length):

    asymmetric          i / s
    half_pixel          (i + 1/2) / s - 1/2
    pytorch_half_pixel  (i + 1/2) / s - 1/2, or 0 where M = 1
    align_corners       i (L - 1) / (M - 1), or 0 where M = 1
    tf_half_pixel_for_nn (i + 1/2) / s
    half_pixel_symmetric L/2 (1 - M / (L s)) + (i + 1/2) / s - 1/2

nearest takes the input at that coordinate rounded (`nearest_mode`: round_prefer_floor,
round_prefer_ceil, floor, ceil; `simple`: floor when enlarging, ceil when shrinking, as
onnxruntime runs Upsample and opset-10 Resize); linear weighs the two inputs around it, the
coordinate clamped to [0, L - 1] (edge values repeat). Coordinates are computed in float32 in
onnxruntime's order of operations, so that ties round as it rounds them (all of ONNX's
conformance cases and torch's exports agree exactly; onnxruntime 1.32 still rounds a few
exact ties differently, under round_prefer_ceil and tf_half_pixel_for_nn with scales such as
4/7 that float32 cannot hold, which no torch export uses).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_number, register

MODES = ("nearest", "linear")
TRANSFORMS = ("asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners",
              "tf_half_pixel_for_nn", "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


def _coordinates(n_in: int, n_out: int, scale: float, transform: str) -> np.ndarray:
    f = np.float32
    i = np.arange(n_out, dtype=f)
    s = f(scale)
    if transform == "asymmetric":
        return i / s
    if transform == "half_pixel":
        return (i + f(0.5)) / s - f(0.5)
    if transform == "pytorch_half_pixel":
        return (i + f(0.5)) / s - f(0.5) if n_out > 1 else np.zeros(n_out, f)
    if transform == "align_corners":
        return i * f(n_in - 1) / f(n_out - 1) if n_out > 1 else np.zeros(n_out, f)
    if transform == "tf_half_pixel_for_nn":
        return (i + f(0.5)) / s
    if transform == "half_pixel_symmetric":  # onnxruntime adds the offset in float64
        adjustment = f(n_out) / (s * f(n_in))
        offset = f(n_in) / f(2) * (f(1) - adjustment)
        return (np.float64(offset) + (i.astype(np.float64) + 0.5) / np.float64(s)
                - 0.5).astype(f)
    raise ValueError(f"coordinate transformation '{transform}' is not one of {TRANSFORMS}")


def _nearest(x: np.ndarray, mode: str, shrinking: bool) -> np.ndarray:
    if mode == "simple":
        mode = "ceil" if shrinking else "floor"
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    low = np.floor(x)
    tie = x - low == np.float32(0.5)
    if mode == "round_prefer_floor":
        return np.where(tie, low, np.round(x))
    if mode == "round_prefer_ceil":
        return np.where(tie, low + 1, np.round(x))
    raise ValueError(f"nearest mode '{mode}' is not one of {NEAREST_MODES}")


@functools.lru_cache(maxsize=256)
def _axis_taps(n_in: int, n_out: int, scale: float, mode: str, transform: str,
               nearest_mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, weights) of one axis' interpolation matrix (n_out, n_in)."""
    rows = np.arange(n_out)
    if scale == 1.0 and n_in == n_out:  # onnxruntime copies such an axis, whatever the mode
        return rows, rows, np.ones(n_out, np.float32)
    x = _coordinates(n_in, n_out, scale, transform)
    if mode == "nearest":
        index = _nearest(x, nearest_mode, scale < 1).astype(np.int64)
        return rows, np.clip(index, 0, n_in - 1), np.ones(n_out, np.float32)
    if mode != "linear":
        raise ValueError(f"resize mode '{mode}' is not one of {MODES}")
    x = np.clip(x, np.float32(0), np.float32(n_in - 1))
    low = np.minimum(x.astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    # onnxruntime's weights: the distance to the other tap
    w_low = np.abs(x - high.astype(np.float32))
    w_high = np.abs(x - low.astype(np.float32))
    same = low == high  # at the last input both taps are the same one: weight 1 in all
    w_low, w_high = np.where(same, 0.5, w_low), np.where(same, 0.5, w_high)
    return (np.concatenate([rows, rows]), np.concatenate([low, high]),
            np.concatenate([w_low, w_high]).astype(np.float32))


def axis_matrix(node: Node, in_shape: Shape, axis: int) -> np.ndarray:
    """The (out, in) interpolation matrix of spatial axis `axis` (0-based among spatial)."""
    a = node.attrs
    n_in, n_out = int(in_shape[1 + axis]), int(a["size"][axis])
    rows, cols, w = _axis_taps(n_in, n_out, float(a["scales"][axis]), a["mode"],
                               a["transform"], a.get("nearest_mode", "round_prefer_floor"))
    m = np.zeros((n_out, n_in), np.float32)
    np.add.at(m, (rows, cols), w)
    return m


def _shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    c, *spatial = shapes[0]
    a = node.attrs
    if len(a["size"]) != len(spatial) or len(a["scales"]) != len(spatial):
        raise ValueError(f"resize of {len(a['size'])} spatial axes cannot run on {shapes[0]}")
    if min(a["size"]) < 1 or min(a["scales"]) <= 0:
        raise ValueError(f"output size {list(a['size'])} and scales {list(a['scales'])} "
                         "must be positive")
    return (c, *(int(s) for s in a["size"]))


def resize(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    y = x
    for k in range(x.ndim - 2):
        axis = 2 + k
        if float(a["scales"][k]) == 1.0 and int(a["size"][k]) == x.shape[axis]:
            continue  # the identity (see _axis_taps)
        if a["mode"] == "nearest":  # a gather: cheaper than a product
            rows, cols, _ = _axis_taps(x.shape[axis], int(a["size"][k]),
                                       float(a["scales"][k]), "nearest", a["transform"],
                                       a.get("nearest_mode", "round_prefer_floor"))
            y = np.take(y, cols, axis=axis)
        else:
            m = axis_matrix(node, (0, *x.shape[2:]), k)
            y = np.moveaxis(np.tensordot(y, m, axes=([axis], [1])), -1, axis)
    return np.ascontiguousarray(y, dtype=np.float32)


def _describe(node: Node) -> str:
    a = node.attrs
    text = (f"{a['mode']}, size={'x'.join(map(str, a['size']))}, "
            f"scales={','.join(fmt_number(s) for s in a['scales'])}, {a['transform']}")
    return text + (f", {a['nearest_mode']}" if a["mode"] == "nearest" else "")


register(OpDef("resize", _shape, lambda n, i: resize(n, i[0]), _describe, linear=True))
