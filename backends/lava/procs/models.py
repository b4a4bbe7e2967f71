"""ProcessModels for snnc's processes: `floating_pt` and bit-accurate `fixed_pt`. The fixed-point
arithmetic is the one snnc's NumPy `loihi` mode implements (backends/numpy/loihi.py)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snnc.backends.lava.procs.process import (
    WORD_BITS,
    IFSub,
    LifIO,
    MaxPoolSpike,
    Readout,
    raster_words,
)

_SHIFT = 6  # Loihi MSB-aligns synaptic input and threshold by 6 bits
_VMAX = 2**23 - 1  # 24-bit signed membrane state, saturating


class _Neuron(PyLoihiProcessModel):
    """Per-sample bookkeeping shared by IFSub and LifIO: the clock (timing = depth, steps,
    window, input-fed) and the spike counts and raster of the window [depth, depth+window)."""

    def _clock(self) -> tuple[int, int]:
        steps = int(self.timing[1])
        return (self.time_step - 1) // steps, (self.time_step - 1) % steps + 1

    def _record(self, sample: int, local: int, s: np.ndarray, bits: int = 1,
                offset: int = 0) -> None:
        """s: this step's spikes (bool) or payloads n; the raster holds n + offset (>= 0) in
        `bits` bits per step, WORD_BITS // bits steps per word (backends/lava/network.py
        unpacks it)."""
        depth, _, window, _ = (int(t) for t in self.timing)
        j = local - depth
        if not 0 <= j < window:
            return
        self.counts[sample] += int(np.count_nonzero(s))
        self.payload[sample] += int(np.abs(s).sum())
        if self.raster.shape[0] == s.size:
            per = WORD_BITS // bits
            col = sample * raster_words(window, bits) + j // per
            value = np.rint(s).astype(self.raster.dtype) + offset
            self.raster[:, col] += value << ((j % per) * bits)


class _IFBase(_Neuron):
    """IFSub; subclasses do one step's arithmetic (`step` for binary spikes, `count` for the
    payload of graded and signed neurons)."""

    def run_spk(self) -> None:
        sample, local = self._clock()
        if local == int(self.timing[0]):  # the sample reaches this population: restart
            self.v[:] = self.v0
            self.net[:] = 0
        mant = self.inputs[:, sample] if int(self.timing[3]) else self.bias_mant
        k, signed, bits = (int(g) for g in self.graded)
        a, bias = self.a_in.recv(), self.shift_bias(mant)
        if k == 1 and not signed:  # binary spikes
            s = self.step(a, bias)
            self._record(sample, local, s)
        else:
            s = self.count(a, bias, k, signed)
            if signed:
                self.net[:] = self.net + s
            self._record(sample, local, s, bits, k if signed else 0)
        self.s_out.send(s.astype(self.s_out_dtype))


@implements(proc=IFSub, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyIFSubFloat(_IFBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    v0: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32)
    timing: np.ndarray = LavaPyType(np.ndarray, np.int32)
    inputs: np.ndarray = LavaPyType(np.ndarray, float)
    raster: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    payload: np.ndarray = LavaPyType(np.ndarray, np.int32)
    graded: np.ndarray = LavaPyType(np.ndarray, np.int32)
    net: np.ndarray = LavaPyType(np.ndarray, float)
    s_out_dtype = float

    def shift_bias(self, mant: np.ndarray) -> np.ndarray:
        return mant

    def step(self, a: np.ndarray, bias: np.ndarray) -> np.ndarray:
        self.v[:] = self.v + a + bias
        s = self.v >= self.vth
        self.v[s] -= self.vth[s]
        return s

    def count(self, a: np.ndarray, bias: np.ndarray, k: int, signed: int) -> np.ndarray:
        """The payload n (floats holding integers), as the float simulator computes it."""
        self.v[:] = self.v + a + bias
        n = np.floor(self.v / self.vth)
        n -= n * self.vth > self.v  # the residue never goes negative
        n = np.clip(n, -np.minimum(self.net, k) if signed else 0, k)
        self.v[:] = self.v - n * self.vth
        return n


@implements(proc=IFSub, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIFSubFixed(_IFBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    # a binary spike (1 bit), or the graded payload n (Var graded[2] bits)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v0: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    timing: np.ndarray = LavaPyType(np.ndarray, np.int32)
    inputs: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    raster: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    payload: np.ndarray = LavaPyType(np.ndarray, np.int32)
    graded: np.ndarray = LavaPyType(np.ndarray, np.int32)
    net: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s_out_dtype = np.int32

    def shift_bias(self, mant: np.ndarray) -> np.ndarray:
        return np.left_shift(np.asarray(mant, np.int64), int(self.bias_exp[0]))

    def step(self, a: np.ndarray, bias: np.ndarray) -> np.ndarray:
        v = self.v.astype(np.int64) + np.left_shift(a.astype(np.int64), _SHIFT) + bias
        v = np.clip(v, -_VMAX, _VMAX)
        theta = np.left_shift(self.vth.astype(np.int64), _SHIFT)
        s = v >= theta
        v[s] -= theta[s]
        self.v[:] = v
        return s

    def count(self, a: np.ndarray, bias: np.ndarray, k: int, signed: int) -> np.ndarray:
        """The payload n = clip(floor(v / (vth << 6)), lo, K), in integers."""
        v = self.v.astype(np.int64) + np.left_shift(a.astype(np.int64), _SHIFT) + bias
        v = np.clip(v, -_VMAX, _VMAX)
        theta = np.left_shift(self.vth.astype(np.int64), _SHIFT)
        lo = -np.minimum(self.net.astype(np.int64), k) if signed else 0
        n = np.clip(np.floor_divide(v, theta), lo, k)
        self.v[:] = v - n * theta
        return n


class _LifIOBase(_Neuron):
    """LifIO: send the LIF's drive for this step, then read the spikes it made with it."""

    def run_spk(self) -> None:
        sample, local = self._clock()
        drive = np.zeros(self.v0.shape, self.a_out_dtype)
        if int(self.timing[3]):
            drive += self.inputs[:, sample]
        if local == int(self.timing[0]):  # LIFReset zeroes v at this step; add v0
            drive += self.v0
        self.a_out.send(drive)
        self._record(sample, local, self.s_in.recv().astype(bool))


