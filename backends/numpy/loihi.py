"""Bit-exact NumPy model of the Loihi 2 network that the Lava backend builds (`fixed_pt`), for a
whole batch at once. Large evaluations run here and are trustworthy for the chip.

It runs the Lava timeline, Lava step by Lava step (t = 1, 2, ...). A population of depth k
starts at t = k (in Lava it restarts there for every sample) and is silent before:
* an input-fed population (depth 1) gets the direct-encoded input as a bias current;
* a deeper population gets a(t) = sum_j (W_j @ s_j(t - delay_j)) << weight_exp (Lava's Dense
  sends what it accumulated the step before) and its bias;
* IF neurons (reset=subtract): v = clip(v + (a << 6) + bias, +-(2**23 - 1)); s = v >= vth << 6;
  v -= s * (vth << 6)   (see backends/lava/procs/models.py, the same arithmetic);
* stock LIF neurons (reset=zero, du=4095, dv=0; lava/proc/lif/models.py): v = 0 at t = k, then
  u = wrap24((a + drive) << 6); v = clip(v + u + bias, +-(2**23 - 1)); s = v > vth << 6;
  v[s] = 0, where the drive is the input-fed population's input and, at t = k, v0 >> 6;
* a max-pooling population (same depth as the IF layer it pools, no delay) counts its input
  spikes and spikes when the maximum count in its window grows (compiler/populations.py);
* the readout sums its input a(t) (int64), and the host decodes acc / (S * T) + bias.
A population of depth k at Lava step t + k - 1 corresponds to the reference simulator's step t,
so T reference steps take T + depth(readout) - 1 Lava steps; spike rasters are reported on the
reference simulator's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from snnc.compiler.errors import UsageError
from snnc.compiler.executor import check_input
from snnc.compiler.ir.graph import Graph
from snnc.compiler.passes.quantize_weights import INPUT_BIAS_EXP
from snnc.compiler.populations import Population, input_currents, pool_index, populations

_SHIFT = 6
_VMAX = 2**23 - 1
_UMAX = 2**23


@dataclass(frozen=True)
class LoihiResult:
    """Outputs and spike counts at each checkpoint, plus the full trace of the longest run."""

    timesteps: list[int]
    outputs: np.ndarray  # (len(timesteps), N, *output shape), decoded
    spikes: dict[str, np.ndarray]  # population -> (len(timesteps), N) spike counts
    rasters: dict[str, np.ndarray]  # population -> (N, T, n) bool, reference clock
    acc: np.ndarray  # (N, n_out) int64 readout accumulator after max(timesteps)


def _bias(pop: Population, static: dict[str, np.ndarray]) -> np.ndarray:
    if not pop.synapses:  # the input current: a bias (IF) or the LIF's drive, see _Cell
        return np.left_shift(static[pop.name].astype(np.int64), INPUT_BIAS_EXP)
    node = pop.node
    return np.left_shift(node.params["q_bias_mant"].astype(np.int64),
                         int(node.attrs["q_bias_exp"]))[None, :]


def _wrap24(u: np.ndarray) -> np.ndarray:
    """Lava's LIF current wraps once at 24 bits (u > 2**23, or u <= -2**23)."""
    u = np.where(u > _UMAX, u - 2 * _UMAX, u)
    return np.where(u <= -_UMAX, u + 2 * _UMAX, u)


class _Cell:
    """One neuron population: v (N, n) and its step, for either reset."""

    def __init__(self, pop: Population, bias: np.ndarray, n: int) -> None:
        node = pop.node
        self.zero = pop.reset_zero
        self.depth = pop.depth
        self.vth = np.left_shift(node.params["q_vth"].astype(np.int64), _SHIFT)[None, :]
        self.v0 = np.repeat(node.params["q_v0"].astype(np.int64)[None, :], n, axis=0)
        self.v = self.v0.copy()
        self.bias = bias
        self.drive = np.zeros((1, 1), np.int64)
        if self.zero and not pop.synapses:  # the LIF gets its input current on a_in
            self.drive, self.bias = bias >> _SHIFT, np.zeros((1, 1), np.int64)

    def step(self, a: np.ndarray, t: int) -> np.ndarray:
        if not self.zero:
            v = np.clip(self.v + np.left_shift(a, _SHIFT) + self.bias, -_VMAX, _VMAX)
            s = v >= self.vth
            self.v = v - s * self.vth
            return s
        a = a + self.drive
        if t == self.depth:  # the restart: v = 0, and v0 arrives as input current
            self.v = np.zeros_like(self.v0)
            a = a + (self.v0 >> _SHIFT)
        v = np.clip(self.v + _wrap24(np.left_shift(a, _SHIFT)) + self.bias, -_VMAX, _VMAX)
        s = v > self.vth
        self.v = np.where(s, 0, v)
        return s


