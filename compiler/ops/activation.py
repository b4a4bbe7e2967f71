"""ANN activations: relu, clip, and (log-)softmax at the output."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_array, fmt_number, register


def _same(node: Node, shapes: Sequence[Shape]) -> Shape:
    return shapes[0]


def _threshold_note(node: Node) -> str:
    return f"theta={fmt_array(node.params['theta'])}" if "theta" in node.params else ""


def _clip(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    return np.clip(inputs[0], lo, hi).astype(np.float32, copy=False)


def _describe_clip(node: Node) -> str:
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    text = f"min={'-inf' if lo is None else fmt_number(lo)}, "
    text += f"max={'inf' if hi is None else fmt_number(hi)}"
    note = _threshold_note(node)
    return f"{text}, {note}" if note else text


def _softmax(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    x = inputs[0]
    axes = tuple(a + 1 for a in node.attrs["axes"])
    z = x - x.max(axis=axes, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=axes, keepdims=True)
    out = z - np.log(s) if node.attrs.get("log") else e / s
    return out.astype(np.float32, copy=False)


def _describe_softmax(node: Node) -> str:
    text = f"axes={list(node.attrs['axes'])}"
    return text + ", log" if node.attrs.get("log") else text


def _clip_inplace(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    return np.clip(inputs[0], lo, hi, out=inputs[0])


register(OpDef("relu", _same, lambda n, i: np.maximum(i[0], np.float32(0)), _threshold_note,
               inplace=lambda n, i: np.maximum(i[0], np.float32(0), out=i[0])))
register(OpDef("clip", _same, _clip, _describe_clip, inplace=_clip_inplace))
register(OpDef("softmax", _same, _softmax, _describe_softmax))