@implements(proc=LifIO, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLifIOFloat(_LifIOBase):
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    v0: np.ndarray = LavaPyType(np.ndarray, float)
    timing: np.ndarray = LavaPyType(np.ndarray, np.int32)
    inputs: np.ndarray = LavaPyType(np.ndarray, float)
    raster: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    payload: np.ndarray = LavaPyType(np.ndarray, np.int32)
    a_out_dtype = float


@implements(proc=LifIO, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLifIOFixed(_LifIOBase):
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v0: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    timing: np.ndarray = LavaPyType(np.ndarray, np.int32)
    inputs: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    raster: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    payload: np.ndarray = LavaPyType(np.ndarray, np.int32)
    a_out_dtype = np.int32


class _ReadoutBase(PyLoihiProcessModel):
    def run_spk(self) -> None:
        steps, depth = int(self.steps[0]), int(self.steps[1])
        a = self.a_in.recv()
        if (self.time_step - 1) % steps + 1 >= depth:  # earlier: the previous sample's tail
            self.acc[:, (self.time_step - 1) // steps] += a


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(_ReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    steps: np.ndarray = LavaPyType(np.ndarray, np.int32)
    acc: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_ReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    steps: np.ndarray = LavaPyType(np.ndarray, np.int32)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64)


class _MaxPoolBase(PyLoihiProcessModel):
    def run_spk(self) -> None:
        steps, depth = int(self.steps[0]), int(self.steps[1])
        if (self.time_step - 1) % steps + 1 == depth:  # the sample reaches it: restart
            self.counts[:-1] = 0
            self.best[:] = 0
        self.counts[-1] = -1  # the padding slot never wins (net counts are >= 0)
        self.counts[:-1] += np.rint(self.s_in.recv()).astype(self.counts.dtype)  # payloads
        best = self.counts[self.index].max(axis=1)
        s = best - self.best  # 0/1 for binary spikes, a count for graded or signed ones
        self.best[:] = best
        self.s_out.send(s.astype(self.s_out_dtype))


@implements(proc=MaxPoolSpike, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyMaxPoolFloat(_MaxPoolBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    index: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    best: np.ndarray = LavaPyType(np.ndarray, np.int32)
    steps: np.ndarray = LavaPyType(np.ndarray, np.int32)
    s_out_dtype = float


@implements(proc=MaxPoolSpike, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMaxPoolFixed(_MaxPoolBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    index: np.ndarray = LavaPyType(np.ndarray, np.int32)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32)
    best: np.ndarray = LavaPyType(np.ndarray, np.int32)
    steps: np.ndarray = LavaPyType(np.ndarray, np.int32)
    s_out_dtype = np.int32
