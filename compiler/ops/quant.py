"""Quantizing and bounding ops, and the one activation they are recognised as.

* `round` (attrs mode = floor | round | ceil): ONNX Floor/Round/Ceil. Round is half-to-even,
  as in ONNX.
* `bound`: elementwise min/max with constants (ONNX Min/Max by a per-channel constant);
  params `lo`, `hi` (either may be +-inf).
* `qclip`: the clipped, optionally quantized activation that `recognise-activations` replaces
  a chain of the above (plus affine/relu/clip) with (Bu et al., ICLR 2022, eq. 16):

      levels L > 0:  y = theta * clip(floor(z * L / theta + phi) / L, 0, 1)
      levels L = 0:  y = clip(z, 0, theta)

  `theta` and `phi` are scalars or per channel. The converted IF neuron fires at theta and starts
  at V(0) = phi * theta, which makes T = L steps reproduce the staircase for constant input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_array, register

ROUNDING = {"floor": np.floor, "round": np.round, "ceil": np.ceil}


def _same(node: Node, shapes: Sequence[Shape]) -> Shape:
    return shapes[0]


def _round(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    return ROUNDING[node.attrs["mode"]](inputs[0]).astype(np.float32, copy=False)


def _bound(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    return np.clip(inputs[0], node.params["lo"], node.params["hi"]).astype(np.float32,
                                                                           copy=False)


def qclip(z: np.ndarray, theta: np.ndarray, levels: int, phi: np.ndarray) -> np.ndarray:
    """The qclip activation of `z` (any float array broadcasting against theta and phi)."""
    if levels == 0:
        return np.clip(z, 0, theta)
    steps = np.clip(np.floor(z * (levels / theta) + phi), 0, levels)
    return steps * (theta / levels)


def _qclip(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    out = qclip(inputs[0], node.params["theta"], int(node.attrs["levels"]), node.params["phi"])
    return out.astype(np.float32, copy=False)


def _describe_qclip(node: Node) -> str:
    text = f"theta={fmt_array(node.params['theta'])}, levels={node.attrs['levels']}"
    if node.attrs["levels"]:
        text += f", phi={fmt_array(node.params['phi'])}"
    return text


register(OpDef("round", _same, _round, lambda n: f"mode={n.attrs['mode']}"))
register(OpDef("bound", _same, _bound,
               lambda n: f"lo={fmt_array(n.params['lo'])}, hi={fmt_array(n.params['hi'])}"))
register(OpDef("qclip", _same, _qclip, _describe_qclip))
