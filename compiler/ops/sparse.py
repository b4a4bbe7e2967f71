"""A sparse linear map in CSR form: y = W @ flat(x) + bias, W (n_out, n_in) held as its three
CSR arrays (weight = the non-zero values, indices = their columns, indptr = where each row
starts). The output takes the node's shape. What synapses that are neither a convolution nor a
dense layer become (concat placements, channel shuffles, crops) on the Loihi targets."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..ir.graph import Node
from .registry import OpDef, Shape, register


def csr(node: Node, key: str = "weight") -> sp.csr_matrix:
    """The node's matrix (n_out, n_in) with the values params[key] (e.g. q_weight), on copies
    of the arrays: scipy's in-place methods (eliminate_zeros, sort_indices) would otherwise
    rewrite the node's parameters under every later user of the graph."""
    p = node.params
    n_out = math.prod(node.shape)
    return sp.csr_matrix((np.asarray(p[key]), np.asarray(p["indices"]),
                          np.asarray(p["indptr"])), shape=(n_out, int(node.attrs["n_in"])),
                         copy=True)


def _shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    if math.prod(shapes[0]) != int(node.attrs["n_in"]):
        raise ValueError(f"input {list(shapes[0])} does not have {node.attrs['n_in']} values")
    return tuple(node.shape)


def _eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    x = inputs[0].reshape(len(inputs[0]), -1)
    y = (csr(node) @ x.T).T + np.asarray(node.params["bias"]).reshape(1, -1)
    return np.ascontiguousarray(y, np.float32).reshape(len(x), *node.shape)


def _describe(node: Node) -> str:
    n_out = math.prod(node.shape)
    return f"{node.attrs['n_in']}->{n_out}, nnz={len(node.params['weight'])}"


register(OpDef("sparse", _shape, _eval, _describe, linear=True))
