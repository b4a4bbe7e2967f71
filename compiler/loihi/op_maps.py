"""How each linear IR op transforms the maps from the source populations to its inputs
(compiler/loihi/linear_maps.py): windows compose, channel-wise scales stay kernels, fully
connected layers make matrices, and pure data movement (transpose, slice, crops) becomes a
permutation matrix found by running the op on the inputs' index numbers. Resize and strided
transposed convolutions become CSR matrices built from the op's own definition.

A form is {source population: the map from its spikes to this value}; constant terms (biases,
padding values) are not tracked here: lower-synapses reads them off one run on zero input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import ModelError
from ..ir.graph import Node
from ..ops import opdef
from ..ops.elementwise import batchnorm_scale_shift
from ..ops.resize import axis_matrix
from . import linear_maps as lm

Form = dict[str, lm.LinearMap]
Shape = tuple[int, ...]


def _each(forms: Form, fn: Callable[[lm.LinearMap], lm.LinearMap]) -> Form:
    return {s: fn(m) for s, m in forms.items()}


def _window_op(node: Node, in_shape: Shape) -> lm.LinearMap:
    """The op's own map, as a window where it is one, else as a CSR matrix."""
    a = node.attrs
    nsp = len(in_shape) - 1
    if node.op == "conv":
        w = np.asarray(node.params["weight"], np.float64)
        made = lm.window(w, a["groups"], a["strides"], a["pads"][:nsp], a["dilations"],
                         in_shape, node.shape)
    elif node.op == "avgpool":
        made = _avgpool(node, in_shape)
    else:  # global_avgpool
        c, *spatial = in_shape
        k = np.full((c, 1, *spatial), 1.0 / math.prod(spatial))
        made = lm.window(k, c, [1] * nsp, [0] * nsp, [1] * nsp, in_shape, node.shape)
    if made is None:
        raise ModelError.at(node, f"a {nsp}-d {node.op} between spiking layers is not "
                            "supported by the lava/loihi targets (1-d and 2-d are)")
    return made


def _avgpool(node: Node, in_shape: Shape) -> lm.LinearMap | None:
    """Average pooling is a uniform depthwise window where every window divides by its full
    size; otherwise (excluded padding, ceil-mode edges) its own CSR matrix."""
    a = node.attrs
    nsp = len(in_shape) - 1
    c = in_shape[0]
    k = np.full((c, 1, *a["kernel"]), 1.0 / math.prod(a["kernel"]))
    uniform = lm.window(k, c, a["strides"], a["pads"][:nsp], a["dilations"], in_shape,
                        node.shape)
    ones = np.ones((1, *in_shape), np.float32)
    pooled = opdef("avgpool").evaluate(node, [ones])[0]
    if uniform is None:
        return None
    reference = _apply_window(uniform, ones)
    if np.allclose(pooled.reshape(-1), reference, rtol=1e-6, atol=1e-7):
        return uniform
    # each output averages its valid taps with one weight: pooled(ones) / valid taps
    pattern = lm.to_csr(lm.window(np.ones_like(k), c, a["strides"], a["pads"][:nsp],
                                  a["dilations"], in_shape, node.shape))
    valid = np.asarray(pattern.sum(axis=1)).reshape(-1)
    weight = pooled.reshape(-1).astype(np.float64) / np.maximum(valid, 1)
    return lm.MatrixMap(sp.csr_matrix(sp.diags(weight) @ pattern), in_shape, node.shape)


def _resize(node: Node, in_shape: Shape) -> lm.MatrixMap:
    """Resize is separable: per channel the Kronecker product of its axes' interpolation
    matrices (nearest: one 1 per row; linear: two weights), the same matrices the executor
    applies. (Upsampling spreads each input over several outputs, so it is no window.)"""
    m = sp.identity(in_shape[0], dtype=np.float64, format="csr")
    for axis in range(len(in_shape) - 1):
        m = sp.kron(m, sp.csr_matrix(axis_matrix(node, in_shape, axis).astype(np.float64)),
                    format="csr")
    return lm.MatrixMap(m, in_shape, node.shape)


def _conv_transpose(node: Node, in_shape: Shape) -> lm.LinearMap:
    """A transposed convolution is the adjoint of the conv with its weight, strides, pads and
    dilations run from its output back to its input: that conv's matrix, transposed. At
    stride 1 it is itself a conv (kernel flipped, channels swapped per group, begin pad
    d (K - 1) - p), so it stays a window there."""
    a = node.attrs
    nsp = len(in_shape) - 1
    w = np.asarray(node.params["weight"], np.float64)
    g = int(a["groups"])
    pads = [d * (k - 1) - p for d, k, p in zip(a["dilations"], w.shape[2:], a["pads"][:nsp],
                                               strict=True)]
    if all(s == 1 for s in a["strides"]) and min(pads) >= 0:
        cig, cog = w.shape[0] // g, w.shape[1]
        kernel = w.reshape(g, cig, cog, *w.shape[2:]).swapaxes(1, 2)
        kernel = np.flip(kernel, axis=tuple(range(3, 3 + nsp))).reshape(g * cog, cig,
                                                                          *w.shape[2:])
        made = lm.window(kernel, g, a["strides"], pads, a["dilations"], in_shape, node.shape)
        if made is not None:
            return made
    forward = lm.window(w, g, a["strides"], a["pads"][:nsp], a["dilations"], node.shape,
                        in_shape)
    if forward is None:
        raise ModelError.at(node, f"a {nsp}-d conv_transpose between spiking layers is not "
                            "supported by the lava/loihi targets (1-d and 2-d are)")
    return lm.MatrixMap(sp.csr_matrix(lm.to_csr(forward).T), in_shape, node.shape)


