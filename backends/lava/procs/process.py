"""Processes (interfaces): an integrate-and-fire neuron with reset by subtraction, the host side
of a stock Lava LIF population, spiking max pooling, and a readout that accumulates the output
layer's input current. All are flat (n,) populations.

A whole batch of samples runs as one Lava runtime, `steps` time steps per sample: each
population restarts at local step `depth` (when the sample's first input reaches it), which
avoids Lava's slow per-element Var.set/get between samples (about 22 us per element here).
Before its depth a population still finishes the previous sample, so nothing leaks across.
Local step = (t-1) % steps + 1.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from snnc.compiler.loihi.populations import payload_bits

WORD_BITS = 30  # spike raster bits per int32 word


def raster_words(window: int, bits: int = 1) -> int:
    """int32 words per neuron and sample for `window` steps of `bits`-bit payloads (a word
    holds WORD_BITS // bits steps)."""
    return -(-window // (WORD_BITS // bits))


def _recording(proc: AbstractProcess, n: int, samples: int, window: int, raster: bool,
               bits: int = 1) -> None:
    """`counts` (N,): messages (n != 0) per sample in the window [depth, depth + window) of
    local steps, `payload` (N,): the counts they carried (sum |n|); `raster`: the same window
    as `bits`-bit fields (if asked for): the payload n, plus K for signed neurons."""
    words = raster_words(window, bits)
    proc.raster = Var(shape=(n, samples * words) if raster else (1, 1), init=0)
    proc.counts = Var(shape=(samples,), init=0)
    proc.payload = Var(shape=(samples,), init=0)


def _inputs(inputs: np.ndarray | None, n: int, samples: int) -> Var:
    return Var(shape=(n, samples) if inputs is not None else (1, 1),
               init=inputs if inputs is not None else 0)


class IFSub(AbstractProcess):
    """IF neuron, reset by subtraction; one step (fixed_pt; floating_pt drops the shifts):

        v = clip(v + (a_in << 6) + bias, +-(2**23 - 1)),  bias = bias_mant << bias_exp
        s = v >= vth << 6;  v -= s * (vth << 6)

    Graded (`levels` K = 2^B - 1 > 1) and signed neurons send a payload n on s_out instead:

        n = clip(floor(v / (vth << 6)), lo, K);  v -= n * (vth << 6)

    (integer floor division, toward -inf; floating_pt: floor(v / vth), one less where
    n * vth > v), lo = 0, or for signed ones -min(net, K), net = the sum of n since the
    sample's start (the net count never goes below zero). The synapses reading them take
    graded messages (num_message_bits > 0). v = v0 and net = 0 at local step `depth`;
    input-fed populations take their bias mantissa per sample from `inputs` (n, N)."""

    def __init__(self, *, shape: tuple[int], vth: np.ndarray, v0: np.ndarray,
                 bias_mant: np.ndarray, bias_exp: int, depth: int, steps: int, window: int,
                 samples: int, inputs: np.ndarray | None = None, raster: bool = False,
                 levels: int = 1, signed: bool = False, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        n = shape[0]
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=v0)
        self.v0 = Var(shape=shape, init=v0)
        self.vth = Var(shape=shape, init=vth)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=(1,), init=bias_exp)
        self.timing = Var(shape=(4,), init=np.array([depth, steps, window,
                                                     int(inputs is not None)]))
        self.inputs = _inputs(inputs, n, samples)
        # payload: [K, signed, raster bits per step]; binary unsigned spikes are [1, 0, 1]
        bits = payload_bits(levels, signed)
        self.graded = Var(shape=(3,), init=np.array([levels, int(signed), bits]))
        self.net = Var(shape=shape, init=0)  # signed neurons: the net count this sample
        _recording(self, n, samples, window, raster, bits)


class LifIO(AbstractProcess):
    """The host side of a stock Lava LIF population (the neuron itself is lava's LIF, reset
    to zero by LIFReset at local step `depth`): drives its a_in with v0 (in weight units) at
    local step `depth` plus, for input-fed populations, the sample's input current from
    `inputs` (n, N) at every step; and counts the LIF's spikes (s_in)."""

    def __init__(self, *, shape: tuple[int], v0: np.ndarray, depth: int, steps: int,
                 window: int, samples: int, inputs: np.ndarray | None = None,
                 raster: bool = False, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        n = shape[0]
        self.a_out = OutPort(shape=shape)
        self.s_in = InPort(shape=shape)
        self.v0 = Var(shape=shape, init=v0)
        self.timing = Var(shape=(4,), init=np.array([depth, steps, window,
                                                     int(inputs is not None)]))
        self.inputs = _inputs(inputs, n, samples)
        _recording(self, n, samples, window, raster)


class Readout(AbstractProcess):
    """Sums its input current over each sample's local steps >= depth: acc[:, sample]."""

    def __init__(self, *, shape: tuple[int], steps: int, depth: int, samples: int,
                 name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.steps = Var(shape=(2,), init=np.array([steps, depth]))
        self.acc = Var(shape=(shape[0], samples), init=0)


class MaxPoolSpike(AbstractProcess):
    """Spiking max pooling: sums its input payloads (spikes, or graded counts; from local step
    `depth`) and sends the growth of the maximum sum in a window (a binary spike for binary
    inputs, a count in the source's payload range for graded ones; compiler/loihi/
    populations.py). `index` (n_out, K) lists each window's inputs, -1 = padding."""

    def __init__(self, *, shape: tuple[int], index: np.ndarray, n_in: int, steps: int,
                 depth: int, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        self.s_in = InPort(shape=(n_in,))
        self.s_out = OutPort(shape=shape)
        self.index = Var(shape=index.shape, init=index)
        self.counts = Var(shape=(n_in + 1,), init=0)
        self.best = Var(shape=shape, init=0)
        self.steps = Var(shape=(2,), init=np.array([steps, depth]))
