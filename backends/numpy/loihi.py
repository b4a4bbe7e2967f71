"""Bit-exact NumPy model of the Loihi 2 network that the Lava backend builds (`fixed_pt`), for a
whole batch at once. Large evaluations run here and are trustworthy for the chip.

The arithmetic, per population of depth k (compiler/loihi/populations.py), from its start at
Lava step k (where, in Lava, it restarts for every sample; it is silent before):
* a synapse-fed population gets a = sum_j (M_j s_j) << weight_exp, the integer synaptic input
  of its synapse layers (conv, dense or sparse) from the spikes s_j of its sources, and its
  bias mant << bias_exp; an input-fed population (depth 1) gets the direct-encoded input as a
  bias current (mant << INPUT_BIAS_EXP, per sample);
* IF neurons (reset=subtract): v = clip(v + (a << 6) + bias, +-(2**23 - 1)); s = v >= vth << 6;
  v -= s * (vth << 6)   (see backends/lava/procs/models.py, the same arithmetic);
* graded IF neurons (spike_bits B > 1: K = 2^B - 1) and signed ones (K = 2^B - 1, also for
  B = 1): the same v, then the payload n = clip(floor(v / (vth << 6)), lo, K) (integer floor
  division, toward -inf), v -= n * (vth << 6), and n is the message (0: none); lo = 0, or
  for signed neurons lo = -min(net, K) with net the sum of n since the sample's start, so
  the net count never goes below zero (compiler/ops/neuron.py's rule, in integers);
* stock LIF neurons (reset=zero, du=4095, dv=0; lava/proc/lif/models.py): v = 0 at the start,
  then u = wrap24((a + drive) << 6); v = clip(v + u + bias, +-(2**23 - 1)); s = v > vth << 6;
  v[s] = 0, where the drive is an input-fed population's input current >> 6 (its bias is 0)
  and, at the start, v0 >> 6;
* a max-pooling population (same depth as the IF layer it pools, no delay) sums its input
  payloads and sends the growth of the maximum sum in its window, a count in the source's
  payload range (a binary spike for binary sources; compiler/loihi/populations.py);
* the readout sums its input a (int64), and the host decodes acc / (S * T) + bias.

The clock. A synapse from a source of depth d into a population of depth k has delay k - d, so
what the population receives at Lava step k - 1 + t is what its sources emitted at their own
step t (Lava step d - 1 + t): on the reference simulator's clock t = 1..T every population
reads its sources' spikes of the same step t, and the readout's accumulator after Lava step
T + depth(readout) - 1 is the sum over t = 1..T. So this model steps the populations in
topological order on that clock, and the ring buffer of spikes that the delays call for is one
step deep: each population keeps only the spikes of the current step (tests/test_loihi.py
holds it to a Lava-timeline model with explicit delays). Full rasters (N, T, n), the payloads
for graded and signed populations, are recorded only on request (the spike-for-spike
comparison with Lava, runtime/lava_run.py).

Integer synapses run structurally: a conv synapse as a convolution (onnxruntime's, through the
fast engine's single-node sessions, backends/numpy/fast.py; the IR conv op where onnxruntime
will not take it), a dense one as a matrix product, a sparse one as a scipy CSR product, all in
float32 on the integer mantissas and the payloads (0/1 spikes, or counts n, |n| <= K).
quantize-weights bounds one step's input of a neuron, 64 * sum_j |m_ij| * K_j << e, by 2**23,
so every partial sum is an integer below 2**17 in magnitude: float32 holds it exactly in any
summation order. The bound is checked on the weights before a run and the integrality of
every sum during it (InternalError otherwise); the sums then become int64 and are shifted by
the exponent inside the neuron update.

Batches run in chunks (state of one chunk in cache, chunks on the kernel thread pool, as the
float simulator does; compiler/parallel.py), so memory stays bounded for any batch size.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnc.compiler.contracts import QUANTIZED_WEIGHTS, facts
from snnc.compiler.errors import InternalError, UsageError
from snnc.compiler.executor import check_input
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.loihi.formats import INPUT_BIAS_EXP, SHIFT, STATE_MAX
from snnc.compiler.loihi.populations import Population, input_currents, payload, populations
from snnc.compiler.loihi.synapses import row_abs_sums
from snnc.compiler.parallel import parallel_map

from .simulator import _checkpoints, _chunk_size

_VMAX = STATE_MAX  # the 24-bit membrane state saturates at +-(2**23 - 1)
_UMAX = 2**23  # Lava's LIF current wraps once at 24 bits
_EXACT = 2**24  # float32 holds every integer up to this magnitude
RASTER_AUTO_BYTES = 16 * 2**20  # rasters=None records them when they take at most this

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LoihiResult:
    """Outputs and spike counts at each checkpoint, the readout's accumulator after the last,
    and (when recorded) every population's spikes on the reference clock."""

    timesteps: list[int]
    outputs: np.ndarray  # (len(timesteps), N, *output shape), decoded
    spikes: dict[str, np.ndarray]  # IF population -> (len(timesteps), N) messages (n != 0)
    acc: np.ndarray  # (N, n_out) int64 readout accumulator after max(timesteps)
    recorded: dict[str, np.ndarray] | None = None  # see `rasters`
    # graded or signed IF population -> (len(timesteps), N) payload carried (sum of |n|)
    payload: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rasters(self) -> dict[str, np.ndarray]:
        """IF population -> (N, max(timesteps), n) bool spikes, reference clock; for graded
        and signed populations the int16 payloads n."""
        if self.recorded is None:
            raise UsageError("this run did not record spike rasters; call simulate_loihi(..., "
                             "rasters=True)")
        return self.recorded


