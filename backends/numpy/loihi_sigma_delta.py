"""Bit-exact NumPy model of a sigma-delta network on Loihi 2 as the Lava backend builds it with
stock processes (backends/lava/sd_plan.py), batched: Lava's fixed_pt arithmetic of
lava.proc.sdn's PySigmaDeltaModelFixed (act_mode RELU, cum_error off) fed by Dense / Sparse /
Conv with graded messages (num_message_bits > 0: a_out = W @ s_in), integer for integer.

Per sd population, with the integers of compiler/loihi/quantize_sigma_delta.py, every step:

    a       = sum_j (M_j @ msg_j) << e_j      (msg_j: what source j sent `delay` steps ago;
                                               e_j >= 0 here, < 0 only into the readout)
    sigma  += a
    act_new = max(sigma + bias, 0)
    delta   = act_new - act + residue
    s       = delta if |delta| >= vth else 0
    residue = delta - s;  act = act_new
    msg     = s >> state_exp                   (arithmetic shift: floor)

The readout (Lava's output sink on the last synapse layers' a_out) sums a, each synapse's
sum floored by its right shift (M @ msg) >> -e; the host decodes output = acc * f_R + bias.

The clock is Lava's: the input source sends the quantized sample at step 1 (and nothing after),
every synapse layer delays by one step (skip connections by their delay, k - d), so a
population of depth k computes the reference clock's step t at Lava step t + k and the sink
holds step t after Lava step t + K (K: the readout's depth). Stock SigmaDelta has no reset or
enable: in Lava steps 1..k a population already sees its bias (and what upstream layers sent
from their biases), and sends relu(bias) where it reaches vth. Those warm-up messages are part
of every reconstruction, so this model runs them too: rasters hold every message on Lava's
timeline, (N, T + depth, n) int32 for a population of depth `depth`, and message counts are
those of Lava steps <= T + depth (reference steps <= T, warm-up included).

Every state and message is checked against Loihi's 24 bits (Lava's Conv wraps there, the
chip's state saturates): a run whose activations outgrow the range quantize-weights designed
(HEADROOM times the calibrated scale) raises ModelError naming the population, instead of
silently differing from the chip. Integer products run as int64 scipy CSR products, exact.
A chunk whose network sends nothing in a step (and holds nothing in its delay lines) has
settled: every later step repeats it, so the rest is filled in without stepping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from snnc.compiler.contracts import QUANTIZED_WEIGHTS, facts
from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.executor import check_input
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.loihi.formats import STATE_MAX
from snnc.compiler.loihi.populations import Population, populations
from snnc.compiler.loihi.quantize_sigma_delta import quantize_input
from snnc.compiler.loihi.synapses import matrix
from snnc.compiler.parallel import parallel_map

from .simulator import _checkpoints

Progress = Callable[[int], None]
CHUNK = 64  # samples stepped together
RASTER_AUTO_BYTES = 16 * 2**20  # rasters=None records them when they take at most this


@dataclass(frozen=True)
class SigmaDeltaResult:
    """What loihi.py's LoihiResult holds (simulate_loihi returns this for sigma-delta graphs;
    a class of its own so that this module does not import loihi.py, which dispatches here)."""

    timesteps: list[int]
    outputs: np.ndarray  # (len(timesteps), N, *output shape), decoded
    spikes: dict[str, np.ndarray]  # population -> (len(timesteps), N) messages (m != 0)
    acc: np.ndarray  # (N, n_out) int64 sink sum after max(timesteps)
    recorded: dict[str, np.ndarray] | None = None  # see `rasters`
    payload: dict[str, np.ndarray] = field(default_factory=dict)  # sum |m|, as spikes

    @property
    def rasters(self) -> dict[str, np.ndarray]:
        """Population -> (N, max(timesteps) + depth, n) int32 messages, Lava's timeline."""
        if self.recorded is None:
            raise UsageError("this run did not record rasters; call simulate_loihi(..., "
                             "rasters=True)")
        return self.recorded


@dataclass(frozen=True)
class _Term:
    source: str
    weights: sp.csr_matrix  # (n_out, n_in) int64: m << e for e >= 0
    delay: int
    shift: int  # -e for e < 0 (the readout): Lava's Dense / Sparse floor (M s) >> -e