def simulate_loihi(graph: Graph, x: np.ndarray, timesteps: int | Sequence[int]
                   ) -> LoihiResult:
    if graph.meta.get("quantized") != "loihi2":
        raise UsageError("the NumPy loihi mode needs a network compiled with --target loihi")
    ts = sorted({int(t) for t in ([timesteps] if np.isscalar(timesteps) else timesteps)})
    x = check_input(graph, x)
    n = len(x)
    pops = populations(graph)
    cells = [p for p in pops if not p.readout and p.pool_of is None]
    pools = {p.name: _Pool(p, graph, n) for p in pops if p.pool_of is not None}
    readout = pops[-1]
    lag = readout.depth - 1
    steps = ts[-1] + lag
    static = input_currents(graph, x, fixed=True)
    state = {p.name: _Cell(p, _bias(p, static), n) for p in cells}
    # history[name][t] = spikes at Lava step t (index 0: before the run, all silent)
    history = {p.name: np.zeros((steps + 1, n, p.size), bool) for p in pops if not p.readout}
    acc = np.zeros((n, readout.size), np.int64)
    acc_at = np.zeros((steps + 1, n, readout.size), np.int64)
    weights = {syn.node.name: syn.node.params["q_weight"].astype(np.float64).T
               for p in pops for syn in p.synapses}
    order = [p for p in pops if not p.readout]
    for t in range(1, steps + 1):
        for p in order:
            if t < p.depth:
                continue
            if p.name in pools:
                history[p.name][t] = pools[p.name].step(history[p.pool_of][t])
                continue
            history[p.name][t] = state[p.name].step(
                _synaptic_input(p, history, weights, t, n), t)
        acc += _synaptic_input(readout, history, weights, t, n)
        acc_at[t] = acc
    return _decode(graph, readout, cells, ts, history, acc_at, lag)


class _Pool:
    """Spiking max pooling over spike counts: a spike when a window's maximum count grows."""

    def __init__(self, pop: Population, graph: Graph, n: int) -> None:
        self.index = pool_index(graph, pop.node)  # (n_out, K), -1 = padding
        n_in = int(np.prod(graph.node(pop.pool_of).shape))
        self.counts = np.zeros((n, n_in + 1), np.int64)  # last column: padding, never max
        self.counts[:, -1] = -1
        self.best = np.zeros((n, pop.size), np.int64)

    def step(self, s: np.ndarray) -> np.ndarray:
        self.counts[:, :-1] += s
        best = self.counts[:, self.index].max(axis=2)
        out = best > self.best
        self.best = best
        return out


def _synaptic_input(p: Population, history: dict[str, np.ndarray],
                    weights: dict[str, np.ndarray], t: int, n: int) -> np.ndarray:
    a = np.zeros((n, p.size), np.int64)
    for syn in p.synapses:
        if t - syn.delay < 1:
            continue
        s = history[syn.source][t - syn.delay].astype(np.float64)
        # float64 BLAS is exact here: |sums| stay far below 2**53
        total = np.rint(s @ weights[syn.node.name]).astype(np.int64)
        a += np.left_shift(total, int(syn.node.attrs["q_weight_exp"]))
    return a


def _decode(graph: Graph, readout: Population, cells: list[Population], ts: list[int],
            history: dict[str, np.ndarray], acc_at: np.ndarray, lag: int) -> LoihiResult:
    scale = float(readout.synapses[0].node.attrs["q_scale"])
    bias = sum(s.node.params["bias"].astype(np.float64) for s in readout.synapses)
    shape = graph.output_node.shape
    outputs = np.stack([(acc_at[t + lag] / (scale * t) + bias).reshape(-1, *shape)
                        for t in ts]).astype(np.float32)
    rasters = {p.name: history[p.name][p.depth:p.depth + ts[-1]].transpose(1, 0, 2)
               for p in cells}
    spikes = {name: np.stack([r[:, :t].sum(axis=(1, 2)) for t in ts])
              for name, r in rasters.items()}
    return LoihiResult(ts, outputs, spikes, rasters, acc_at[ts[-1] + lag])