# --- the neuron update: numba where available, the same integers in numpy otherwise ---------

def _step_numpy(v: np.ndarray, a: np.ndarray, exp: int, static: np.ndarray, bias: np.ndarray,
                vth: np.ndarray, v0: np.ndarray, out: np.ndarray, counts: np.ndarray,
                zero: bool, first: bool) -> int:
    """One step of a population, in place: v (n, m) int32 state; a (n, m) float32 synaptic
    sums (integers) or (0, 0) for none; static (n, m) int64 input current in state units or
    (0, 0); bias, vth (vth << 6), v0: (m,) int64; out (n, m) float32 gets the 0/1 spikes,
    counts (n,) int64 their number. Returns how many entries of `a` were not integers."""
    bad = 0
    x = np.zeros(v.shape, np.int64)
    if a.shape[0]:
        q = a.astype(np.int64)
        bad = int(np.count_nonzero(q != a))
        x = np.left_shift(q, exp)
    if zero:
        if static.shape[0]:
            x = x + (static >> SHIFT)  # the LIF's input current arrives on a_in
        vv = v.astype(np.int64)
        if first:  # the restart: v = 0, and v0 arrives as input current
            vv = np.zeros_like(vv)
            x = x + (v0 >> SHIFT)[None, :]
        u = np.left_shift(x, SHIFT)
        u = np.where(u > _UMAX, u - 2 * _UMAX, u)
        u = np.where(u <= -_UMAX, u + 2 * _UMAX, u)
        vv = np.clip(vv + u + bias[None, :], -_VMAX, _VMAX)
        s = vv > vth[None, :]
        vv[s] = 0
    else:
        vv = v + np.left_shift(x, SHIFT) + bias[None, :]
        if static.shape[0]:
            vv = vv + static
        vv = np.clip(vv, -_VMAX, _VMAX)
        s = vv >= vth[None, :]
        vv = vv - s * vth[None, :]
    v[...] = vv
    out[...] = s
    counts += s.sum(axis=1)
    return bad