def _apply_window(m: lm.ConvMap, x: np.ndarray) -> np.ndarray:
    return np.asarray(lm.to_csr(m) @ x.reshape(-1).astype(np.float64))


def _data_movement(node: Node, shapes: Sequence[Shape], k: int) -> sp.csr_matrix:
    """The 0/1 matrix (n_out, n_in_k) of a pure data-movement op from its input k: the op
    run on the input's index numbers (1-based, other inputs zero) says where each value
    goes; positions it fills with a constant read 0 (the constant is in the bias)."""
    inputs = [np.zeros((1, *s), np.float64) for s in shapes]
    base = opdef(node.op).evaluate(node, inputs).reshape(-1).astype(np.float64)
    n_in = math.prod(shapes[k])
    inputs[k] = np.arange(1, n_in + 1, dtype=np.float64).reshape(1, *shapes[k])
    ids = opdef(node.op).evaluate(node, inputs).reshape(-1).astype(np.float64) - base
    rows = np.nonzero(ids > 0)[0]
    cols = np.rint(ids[rows]).astype(np.int64) - 1
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), n_in))


def _channel_concat(node: Node, shapes: Sequence[Shape], k: int) -> lm.LinearMap | None:
    """Input k of a channel concat as a 1x1 window placing its channels (kernel C_out x C_k),
    so that a conv after the concat stays a conv."""
    if node.attrs["axis"] != 0 or lm.as_chw(shapes[k]) is None:
        return None
    offset = sum(s[0] for s in shapes[:k])
    ck, c = shapes[k][0], node.shape[0]
    kernel = np.zeros((c, ck, 1, 1))
    kernel[offset + np.arange(ck), np.arange(ck), 0, 0] = 1.0
    nsp = len(shapes[k]) - 1
    return lm.window(kernel, 1, [1] * nsp, [0] * nsp, [1] * nsp, shapes[k], node.shape)


def _spatial_pad(node: Node, in_shape: Shape) -> lm.LinearMap | None:
    """Zero padding of the spatial axes only: a 1x1 identity window with those pads."""
    begin, end = list(node.attrs["begin"]), list(node.attrs["end"])
    if begin[0] or end[0] or min(begin + end) < 0:
        return None
    c, nsp = in_shape[0], len(in_shape) - 1
    return lm.window(np.ones((c, 1, *([1] * nsp))), c, [1] * nsp, begin[1:], [1] * nsp,
                     in_shape, node.shape)


def _outer(forms: Form, op_map: lm.LinearMap) -> Form:
    if isinstance(op_map, lm.ConvMap):
        return _each(forms, lambda m: lm.compose(op_map, m))
    return _each(forms, lambda m: lm.matmul(op_map.matrix, m, op_map.shape))


def _sum(parts: Sequence[Form]) -> Form:
    total: Form = {}
    for form in parts:
        for s, m in form.items():
            total[s] = lm.add(total[s], m) if s in total else m
    return total


def node_form(node: Node, inputs: Sequence[Form], shapes: Sequence[Shape]) -> Form:
    """The form of `node`'s value from its inputs' forms (shapes: its inputs' shapes)."""
    op = node.op
    if op in ("conv", "avgpool", "global_avgpool"):
        return _outer(inputs[0], _window_op(node, shapes[0]))
    if op == "resize":
        return _outer(inputs[0], _resize(node, shapes[0]))
    if op == "conv_transpose":
        return _outer(inputs[0], _conv_transpose(node, shapes[0]))
    if op in ("flatten", "reshape"):
        return _each(inputs[0], lambda m: lm.view(m, node.shape))
    if op == "batchnorm":
        scale, _ = batchnorm_scale_shift(node)
        per_c = np.asarray(scale, np.float64).reshape((-1,) + (1,) * (len(node.shape) - 1))
        return _each(inputs[0], lambda m: lm.scale_rows(m, per_c))
    if op == "affine":
        return _each(inputs[0], lambda m: lm.scale_rows(m, node.params["scale"]))
    if op == "add":
        return _sum(inputs)
    if op == "linear":
        w = np.asarray(node.params["weight"], np.float64)
        return _each(inputs[0], lambda m: lm.matmul(w, m, node.shape))
    if op == "pad":
        made = _spatial_pad(node, shapes[0])
        if made is not None:
            return _outer(inputs[0], made)
    parts = []
    for k, form in enumerate(inputs):
        made = _channel_concat(node, shapes, k) if op == "concat" else None
        if made is None:
            made = lm.MatrixMap(_data_movement(node, shapes, k), shapes[k], node.shape)
        parts.append(_outer(form, made))
    return _sum(parts)
