"""Fully connected layer on the last axis: y = x @ weight.T + bias, weight (out, in)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, register


def _shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    w = node.params["weight"]
    if not shapes[0] or shapes[0][-1] != w.shape[1]:
        raise ValueError(f"input {shapes[0]} does not end in {w.shape[1]} features")
    return (*shapes[0][:-1], w.shape[0])


def _eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    y = inputs[0] @ node.params["weight"].T + node.params["bias"]
    return y.astype(np.float32, copy=False)


def _describe(node: Node) -> str:
    out_f, in_f = node.params["weight"].shape
    return f"{in_f}->{out_f}"


register(OpDef("linear", _shape, _eval, _describe, linear=True))