def _graded_numpy(v: np.ndarray, a: np.ndarray, exp: int, static: np.ndarray,
                  bias: np.ndarray, vth: np.ndarray, net: np.ndarray, k: int,
                  out: np.ndarray, counts: np.ndarray, amount: np.ndarray) -> int:
    """One step of a graded or signed population (reset by subtraction), in place: as
    _step_numpy, then n = clip(v // vth, lo, k), v -= n * vth; out gets n, counts (n,) the
    messages (n != 0), amount (n,) the payload sum |n|; net (n, m) int32 the signed
    neurons' net counts (lo = -min(net, k)), or (0, 0) for unsigned ones (lo = 0)."""
    bad = 0
    x = np.zeros(v.shape, np.int64)
    if a.shape[0]:
        q = a.astype(np.int64)
        bad = int(np.count_nonzero(q != a))
        x = np.left_shift(q, exp)
    vv = v + np.left_shift(x, SHIFT) + bias[None, :]
    if static.shape[0]:
        vv = vv + static
    vv = np.clip(vv, -_VMAX, _VMAX)
    lo = -np.minimum(net.astype(np.int64), k) if net.shape[0] else np.int64(0)
    n = np.clip(np.floor_divide(vv, vth[None, :]), lo, k)
    v[...] = vv - n * vth[None, :]
    if net.shape[0]:
        net += n.astype(net.dtype)
    out[...] = n
    counts += np.count_nonzero(n, axis=1)
    amount += np.abs(n).sum(axis=1)
    return bad


try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps the mode usable
    _step = _step_numpy
    _graded = _graded_numpy
else:

    @njit(cache=True, nogil=True, boundscheck=False)
    def _step(v, a, exp, static, bias, vth, v0, out, counts, zero, first):  # noqa: ANN001, ANN201
        """_step_numpy in one pass over memory (the same integers)."""
        n, m = v.shape
        has_a = a.shape[0] > 0
        has_static = static.shape[0] > 0
        bad = 0
        for i in range(n):
            fired = 0
            for j in range(m):
                x = np.int64(0)
                if has_a:
                    f = a[i, j]
                    x = np.int64(f)
                    if x != f:
                        bad += 1
                    x = x << exp
                if zero:
                    if has_static:
                        x += static[i, j] >> SHIFT
                    vv = np.int64(v[i, j])
                    if first:
                        vv = np.int64(0)
                        x += v0[j] >> SHIFT
                    u = x << SHIFT
                    if u > _UMAX:
                        u -= 2 * _UMAX
                    elif u <= -_UMAX:
                        u += 2 * _UMAX
                    vv = vv + u + bias[j]
                    if vv > _VMAX:
                        vv = np.int64(_VMAX)
                    elif vv < -_VMAX:
                        vv = np.int64(-_VMAX)
                    s = vv > vth[j]
                    if s:
                        vv = np.int64(0)
                else:
                    vv = np.int64(v[i, j]) + (x << SHIFT) + bias[j]
                    if has_static:
                        vv += static[i, j]
                    if vv > _VMAX:
                        vv = np.int64(_VMAX)
                    elif vv < -_VMAX:
                        vv = np.int64(-_VMAX)
                    s = vv >= vth[j]
                    if s:
                        vv -= vth[j]
                v[i, j] = vv
                if s:
                    out[i, j] = 1.0
                    fired += 1
                else:
                    out[i, j] = 0.0
            counts[i] += fired
        return bad

    @njit(cache=True, nogil=True, boundscheck=False)
    def _graded(v, a, exp, static, bias, vth, net, k, out, counts, amount):  # noqa: ANN001, ANN201
        """_graded_numpy in one pass over memory (the same integers)."""
        n_rows, m = v.shape
        has_a = a.shape[0] > 0
        has_static = static.shape[0] > 0
        signed = net.shape[0] > 0
        bad = 0
        for i in range(n_rows):
            fired = 0
            carried = 0
            for j in range(m):
                x = np.int64(0)
                if has_a:
                    f = a[i, j]
                    x = np.int64(f)
                    if x != f:
                        bad += 1
                    x = x << exp
                vv = np.int64(v[i, j]) + (x << SHIFT) + bias[j]
                if has_static:
                    vv += static[i, j]
                if vv > _VMAX:
                    vv = np.int64(_VMAX)
                elif vv < -_VMAX:
                    vv = np.int64(-_VMAX)
                c = vv // vth[j]  # floor division, as numpy's
                lo = np.int64(0)
                if signed:
                    lo = -min(np.int64(net[i, j]), np.int64(k))
                if c > k:
                    c = np.int64(k)
                elif c < lo:
                    c = lo
                v[i, j] = vv - c * vth[j]
                if signed:
                    net[i, j] += c
                out[i, j] = c
                if c != 0:
                    fired += 1
                    carried += abs(c)
            counts[i] += fired
            amount[i] += carried
        return bad