def _terms(graph: Graph, pop: Population) -> list[_Term]:
    out = []
    for syn in pop.synapses:
        node = syn.node
        m = matrix(node, tuple(graph.node(node.inputs[0]).shape), "q_weight")
        e = int(node.attrs["q_weight_exp"])
        w = sp.csr_matrix((np.rint(m.data).astype(np.int64) << max(e, 0), m.indices,
                           m.indptr), shape=m.shape)
        out.append(_Term(syn.source, w, syn.delay, max(-e, 0)))
    return out


@dataclass(frozen=True)
class _Cell:
    name: str
    node: Node
    depth: int
    terms: list[_Term]
    bias: np.ndarray  # (n,) int64
    vth: int
    state_exp: int


class _SDPlan:
    def __init__(self, graph: Graph) -> None:
        pops = populations(graph)
        self.graph = graph
        self.cells = [_Cell(p.name, p.node, p.depth, _terms(graph, p),
                            np.asarray(p.node.params["q_bias"], np.int64).reshape(-1),
                            int(p.node.params["q_vth"]), int(p.node.attrs["q_state_exp"]))
                      for p in pops if not p.readout]
        readout = pops[-1]
        assert readout.readout
        self.readout = _terms(graph, readout)
        self.depth = readout.depth
        self.readout_name = readout.name
        self.unit = 1.0 / float(readout.synapses[0].node.attrs["q_scale"])
        self.bias = np.asarray(readout.bias, np.float64).reshape(-1)
        self.n_out = readout.size
        self.delays: dict[str, int] = {}  # source -> the longest delay reading it
        for terms in [c.terms for c in self.cells] + [self.readout]:
            for t in terms:
                self.delays[t.source] = max(self.delays.get(t.source, 1), t.delay)


def _check(value: np.ndarray, cell: str, what: str, step: int) -> None:
    peak = int(np.abs(value).max(initial=0))
    if peak > STATE_MAX:
        raise ModelError(f"population '{cell}': its {what} reached {peak} at Lava step {step}, "
                         f"beyond Loihi's 24 bits ({STATE_MAX}): the activations outgrew the "
                         "range quantize-weights sized from the calibrated scale; recompile "
                         "with calibration data that covers these inputs (or --norm max)")


def _input(terms: list[_Term], sent: dict[str, deque], b: int) -> np.ndarray:
    total = None
    for t in terms:
        line = sent[t.source]
        if len(line) < t.delay:  # nothing sent that long ago
            continue
        msg = line[-t.delay]
        if not msg.any():
            continue
        y = np.asarray((t.weights @ msg.T).T)
        if t.shift:
            y = y >> t.shift
        total = y if total is None else total + y
    return total if total is not None else np.zeros((b, terms[0].weights.shape[0]), np.int64)


