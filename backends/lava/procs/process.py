"""Processes (interfaces): an integrate-and-fire neuron with reset by subtraction, and a readout
that accumulates the output layer's input current. Both are flat (n,) populations.

A whole batch of samples runs as one Lava run of N * steps time steps: the processes reset
themselves at the start of each sample (local step 1), which avoids Lava's slow per-element
Var.set/get between samples (about 22 us per element on this machine).
Local step = (t-1) % steps + 1.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

WORD_BITS = 30  # spike raster bits per int32 word


class IFSub(AbstractProcess):
    """IF neuron, reset by subtraction; one step (fixed_pt; floating_pt drops the shifts):

        v = clip(v + (a_in << 6) + bias, +-(2**23 - 1)),  bias = bias_mant << bias_exp
        s = v >= vth << 6;  v -= s * (vth << 6)

    bias is on from local step `depth` (when the first synaptic input arrives); input-fed
    populations take their bias mantissa per sample from `inputs` (n, N). No spike is sent on
    a sample's last `quiet` steps (its longest outgoing delay), so nothing crosses into the
    next sample. `counts` (N,) holds the
    spikes per sample in the window [depth, depth + window); `raster` the same window as bits."""

    def __init__(self, *, shape: tuple[int], vth: np.ndarray, v0: np.ndarray,
                 bias_mant: np.ndarray, bias_exp: int, depth: int, steps: int, window: int,
                 samples: int, inputs: np.ndarray | None = None, raster: bool = False,
                 quiet: int = 1, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        n = shape[0]
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=v0)
        self.v0 = Var(shape=shape, init=v0)
        self.vth = Var(shape=shape, init=vth)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=(1,), init=bias_exp)
        timing = np.array([depth, steps, window, int(inputs is not None), quiet])
        self.timing = Var(shape=(5,), init=timing)
        self.inputs = Var(shape=(n, samples) if inputs is not None else (1, 1),
                          init=inputs if inputs is not None else 0)
        words = -(-window // WORD_BITS)
        self.raster = Var(shape=(n, samples * words) if raster else (1, 1), init=0)
        self.counts = Var(shape=(samples,), init=0)


class Readout(AbstractProcess):
    """Sums its input current over each sample's steps: acc[:, sample] += a_in."""

    def __init__(self, *, shape: tuple[int], steps: int, samples: int,
                 name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.steps = Var(shape=(1,), init=steps)
        self.acc = Var(shape=(shape[0], samples), init=0)


class MaxPoolSpike(AbstractProcess):
    """Spiking max pooling: counts its input spikes (per sample) and spikes when the maximum
    count in a window grows. `index` (n_out, K) lists each window's inputs, -1 = padding."""

    def __init__(self, *, shape: tuple[int], index: np.ndarray, n_in: int, steps: int,
                 quiet: int = 1, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        self.s_in = InPort(shape=(n_in,))
        self.s_out = OutPort(shape=shape)
        self.index = Var(shape=index.shape, init=index)
        self.counts = Var(shape=(n_in + 1,), init=0)
        self.best = Var(shape=shape, init=0)
        self.steps = Var(shape=(2,), init=np.array([steps, quiet]))