# --- synapses: the integer synaptic input of a population ------------------------------------

# conv synapse node -> its onnxruntime session on the integer kernel (None: the IR conv op)
_SESSIONS: weakref.WeakKeyDictionary[Node, Any] = weakref.WeakKeyDictionary()


def _conv(node: Node, in_shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    from snnc.compiler.ops.conv import conv

    from .fast import _session

    w = np.asarray(node.params["q_weight"], np.float32)
    zeros = np.zeros(len(w), np.float32)
    if node not in _SESSIONS:
        _SESSIONS[node] = _session(node.with_params(weight=w, bias=zeros), tuple(in_shape))
    session = _SESSIONS[node]
    a = node.attrs

    def run(s: np.ndarray) -> np.ndarray:
        x = s.reshape(len(s), *in_shape)
        y = session.run(None, {"x": x})[0] if session is not None else conv(
            x, w, zeros, a["strides"], a["pads"], a["dilations"], a["groups"])
        return y.reshape(len(s), -1)

    return run


def _synapse(graph: Graph, node: Node) -> Callable[[np.ndarray], np.ndarray]:
    """s (b, n_in) float32 payloads (0/1, or counts) -> the integer sums M s (b, n_out),
    float32."""
    kind = node.meta["synapse"]
    if kind == "conv":
        return _conv(node, tuple(graph.node(node.inputs[0]).shape))
    if kind == "dense":
        wt = np.ascontiguousarray(np.asarray(node.params["q_weight"], np.float32).T)
        return lambda s: s @ wt
    if kind == "sparse":
        from snnc.compiler.ops.sparse import csr

        m = csr(node, "q_weight").astype(np.float32)
        return lambda s: np.ascontiguousarray((m @ s.T).T, np.float32)
    raise InternalError(f"{node.origin}: unknown synapse kind '{kind}'")


class _Input:
    """The synapse layers into one population: sum_j (M_j s_j) << e_j as float32 integer sums
    in units of 2**exp, exp = min_j e_j (one exponent per population after quantize-weights)."""

    def __init__(self, graph: Graph, pop: Population) -> None:
        exps = [int(s.node.attrs["q_weight_exp"]) for s in pop.synapses]
        self.exp = min(exps)
        self.terms = [(s.source, _synapse(graph, s.node), np.float32(2.0 ** (e - self.exp)))
                      for s, e in zip(pop.synapses, exps, strict=True)]
        bound = sum(row_abs_sums(s.node, np.asarray(s.node.params["q_weight"], np.float64))
                    * payload(graph, s.source)[0] * 2.0 ** (e - self.exp)
                    for s, e in zip(pop.synapses, exps, strict=True))
        if float(np.max(bound)) >= _EXACT:
            raise InternalError(f"{pop.node.origin}: one step's synaptic input can reach "
                                f"{float(np.max(bound)):.0f}, beyond the integers float32 "
                                "holds exactly; quantize-weights should have bounded it")

    def __call__(self, spikes: dict[str, np.ndarray]) -> np.ndarray:
        total = None
        for source, fn, scale in self.terms:
            y = fn(spikes[source])
            if scale != 1:
                y = y * scale
            total = y if total is None else total + y
        assert total is not None
        return np.ascontiguousarray(total, np.float32)


# --- populations ------------------------------------------------------------------------------

class _Cell:
    """An IF / LIF population's constants."""

    def __init__(self, graph: Graph, pop: Population) -> None:
        node = pop.node
        self.name, self.size, self.zero = pop.name, pop.size, pop.reset_zero
        self.levels, self.signed = payload(graph, pop.name)
        # graded or signed: the payload step (_graded); binary unsigned: _step, as before
        self.graded = self.levels > 1 or self.signed
        self.vth = np.left_shift(np.asarray(node.params["q_vth"], np.int64), SHIFT)
        self.v0 = np.asarray(node.params["q_v0"], np.int64).reshape(-1)
        self.input = _Input(graph, pop) if pop.synapses else None
        self.bias = (np.left_shift(np.asarray(node.params["q_bias_mant"], np.int64),
                                   int(node.attrs["q_bias_exp"])).reshape(-1)
                     if pop.synapses else np.zeros(self.size, np.int64))


class _Pool:
    """Spiking max pooling over summed payloads: it sends the growth of a window's maximum
    (a spike where it grows, for binary sources; a count for graded or signed ones). Sums are
    small integers, exact in float32; the windows' max is the fast engine's
    onnxruntime MaxPool (padding never wins: -inf there, -1 in pool_index), or the IR op's."""

    def __init__(self, graph: Graph, pop: Population) -> None:
        from .fast import _session

        self.name, self.node, self.source, self.size = pop.name, pop.node, pop.pool_of, \
            pop.size
        assert self.source is not None
        self.in_shape = tuple(graph.node(self.source).shape)
        if pop.node not in _SESSIONS:
            _SESSIONS[pop.node] = _session(pop.node, self.in_shape)
        self.session = _SESSIONS[pop.node]

    def best(self, counts: np.ndarray) -> np.ndarray:
        from snnc.compiler.ops.pooling import maxpool

        x = counts.reshape(len(counts), *self.in_shape)
        y = self.session.run(None, {"x": x})[0] if self.session is not None else \
            maxpool(self.node, x)
        return y.reshape(len(counts), -1)


class _Plan:
    """What a run needs of a quantized graph, built once for all chunks."""

    def __init__(self, graph: Graph) -> None:
        pops = populations(graph)
        ternary = [p.name for p in pops if p.node.op == "if" and p.node.attrs.get("ternary")]
        if ternary:
            raise UsageError(f"population '{ternary[0]}' is a ternary neuron (Clip(-a, a)), "
                             "which the NumPy loihi mode does not model; compile it for "
                             "--target numpy")
        self.graph = graph
        self.order: list[_Cell | _Pool] = [
            _Pool(graph, p) if p.pool_of is not None else _Cell(graph, p)
            for p in pops if not p.readout]
        self.cells = [c for c in self.order if isinstance(c, _Cell)]
        readout = pops[-1]
        assert readout.readout and readout.synapses
        self.readout = _Input(graph, readout)
        self.n_out = readout.size
        self.scale = float(readout.synapses[0].node.attrs["q_scale"])
        self.bias = np.asarray(readout.bias, np.float64).reshape(-1)


def _run_chunk(plan: _Plan, x: np.ndarray, ts: list[int], outputs: np.ndarray,
               spikes: dict[str, np.ndarray], carried: dict[str, np.ndarray],
               acc_out: np.ndarray, rasters: dict[str, np.ndarray] | None,
               chunk: slice) -> None:
    b = len(x)
    static = input_currents(plan.graph, x, fixed=True)
    no_a = np.zeros((0, 0), np.float32)
    no_static = np.zeros((0, 0), np.int64)
    v = {c.name: np.repeat(c.v0.astype(np.int32)[None, :], b, axis=0) for c in plan.cells}
    cur = {c.name: (np.left_shift(static[c.name].astype(np.int64), INPUT_BIAS_EXP)
                    if c.input is None else no_static) for c in plan.cells}
    counts = {c.name: np.zeros(b, np.int64) for c in plan.cells}
    amount = {c.name: np.zeros(b, np.int64) for c in plan.cells if c.graded}
    no_net = np.zeros((0, 0), np.int32)
    net = {c.name: np.zeros((b, c.size), np.int32) if c.signed else no_net
           for c in plan.cells if c.graded}
    out = {c.name: np.zeros((b, c.size), np.float32) for c in plan.order}
    pool_counts = {p.name: np.zeros((b, math.prod(p.in_shape)), np.float32)
                   for p in plan.order if isinstance(p, _Pool)}
    pool_best = {p.name: np.zeros((b, p.size), np.float32)
                 for p in plan.order if isinstance(p, _Pool)}
    acc = np.zeros((b, plan.n_out), np.int64)
    k = 0
    for t in range(1, ts[-1] + 1):
        for c in plan.order:
            if isinstance(c, _Pool):
                pool_counts[c.name] += out[c.source]
                best = c.best(pool_counts[c.name])
                np.subtract(best, pool_best[c.name], out=out[c.name])  # 0/1 for binary
                pool_best[c.name] = best
                continue
            a = c.input(out) if c.input is not None else no_a
            exp = c.input.exp if c.input is not None else 0
            if c.graded:
                bad = _graded(v[c.name], a, exp, cur[c.name], c.bias, c.vth, net[c.name],
                              c.levels, out[c.name], counts[c.name], amount[c.name])
            else:
                bad = _step(v[c.name], a, exp, cur[c.name], c.bias, c.vth, c.v0, out[c.name],
                            counts[c.name], c.zero, t == 1)
            if bad:
                raise InternalError(f"population '{c.name}': {bad} synaptic sums were not "
                                    "integers; the float32 synapses lost exactness")
            if rasters is not None:
                rasters[c.name][chunk, t - 1] = out[c.name] if c.graded else out[c.name] != 0
        a = plan.readout(out)
        q = a.astype(np.int64)
        if np.any(q != a):
            raise InternalError("the readout's synaptic sums were not integers; the float32 "
                                "synapses lost exactness")
        acc += np.left_shift(q, plan.readout.exp)
        if t == ts[k]:
            outputs[k, chunk] = (acc / (plan.scale * t) + plan.bias[None, :]).reshape(
                b, *outputs.shape[2:])
            for name, n in counts.items():
                spikes[name][k, chunk] = n
            for name, n in amount.items():
                carried[name][k, chunk] = n
            k += 1
    acc_out[chunk] = acc


def simulate_loihi(graph: Graph, x: np.ndarray, timesteps: int | Sequence[int],
                   batch_size: int = 256, progress: Progress | None = None,
                   rasters: bool | None = None) -> LoihiResult:
    """Run the quantized network bit-exactly for max(timesteps) steps, decoding the output at
    each checkpoint. rasters: record every IF population's spikes (True), or not (False);
    None records them when they take at most RASTER_AUTO_BYTES. `progress(n)` is told of each
    chunk of n samples done, in order. batch_size caps the samples simulated together."""
    if graph.meta.get("neuron") == "sigma-delta":  # stock SigmaDelta: loihi_sigma_delta.py
        from .loihi_sigma_delta import simulate_sigma_delta_loihi

        return simulate_sigma_delta_loihi(  # type: ignore[return-value]
            graph, x, timesteps, batch_size, progress, rasters)
    if QUANTIZED_WEIGHTS not in facts(graph):
        raise UsageError("the NumPy loihi mode needs a network compiled with --target loihi")
    ts = _checkpoints(timesteps)
    x = check_input(graph, x)
    n = len(x)
    plan = _Plan(graph)
    if rasters is None:
        rasters = n * ts[-1] * sum(c.size for c in plan.cells) <= RASTER_AUTO_BYTES
    shape = graph.output_node.shape
    outputs = np.zeros((len(ts), n, *shape), np.float32)
    spikes = {c.name: np.zeros((len(ts), n), np.int64) for c in plan.cells}
    carried = {c.name: np.zeros((len(ts), n), np.int64) for c in plan.cells if c.graded}
    acc = np.zeros((n, plan.n_out), np.int64)
    record = {c.name: np.zeros((n, ts[-1], c.size), np.int16 if c.graded else bool)
              for c in plan.cells} if rasters else None
    # at least two chunks, so that two cores have work (as the float simulator does)
    size = max(1, min(int(batch_size), _chunk_size(graph), -(-n // 2)))
    chunks = [slice(s, min(s + size, n)) for s in range(0, n, size)]

    def run(chunk: slice) -> None:
        _run_chunk(plan, x[chunk], ts, outputs, spikes, carried, acc, record, chunk)

    for chunk, _ in zip(chunks, parallel_map(run, chunks), strict=True):
        if progress is not None:  # in order, from this thread
            progress(chunk.stop - chunk.start)
    return LoihiResult(ts, outputs, spikes, acc, record, carried)
