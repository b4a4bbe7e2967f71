"""Elementwise ops: batchnorm (inference), affine y = x*scale + shift with constants that
broadcast against the per-sample shape, and the n-ary add of activations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_array, register


def channel_view(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector (C,) shaped to broadcast over a (C, *spatial) sample."""
    return v.reshape((-1,) + (1,) * (rank - 1))


def batchnorm_scale_shift(node: Node) -> tuple[np.ndarray, np.ndarray]:
    """BN as y = x*scale + shift per channel: scale = g/sqrt(var+eps), shift = b - mean*scale."""
    p = node.params
    scale = p["gamma"] / np.sqrt(p["var"] + np.float32(node.attrs["epsilon"]))
    return scale.astype(np.float32), (p["beta"] - p["mean"] * scale).astype(np.float32)


def _same(node: Node, shapes: Sequence[Shape]) -> Shape:
    return shapes[0]


def _batchnorm(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    x = inputs[0]
    scale, shift = batchnorm_scale_shift(node)
    rank = x.ndim - 1
    return (x * channel_view(scale, rank) + channel_view(shift, rank)).astype(np.float32)


def _affine_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    s = shapes[0]
    out = np.broadcast_shapes(s, node.params["scale"].shape, node.params["shift"].shape)
    if tuple(out) != tuple(s):
        raise ValueError(f"constant of shape {node.params['shift'].shape} would change {s}")
    return s


def _affine(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    return (inputs[0] * node.params["scale"] + node.params["shift"]).astype(np.float32)


def _describe_affine(node: Node) -> str:
    return f"scale={fmt_array(node.params['scale'])}, shift={fmt_array(node.params['shift'])}"


def _add_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"inputs have different shapes {[list(s) for s in shapes]}")
    return shapes[0]


def _add_inplace(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    out = inputs[0]
    for x in inputs[1:]:
        out += x
    return out


def _add(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    return _add_inplace(node, [inputs[0].copy(), *inputs[1:]])


def _affine_inplace(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    x = inputs[0]
    x *= node.params["scale"]
    x += node.params["shift"]
    return x


register(OpDef("batchnorm", _same, _batchnorm,
               lambda n: f"eps={n.attrs['epsilon']:.3g}", linear=True))
register(OpDef("affine", _affine_shape, _affine, _describe_affine, linear=True,
               inplace=_affine_inplace))
register(OpDef("add", _add_shape, _add, arity=None, linear=True, inplace=_add_inplace))
