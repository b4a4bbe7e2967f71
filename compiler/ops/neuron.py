"""The graph input and the integrate-and-fire neuron that `convert` puts in place of activations.

IF neuron, per time step t, with reset by subtraction (Rueckauer 2017):

    V[t] = V[t-1] + z[t] + i_shift
    s[t] = V[t] >= theta          (a spike)
    V[t] = V[t] - theta * s[t]
    out[t] = theta * s[t]         (the next layer sees spikes of amplitude theta)

with V[0] = v0. Its ANN meaning (what `evaluate` returns) is the rate limit clip(z, 0, theta).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_array, register


def _same(node: Node, shapes: Sequence[Shape]) -> Shape:
    return shapes[0]


def _input_shape(node: Node, shapes: Sequence[Shape]) -> Shape:
    return tuple(node.attrs["shape"])


def _if_rate(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    return np.clip(inputs[0], 0.0, node.params["theta"]).astype(np.float32, copy=False)


def _describe_if(node: Node) -> str:
    p = node.params
    parts = [f"theta={fmt_array(p['theta'])}", f"v0={fmt_array(p['v0'])}",
             f"reset={node.attrs.get('reset', 'subtract')}"]
    if "i_shift" in p:
        parts.append(f"i_shift={fmt_array(p['i_shift'])}")
    if node.attrs.get("signed"):
        parts.append("signed")
    if node.attrs.get("levels"):
        parts.append(f"levels={node.attrs['levels']}")
    return ", ".join(parts)


def _no_eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    raise RuntimeError("the input node is fed, not evaluated")


register(OpDef("input", _input_shape, _no_eval, arity=0))
register(OpDef("if", _same, _if_rate, _describe_if))