def _run_chunk(plan: _SDPlan, xq: np.ndarray, ts: list[int], outputs: np.ndarray,
               counts: dict[str, np.ndarray], payload: dict[str, np.ndarray],
               acc_out: np.ndarray, rasters: dict[str, np.ndarray] | None,
               rows: slice) -> None:
    b = len(xq)
    steps = ts[-1] + plan.depth
    inp = plan.graph.input.name
    sent = {name: deque(maxlen=d) for name, d in plan.delays.items()}
    state = {c.name: [np.zeros((b, len(c.bias)), np.int64) for _ in range(3)]
             for c in plan.cells}  # sigma, act, residue
    n_msg = {c.name: np.zeros(b, np.int64) for c in plan.cells}
    n_pay = {c.name: np.zeros(b, np.int64) for c in plan.cells}
    acc = np.zeros((b, plan.n_out), np.int64)
    zeros_in = np.zeros_like(xq)
    k = 0
    tau = 1
    while tau <= steps:
        msgs: dict[str, np.ndarray] = {inp: xq if tau == 1 else zeros_in}
        busy = tau == 1
        for c in plan.cells:
            a = _input(c.terms, sent, b)
            _check(a, c.name, "synaptic input", tau)
            sigma, act, residue = state[c.name]
            sigma += a
            _check(sigma, c.name, "sigma", tau)
            new = np.maximum(sigma + c.bias[None, :], 0)
            _check(new, c.name, "activation", tau)
            delta = new - act + residue
            _check(delta, c.name, "delta", tau)
            s = np.where(np.abs(delta) >= c.vth, delta, 0)
            residue[...] = delta - s
            act[...] = new
            msg = s >> c.state_exp
            msgs[c.name] = msg
            if tau <= ts[-1] + c.depth:
                nz = np.count_nonzero(msg, axis=1)
                n_msg[c.name] += nz
                n_pay[c.name] += np.abs(msg).sum(axis=1)
                if rasters is not None:
                    rasters[c.name][rows, tau - 1] = msg
            busy = busy or bool(msg.any())
        a = _input(plan.readout, sent, b)
        _check(a, plan.readout_name, "synaptic input", tau)
        acc += a
        for name, line in sent.items():
            line.append(msgs.get(name, zeros_in))
        while k < len(ts) and ts[k] + plan.depth == tau:
            _emit(plan, acc, outputs, counts, payload, n_msg, n_pay, k, rows)
            k += 1
        pending = any(m.any() for line in sent.values() for m in line)
        if not busy and not pending:  # settled: every later step repeats this one
            break
        tau += 1
    while k < len(ts):  # counts of populations that stopped early are final too
        _emit(plan, acc, outputs, counts, payload, n_msg, n_pay, k, rows)
        k += 1
    acc_out[rows] = acc


def _emit(plan: _SDPlan, acc: np.ndarray, outputs: np.ndarray, counts: dict[str, np.ndarray],
          payload: dict[str, np.ndarray], n_msg: dict[str, np.ndarray],
          n_pay: dict[str, np.ndarray], k: int, rows: slice) -> None:
    out = acc * plan.unit + plan.bias[None, :]
    outputs[k, rows] = out.reshape(len(acc), *outputs.shape[2:])
    for name in n_msg:
        counts[name][k, rows] = n_msg[name]
        payload[name][k, rows] = n_pay[name]


def simulate_sigma_delta_loihi(graph: Graph, x: np.ndarray, timesteps: int | Sequence[int],
                               batch_size: int = 256, progress: Progress | None = None,
                               rasters: bool | None = None) -> SigmaDeltaResult:
    """The results of a quantized sigma-delta graph, as simulate_loihi's: outputs at
    each checkpoint t (after Lava step t + K, not averaged), messages and their payload sum
    per population, the sink's accumulator after the last checkpoint and, on request (None:
    when small), every population's messages on Lava's timeline."""
    if QUANTIZED_WEIGHTS not in facts(graph):
        raise UsageError("the NumPy loihi mode needs a network compiled with --target loihi")
    ts = _checkpoints(timesteps)
    x = check_input(graph, x)
    n = len(x)
    plan = _SDPlan(graph)
    xq = quantize_input(graph, x)
    if rasters is None:
        cells = sum((ts[-1] + c.depth) * len(c.bias) for c in plan.cells)
        rasters = n * cells * 4 <= RASTER_AUTO_BYTES
    outputs = np.zeros((len(ts), n, *graph.output_node.shape), np.float32)
    counts = {c.name: np.zeros((len(ts), n), np.int64) for c in plan.cells}
    payload = {c.name: np.zeros((len(ts), n), np.int64) for c in plan.cells}
    acc = np.zeros((n, plan.n_out), np.int64)
    record = {c.name: np.zeros((n, ts[-1] + c.depth, len(c.bias)), np.int32)
              for c in plan.cells} if rasters else None
    size = max(1, min(int(batch_size), CHUNK, -(-n // 2)))
    chunks = [slice(s, min(s + size, n)) for s in range(0, n, size)]

    def run(rows: slice) -> None:
        _run_chunk(plan, xq[rows], ts, outputs, counts, payload, acc, record, rows)

    for rows, _ in zip(chunks, parallel_map(run, chunks), strict=True):
        if progress is not None:
            progress(rows.stop - rows.start)
    return SigmaDeltaResult(ts, outputs, counts, acc, record, payload)
