"""ProcessModels for IFSub and Readout: `floating_pt` and bit-accurate `fixed_pt`. The fixed-point
arithmetic is the one snnc's NumPy `loihi` mode implements (backends/numpy/loihi.py)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snnc.backends.lava.procs.process import WORD_BITS, IFSub, MaxPoolSpike, Readout

_SHIFT = 6  # Loihi MSB-aligns synaptic input and threshold by 6 bits
_VMAX = 2**23 - 1  # 24-bit signed membrane state, saturating


class _IFBase(PyLoihiProcessModel):
    """The per-sample bookkeeping shared by both models; subclasses do one step's arithmetic."""

    def _clock(self) -> tuple[int, int]:
        steps = int(self.timing[1])
        return (self.time_step - 1) // steps, (self.time_step - 1) % steps + 1

    def _bias(self, sample: int, local: int) -> np.ndarray:
        depth, from_inputs = int(self.timing[0]), int(self.timing[3])
        if local < depth:
            return np.zeros(self.v.shape)
        mant = self.inputs[:, sample] if from_inputs else self.bias_mant
        return self.shift_bias(mant)

    def run_spk(self) -> None:
        sample, local = self._clock()
        if local == 1:
            self.v[:] = self.v0
        a = self.a_in.recv()
        s = self.step(a, self._bias(sample, local))
        depth, steps, window, _, quiet = (int(t) for t in self.timing)
        j = local - depth
        if 0 <= j < window:
            self.counts[sample] += int(s.sum())
            if self.raster.shape[0] == s.size:
                words = -(-window // WORD_BITS)
                col = sample * words + j // WORD_BITS
                self.raster[:, col] += s.astype(self.raster.dtype) << (j % WORD_BITS)
        if local > steps - quiet:  # would arrive in the next sample
            s = np.zeros_like(s)
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
    s_out_dtype = float

    def shift_bias(self, mant: np.ndarray) -> np.ndarray:
        return mant

    def step(self, a: np.ndarray, bias: np.ndarray) -> np.ndarray:
        self.v[:] = self.v + a + bias
        s = self.v >= self.vth
        self.v[s] -= self.vth[s]
        return s


@implements(proc=IFSub, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIFSubFixed(_IFBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
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


class _ReadoutBase(PyLoihiProcessModel):
    def run_spk(self) -> None:
        sample = (self.time_step - 1) // int(self.steps[0])
        self.acc[:, sample] += self.a_in.recv()


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
        steps, quiet = int(self.steps[0]), int(self.steps[1])
        local = (self.time_step - 1) % steps + 1
        if local == 1:  # a new sample
            self.counts[:-1] = 0
            self.best[:] = 0
        self.counts[-1] = -1  # the padding slot never wins
        self.counts[:-1] += self.s_in.recv().astype(bool)
        best = self.counts[self.index].max(axis=1)
        s = best > self.best
        self.best[:] = best
        if local > steps - quiet:  # would arrive in the next sample
            s = np.zeros_like(s)
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
