"""Reference time-stepped simulator of a converted (spiking) IR graph, batch-vectorized.

Semantics, per time step t = 1..T for a whole batch at once:
* the input node feeds the analog sample every step (direct encoding);
* stateless ops (conv, linear, pooling, add, ...) map their inputs of this step;
* `if` nodes integrate, fire at V >= theta and reset by subtraction (or to zero, attrs
  reset=zero); signed ones also emit -theta when V < 0 while their net count is positive
  (see compiler/ops/neuron);
* `maxpool` pools cumulative inputs and emits the increase of the pooled maximum, so that its
  time-average is exactly the max of its inputs' time-averages (max of rates, not of spikes);
* the output is decoded as the output node's value averaged over the T steps, i.e. the
  accumulated membrane potential of a non-spiking last layer divided by T.
Nodes that depend only on the input (e.g. the first conv) are computed once, not every step.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from snnc.compiler.errors import UsageError
from snnc.compiler.executor import check_input
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ops import opdef
from snnc.compiler.ops.pooling import maxpool

Progress = Callable[[int], None]
# observe(checkpoint index, T, sample slice, {IF node: net spike count per neuron (n, *shape)})
Observer = Callable[[int, int, slice, dict[str, np.ndarray]], None]


@dataclass(frozen=True)
class SimulationResult:
    """Decoded outputs and spike counts at each requested number of time steps."""

    timesteps: list[int]
    outputs: np.ndarray  # (len(timesteps), N, *output shape)
    spikes: dict[str, np.ndarray]  # IF node -> (len(timesteps), N) spikes per sample so far

    def at(self, timesteps: int) -> np.ndarray:
        return self.outputs[self.timesteps.index(timesteps)]

    def spikes_per_sample(self) -> np.ndarray:
        """(len(timesteps),) mean total spikes per sample."""
        if not self.spikes:
            return np.zeros(len(self.timesteps))
        return sum(s for s in self.spikes.values()).mean(axis=1)


def _static_nodes(graph: Graph) -> set[str]:
    static = {graph.input.name}
    for node in graph.nodes[1:]:
        if node.op != "if" and all(i in static for i in node.inputs):
            static.add(node.name)
    return static


class _Batch:
    """The state of one batch in flight."""

    def __init__(self, graph: Graph, x: np.ndarray, static: set[str],
                 record: Collection[str] = ()) -> None:
        self.graph = graph
        self.static: dict[str, np.ndarray] = {graph.input.name: x}
        self.dynamic: list[Node] = []
        for node in graph.nodes[1:]:
            if node.name in static:
                self.static[node.name] = opdef(node.op).evaluate(
                    node, [self.static[i] for i in node.inputs])
            else:
                self.dynamic.append(node)
        n = len(x)
        self.v = {nd.name: np.broadcast_to(nd.params["v0"], (n, *nd.shape)).astype(np.float32)
                  for nd in self.dynamic if nd.op == "if"}
        self.cum = {nd.name: None for nd in self.dynamic if nd.op == "maxpool"}
        self.pooled = {nd.name: np.float32(0) for nd in self.dynamic if nd.op == "maxpool"}
        self.counts = {name: np.zeros(n, dtype=np.int64) for name in self.v}
        # net spikes per neuron: the state of signed neurons, and what `record` asks for
        self.net = {nd.name: np.zeros((n, *nd.shape), dtype=np.float32) for nd in self.dynamic
                    if nd.op == "if" and (nd.attrs.get("signed") or nd.name in record)}
        self.acc = np.zeros((n, *graph.output_node.shape), dtype=np.float64)

    def step(self) -> None:
        env = dict(self.static)
        for node in self.dynamic:
            inputs = [env[i] for i in node.inputs]
            if node.op == "if":
                env[node.name] = self._fire(node, inputs[0])
            elif node.op == "maxpool":
                env[node.name] = self._pool(node, inputs[0])
            else:
                env[node.name] = opdef(node.op).evaluate(node, inputs)
        self.acc += env[self.graph.output]

    def _fire(self, node: Node, z: np.ndarray) -> np.ndarray:
        v = self.v[node.name]
        v += z
        if "i_shift" in node.params:
            v += node.params["i_shift"]
        theta = node.params["theta"]
        spikes = v >= theta
        net = self.net.get(node.name)
        if node.attrs.get("signed"):
            undo = (v < 0) & (net > 0)
            signed = spikes.astype(np.float32) - undo
            out = signed * theta
            events = spikes | undo
            v -= out
        else:
            signed = events = spikes
            out = spikes * theta  # float32: spikes of amplitude theta
            if node.attrs.get("reset") == "zero":
                v[np.broadcast_to(spikes, v.shape)] = 0
            else:
                v -= out
        if net is not None:
            net += signed
        self.counts[node.name] += events.reshape(len(v), -1).sum(axis=1)
        return out.astype(np.float32, copy=False)

    def _pool(self, node: Node, z: np.ndarray) -> np.ndarray:
        cum = z.copy() if self.cum[node.name] is None else self.cum[node.name] + z
        self.cum[node.name] = cum
        pooled = maxpool(node, cum)
        out = pooled - self.pooled[node.name]
        self.pooled[node.name] = pooled
        return out


def _checkpoints(timesteps: int | Sequence[int]) -> list[int]:
    ts = [timesteps] if isinstance(timesteps, (int, np.integer)) else list(timesteps)
    if not ts or any(int(t) < 1 for t in ts):
        raise UsageError(f"time steps must be positive integers, got {ts}")
    return sorted({int(t) for t in ts})


def simulate(graph: Graph, x: np.ndarray, timesteps: int | Sequence[int],
             batch_size: int = 256, progress: Progress | None = None,
             record: Collection[str] = (), observe: Observer | None = None
             ) -> SimulationResult:
    """Run the SNN for max(timesteps) steps, recording the decoded output at each checkpoint.
    `observe` is shown, at every checkpoint, the net spike counts per neuron of the IF nodes
    named in `record` (for calibration and per-layer reports; nothing is kept)."""
    if graph.meta.get("stage") != "snn":
        raise UsageError("this graph has not been converted to a spiking network; "
                         "compile it first (snnc compile)")
    ts = _checkpoints(timesteps)
    x = check_input(graph, x)
    static = _static_nodes(graph)
    if_nodes = [n.name for n in graph.nodes if n.op == "if"]
    outputs = np.zeros((len(ts), len(x), *graph.output_node.shape), dtype=np.float32)
    spikes = {name: np.zeros((len(ts), len(x)), dtype=np.int64) for name in if_nodes}
    for start in range(0, len(x), batch_size):
        chunk = slice(start, start + batch_size)
        batch = _Batch(graph, x[chunk], static, record)
        k = 0
        for t in range(1, ts[-1] + 1):
            batch.step()
            if t == ts[k]:
                outputs[k, chunk] = batch.acc / t
                for name in if_nodes:
                    spikes[name][k, chunk] = batch.counts[name]
                if observe is not None:
                    observe(k, t, chunk, {name: batch.net[name] for name in record})
                k += 1
        if progress is not None:
            progress(len(x[chunk]))
    return SimulationResult(ts, outputs, spikes)
