"""What the Loihi path asks of one lowered synapse node (conv, linear or sparse): its weights
as a window or a matrix, per-neuron sums, synapse counts. Each question has one answer here,
so the NumPy bit-exact mode, the Lava backend, the netx exporter and map-cores agree."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..ir.graph import Node
from ..ops.sparse import csr
from . import linear_maps as lm
from .linear_maps import taps


def matrix(node: Node, in_shape: tuple[int, ...], key: str = "weight") -> sp.csr_matrix:
    """The synapse as a CSR matrix (n_out, n_in)."""
    if node.op == "sparse":
        return csr(node, key)
    if node.op == "linear":
        return sp.csr_matrix(np.asarray(node.params[key], np.float64))
    return lm.to_csr(window(node, in_shape, key))


def window(node: Node, in_shape: tuple[int, ...], key: str = "weight") -> lm.ConvMap:
    """The ConvMap of a conv synapse node reading a (C, H, W) value."""
    a = node.attrs
    chw = lm.as_chw(in_shape)
    assert chw is not None
    return lm.ConvMap(np.asarray(node.params[key], np.float64), int(a["groups"]),
                      (int(a["strides"][0]), int(a["strides"][1])),
                      (int(a["pads"][0]), int(a["pads"][1])),
                      (int(a["dilations"][0]), int(a["dilations"][1])), chw,
                      tuple(int(d) for d in node.shape), tuple(int(d) for d in node.shape))


def row_abs_sums(node: Node, weights: np.ndarray) -> np.ndarray:
    """Per target neuron (flat), the sum of |w| over its input synapses (an upper bound for
    a conv's border neurons)."""
    if node.op == "conv":
        per_c = np.abs(weights).reshape(len(weights), -1).sum(axis=1)
        return np.repeat(per_c, math.prod(node.shape[1:]))
    if node.op == "linear":
        return np.abs(weights).sum(axis=1)
    m = sp.csr_matrix((np.abs(weights), node.params["indices"], node.params["indptr"]),
                      shape=(math.prod(node.shape), int(node.attrs["n_in"])))
    return np.asarray(m.sum(axis=1)).reshape(-1)


def counts(node: Node, in_shape: tuple[int, ...]) -> tuple[int, int]:
    """(synapses, the largest fan-in of one neuron): non-zero weights, and for a conv
    C_out*H_out*W_out*C_in/groups*kH*kW less the taps that fall on zero padding."""
    if node.op == "sparse":
        nz = np.asarray(node.params["weight"]) != 0
        m = sp.csr_matrix((nz.astype(np.int64), node.params["indices"],
                           node.params["indptr"]),
                          shape=(math.prod(node.shape), int(node.attrs["n_in"])))
        rows = np.asarray(m.sum(axis=1)).reshape(-1)
        return int(rows.sum()), int(rows.max(initial=0))
    if node.op == "linear":
        nz = np.asarray(node.params["weight"]) != 0
        return int(nz.sum()), int(nz.sum(axis=1).max(initial=0))
    m = window(node, in_shape)
    nz = m.kernel != 0  # (C_out, C_in/g, kH, kW)
    co, ho, wo = m.out_chw
    _, h, w = m.in_chw
    valid = np.zeros(nz.shape[2:], np.int64)
    for ky in range(nz.shape[2]):
        oy, _ = taps(ho, h, m.strides[0], m.pads[0], ky * m.dilations[0])
        for kx in range(nz.shape[3]):
            ox, _ = taps(wo, w, m.strides[1], m.pads[1], kx * m.dilations[1])
            valid[ky, kx] = len(oy) * len(ox)
    total = int((nz.sum(axis=(0, 1)) * valid).sum())
    fan_in = int(nz.reshape(co, -1).sum(axis=1).max(initial=0))
    return total, fan_in
