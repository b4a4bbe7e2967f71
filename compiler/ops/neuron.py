"""The graph input and the integrate-and-fire neuron that `convert` puts in place of activations.

IF neuron, per time step t, with reset by subtraction (Rueckauer 2017):

    V[t] = V[t-1] + z[t] + i_shift
    s[t] = V[t] >= theta          (a spike)
    V[t] = V[t] - theta * s[t]
    out[t] = theta * s[t]         (the next layer sees spikes of amplitude theta)

with V[0] = v0. Its ANN meaning (what `evaluate` returns) is the rate limit clip(z, 0, theta).
Ternary neurons (attr `ternary`, for Clip(-a, a)) also fire -1 at V <= -theta, resetting by
+theta: out[t] = theta * (s+[t] - s-[t]), rate limit clip(z, -theta, theta).

Graded (multi-threshold, burst) neurons, attr `spike_bits` B > 1 (absent for B = 1, so binary
graphs stay as they were): per step the neuron emits a count n in one message,

    n = clip(floor(V[t] / theta), 0, K),   K = 2^B - 1      (max_count)
    V[t] = V[t] - n * theta
    out[t] = n * theta

(with floor corrected down where n * theta > V in float32, so the residue never goes
negative). theta is the step (quantum): the rate limit is K * theta, the ANN meaning
clip(z, 0, K * theta). Signed graded neurons also take back up to K counts, never more than
their net count: n = max(floor(V / theta), -min(net, K)) when V < 0 and net > 0 (the binary
signed rule, V < 0 and net > 0 -> -1, generalised to counts).
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


MAX_SPIKE_BITS = 8  # counts fit a byte: the simulator accumulates them in uint16 per 255 steps


def spike_levels(bits: int) -> int:
    """K = 2^B - 1: the most counts one graded message carries (also the most a signed
    neuron takes back in one step)."""
    return (1 << int(bits)) - 1


def spike_bits(node: Node) -> int:
    """B of an `if` node: 1 (binary) unless the node stores `spike_bits`."""
    return int(node.attrs.get("spike_bits", 1))


def max_count(node: Node) -> int:
    """The largest count the neuron emits per step (1 for binary neurons)."""
    return spike_levels(spike_bits(node))


def rate_limit(node: Node) -> np.ndarray:
    """The neuron's largest output per step: K * theta (theta for binary neurons)."""
    theta = node.params["theta"]
    k = max_count(node)
    return theta if k == 1 else (np.float32(k) * theta).astype(np.float32)


def _if_rate(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    top = rate_limit(node)
    low = -top if node.attrs.get("ternary") else 0.0  # ternary: clip(z, -theta, theta)
    return np.clip(inputs[0], low, top).astype(np.float32, copy=False)


def _describe_if(node: Node) -> str:
    p = node.params
    parts = [f"theta={fmt_array(p['theta'])}", f"v0={fmt_array(p['v0'])}",
             f"reset={node.attrs.get('reset', 'subtract')}"]
    if "i_shift" in p:
        parts.append(f"i_shift={fmt_array(p['i_shift'])}")
    if node.attrs.get("signed"):
        parts.append("signed")
    if node.attrs.get("ternary"):
        parts.append("ternary")
    if node.attrs.get("levels"):
        parts.append(f"levels={node.attrs['levels']}")
    if spike_bits(node) > 1:
        parts.append(f"spike_bits={spike_bits(node)}")
    return ", ".join(parts)


def _no_eval(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    raise RuntimeError("the input node is fed, not evaluated")


register(OpDef("input", _input_shape, _no_eval, arity=0))
register(OpDef("if", _same, _if_rate, _describe_if))
