"""Loihi 2's number formats, as Lava's bit-accurate models use them (research notes, 1.1-1.4):
8-bit weight mantissas with a shared exponent, 17-bit thresholds compared against v >> 6,
13-bit bias mantissas with a 3-bit exponent, and a 24-bit membrane state."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.graph import Node

VTH_MAX = 2**17 - 1
BIAS_MANT_MAX = 2**12 - 1
BIAS_EXP_MAX = 7
WEIGHT_EXP_MAX = 7
STATE_MAX = 2**23 - 1  # the 24-bit membrane state
INPUT_MAX = STATE_MAX  # one step's synaptic input, << 6, must fit the state
INPUT_VTH = 2048  # threshold of input-fed populations (their current arrives as a bias)
INPUT_BIAS_EXP = 6  # the input current arrives in weight units (as netx does for biases)
SHIFT = 6  # Lava scales weights and thresholds by 2**6 into the state
MAX_DELAY = 64  # synaptic delays: 1 (every synapse layer) + 0..63 (6 bits, Lava's DelayDense)


def mantissa(w: np.ndarray) -> np.ndarray:
    """Round scaled weights to Loihi's 8-bit mantissa for the matrix's sign mode: [0, 255]
    if all weights >= 0, [-255, 0] if all <= 0, else even values in [-256, 254] (Lava drops
    the lowest bit of mixed-sign weights, so we round to even ourselves)."""
    if np.all(w >= 0):
        return np.clip(np.rint(w), 0, 255)
    if np.all(w <= 0):
        return np.clip(np.rint(w), -255, 0)
    return np.clip(2 * np.rint(w / 2), -256, 254)


def weight_bits(m: np.ndarray) -> int:
    """Bits the mantissas use: unsigned magnitude bits, or two's complement bits if mixed."""
    pos = int(np.max(m, initial=0))
    neg = -int(np.min(m, initial=0))
    if pos and neg:
        return max(math.ceil(math.log2(pos + 1)), math.ceil(math.log2(neg))) + 1
    return max(1, math.ceil(math.log2(max(pos, neg) + 1)))


def bias_format(b_units: np.ndarray) -> tuple[np.ndarray, int]:
    """(13-bit mantissa, exponent) with mantissa << exponent ~ b_units."""
    peak = float(np.abs(b_units).max(initial=0.0))
    exp = 0
    while exp < BIAS_EXP_MAX and peak / 2**exp > BIAS_MANT_MAX:
        exp += 1
    mant = np.clip(np.rint(b_units / 2**exp), -BIAS_MANT_MAX, BIAS_MANT_MAX)
    return mant.astype(np.int32), exp


def extra_bias(node: Node) -> np.ndarray:
    """The neuron's own constant input current per step (i_shift), flat."""
    if "i_shift" in node.params:
        return np.broadcast_to(np.asarray(node.params["i_shift"], np.float64),
                               node.shape).reshape(-1)
    return np.zeros(math.prod(node.shape))


def threshold_gain(node: Node) -> Any:
    """Per-neuron factor (n,) on a population's input, bias and v0 that gives a reset-to-zero
    population one threshold, max(theta) (an IF neuron is unchanged when all of these scale
    together); ones for reset by subtraction and for uniform thresholds."""
    n = math.prod(node.shape)
    if node.op != "if" or node.attrs.get("reset", "subtract") != "zero":
        return np.ones(n)
    theta = np.broadcast_to(np.asarray(node.params["theta"], np.float64), node.shape)
    top = float(theta.max())
    if np.all(theta == top):
        return np.ones(n)
    return (top / theta).reshape(n)


def input_current(node: Node, z: np.ndarray) -> np.ndarray:
    """The bias mantissa (exponent INPUT_BIAS_EXP) that injects the direct-encoded input current
    z (N, *shape) into an input-fed population: round(S * (z + i_shift)), clipped to 13 bits."""
    scale = float(node.attrs["q_input_scale"]) * threshold_gain(node)[None, :]
    z = np.asarray(z, np.float64).reshape(len(z), -1) + extra_bias(node)[None, :]
    return np.clip(np.rint(scale * z), -BIAS_MANT_MAX, BIAS_MANT_MAX).astype(np.int32)
