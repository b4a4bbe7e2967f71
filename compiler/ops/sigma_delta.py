"""The sigma-delta neuron (`sd`) that `convert --neuron sigma-delta` puts in place of a ReLU: Lava's
stock SigmaDelta process (lava.proc.sdn, act_mode RELU, cum_error off), which Loihi 2 runs on
its NeuroCores with graded spikes.

Per time step t, with state act = residue = recon = 0 at the start of a sample:

    a       = relu(z[t])                       (z: the synapse ops' value, bias included)
    delta   = a - act + residue
    msg     = delta if |delta| >= vth else 0   (the graded message sent at step t)
    residue = delta - msg
    act     = a
    recon  += msg                              (what the receivers have summed so far)

Downstream ops read `recon`: a linear op of reconstructions is Lava's sigma (the sum of W @ msg
over the steps) plus the bias once, which the SigmaDelta process adds inside its activation.
The reconstruction is off by the residue, |residue| < vth, so each layer transmits its
activation to within vth (one threshold per layer: Lava's SigmaDelta holds one `vth`).

For a static sample the whole network settles in its first step on the reference clock (every
node sees its inputs' values of the same step; on Loihi, after its depth in steps) and then
sends nothing: at t = 1 delta = a, so a neuron sends its whole activation once if it reaches
vth and nothing otherwise. That is the ANN meaning (`evaluate`): relu(z) with a dead zone below
vth. `params["scale"]` is the layer's activation scale (the clip level normalize-thresholds
chose): what vth is chosen relative to and what fixed-point quantization sizes the integer
activation unit from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir.graph import Node
from .registry import OpDef, Shape, fmt_array, register

ACTIVATIONS = ("relu",)


def _same(node: Node, shapes: Sequence[Shape]) -> Shape:
    return shapes[0]


def transmit(node: Node, a: np.ndarray) -> np.ndarray:
    """What a sigma-delta neuron at rest sends for activation `a` in one message: a if
    |a| >= vth, else 0 (the dead zone)."""
    vth = node.params["vth"]
    return np.where(np.abs(a) >= vth, a, np.float32(0)).astype(np.float32, copy=False)


def activation(node: Node, z: np.ndarray) -> np.ndarray:
    return np.maximum(z, np.float32(0)).astype(np.float32, copy=False)


def _settled(node: Node, inputs: Sequence[np.ndarray]) -> np.ndarray:
    return transmit(node, activation(node, inputs[0]))


def _describe(node: Node) -> str:
    p = node.params
    return (f"vth={fmt_array(p['vth'])}, scale={fmt_array(p['scale'])}, "
            f"act={node.attrs.get('act', 'relu')}")


register(OpDef("sd", _same, _settled, _describe))
