"""Reference time-stepped simulator of a converted (spiking) IR graph, batch-vectorized.

Semantics, per time step t = 1..T for a whole batch at once:
* the input node feeds the analog sample every step (direct encoding);
* stateless ops (conv, linear, pooling, add, ...) map their inputs of this step;
* `if` nodes integrate, fire at V >= theta and reset by subtraction (or to zero, attrs
  reset=zero); signed ones also emit -theta when V < 0 while their net count is positive;
  ternary ones (Clip(-a, a)) emit -theta at V <= -theta, resetting by +theta;
  graded ones (attr spike_bits) emit n * theta, n = clip(floor(V / theta), ., 2^B - 1) counts
  in one message (see compiler/ops/neuron);
* `maxpool` pools cumulative inputs and emits the increase of the pooled maximum, so that its
  time-average is exactly the max of its inputs' time-averages (max of rates, not of spikes);
* the output is decoded as the output node's value averaged over the T steps, i.e. the
  accumulated membrane potential of a non-spiking last layer divided by T.
Nodes that depend only on the input (e.g. the first conv) are computed once, not every step.

Speed: a step is memory-bound (every IF neuron is read and written several times), so batches
run in chunks whose state fits in a core's cache (_CHUNK_BYTES), chunks run on the kernel
thread pool (SNNC_THREADS), and spike counts accumulate per neuron in one byte, summed per
sample only at checkpoints and every 255 steps (graded layers' payloads, up to 255 counts a
step, in two bytes). (Preallocated per-node buffers were measured
slower than fresh arrays: numpy hands back the block just freed, which is still in cache.)
Two engines share this loop: `reference` (numpy ufuncs and BLAS only) and `fast` (fast.py:
convolutions and pooling windows in onnxruntime, the IF update in one numba pass), which
agrees with the reference up to the summation order inside a convolution.

Replay (for layer-wise calibration, compiler/passes/calibrate.py): `capture` stores the counts
an IF layer emits at every step (`SimulationResult.trains`, (T, N, *shape), one byte each for
up to 127 counts), or the values any other node computes at every step (float32); `replay`
feeds such trains back in place of those nodes, which are then neither computed nor anything
they depend on. A layer fed recorded trains receives exactly the values (for an IF layer,
count * theta in float32) it received when they were recorded, so a network can be simulated a
window of layers at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from snnc.compiler.contracts import CONVERTED, facts
from snnc.compiler.errors import UsageError
from snnc.compiler.executor import check_input
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ops import opdef
from snnc.compiler.ops.neuron import max_count
from snnc.compiler.ops.pooling import maxpool
from snnc.compiler.parallel import parallel_map

from .sigma_delta import is_sigma_delta, simulate_sigma_delta

if TYPE_CHECKING:
    from .fast import FastKernels

# engines in backend packages of their own, imported only when chosen (their dependencies
# stay optional): given the checked inputs, they return SimulationResult's arrays
PLUGIN_ENGINES = {"torch": "snnc.backends.torch"}
ENGINES = ("reference", "fast", *PLUGIN_ENGINES)
# what snnc compile/run/eval use unless told otherwise; simulate() itself defaults to the
# reference, which tests and the Lava comparison hold the other engines to
DEFAULT_ENGINE = "fast"

Progress = Callable[[int], None]
# observe(checkpoint index, T, sample slice, {IF node: net spike count per neuron (n, *shape)})
Observer = Callable[[int, int, slice, dict[str, np.ndarray]], None]


@dataclass(frozen=True)
class SimulationResult:
    """Decoded outputs and spike counts at each requested number of time steps.
    `spikes` counts messages (events: a neuron-step that emitted n != 0, of either sign);
    `payload` the counts they carried (sum of |n|), for graded layers only: a binary layer's
    payload is its message count."""

    timesteps: list[int]
    outputs: np.ndarray  # (len(timesteps), N, *output shape)
    spikes: dict[str, np.ndarray]  # IF node -> (len(timesteps), N) messages per sample so far
    payload: dict[str, np.ndarray] = field(default_factory=dict)  # graded IF node -> the same
    # captured node -> (max T, N, *shape) counts emitted (IF) or values at each step
    trains: dict[str, np.ndarray] = field(default_factory=dict)
    # sigma-delta networks: (N,) the last step at which a sample's network sent a message
    # (its output is final from then on); None for IF networks
    settled: np.ndarray | None = None

    def at(self, timesteps: int) -> np.ndarray:
        return self.outputs[self.timesteps.index(timesteps)]

    def spikes_per_sample(self) -> np.ndarray:
        """(len(timesteps),) mean total messages (spike events) per sample."""
        if not self.spikes:
            return np.zeros(len(self.timesteps))
        return sum(s for s in self.spikes.values()).mean(axis=1)

    def payload_of(self, name: str) -> np.ndarray:
        """(len(timesteps), N) counts carried by layer `name`'s messages (sum of |n|)."""
        return self.payload.get(name, self.spikes[name])

    def payload_per_sample(self) -> np.ndarray:
        """(len(timesteps),) mean total payload per sample (= messages without graded layers)."""
        if not self.spikes:
            return np.zeros(len(self.timesteps))
        return sum(self.payload_of(name) for name in self.spikes).mean(axis=1)


def _needed(graph: Graph, replayed: Collection[str]) -> set[str]:
    """The nodes the output depends on, not looking behind replayed nodes."""
    needed = {graph.input.name}
    stack = [graph.output]
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            if name not in replayed:
                stack.extend(graph.node(name).inputs)
    return needed


def train_dtype(node: Node) -> type:
    """What a captured train holds per step: an IF node's count (of either sign) as the
    smallest integer type that holds it, any other node's float32 values."""
    if node.op != "if":
        return np.float32
    return np.int8 if max_count(node) <= 127 else np.int16


def _static_nodes(graph: Graph, replayed: Collection[str] = ()) -> set[str]:
    static = {graph.input.name}
    for node in graph.nodes[1:]:
        if node.op not in ("if", "sd") and node.name not in replayed and all(i in static
                                                                  for i in node.inputs):
            static.add(node.name)
    return static


class _Batch:
    """The state of one batch in flight."""

    def __init__(self, graph: Graph, x: np.ndarray, static: set[str],
                 record: Collection[str] = (), fast: FastKernels | None = None,
                 needed: set[str] | None = None,
                 replay: Mapping[str, np.ndarray] | None = None) -> None:
        self.graph = graph
        self.fast = fast
        self.static: dict[str, np.ndarray] = {graph.input.name: x}
        self.dynamic: list[Node] = []
        # replayed node -> this batch's rows of its trains (T, n, *shape)
        self.replay = dict(replay or {})
        self.t = 0
        self.env: dict[str, np.ndarray] = {}
        for node in graph.nodes[1:]:
            if needed is not None and node.name not in needed:
                continue
            if node.name in self.replay:
                self.dynamic.append(node)
            elif node.name in static:
                self.static[node.name] = opdef(node.op).evaluate(
                    node, [self.static[i] for i in node.inputs])
            else:
                self.dynamic.append(node)
        n = len(x)
        # a writable C-order copy: astype() of a broadcast view keeps its zero strides' layout
        # (order K), and updates of a non-contiguous potential ran 4x slower
        self.v = {nd.name: np.array(np.broadcast_to(nd.params["v0"], (n, *nd.shape)),
                                    dtype=np.float32, order="C")
                  for nd in self.dynamic if nd.op == "if" and nd.name not in self.replay}
        self.cum = {nd.name: None for nd in self.dynamic if nd.op == "maxpool"}
        self.pooled = {nd.name: np.float32(0) for nd in self.dynamic if nd.op == "maxpool"}
        self.counts = {name: np.zeros(n, dtype=np.int64) for name in self.v}
        # spikes per neuron since the last flush: adding a one-byte map moves 1/9 of the
        # bytes of an int32 map, and 1/14 of the time of a per-step reduction
        self.hits = {name: np.zeros(v.shape, dtype=np.uint8) for name, v in self.v.items()}
        # graded layers: per step count K = 2^B - 1 (absent: binary) and the payload, |n|
        # summed per neuron since the last flush (255 steps of up to 255 fit two bytes)
        self.levels = {nd.name: np.float32(max_count(nd)) for nd in self.dynamic
                       if nd.name in self.v and max_count(nd) > 1}
        self.amount = {name: np.zeros(self.v[name].shape, dtype=np.uint16)
                       for name in self.levels}
        self.payload = {name: np.zeros(n, dtype=np.int64) for name in self.levels}
        self.unflushed = 0
        # net spikes per neuron: the state of signed neurons, and what `record` asks for
        self.net = {nd.name: np.zeros((n, *nd.shape), dtype=np.float32) for nd in self.dynamic
                    if nd.name in self.v and (nd.attrs.get("signed") or nd.name in record)}
        self.acc = np.zeros((n, *graph.output_node.shape), dtype=np.float64)

    def flush(self) -> None:
        """Move the per-neuron spike bytes into the per-sample counts."""
        for name, hits in self.hits.items():
            self.counts[name] += hits.reshape(len(hits), -1).sum(axis=1, dtype=np.int64)
            hits.fill(0)
        for name, amount in self.amount.items():
            self.payload[name] += amount.reshape(len(amount), -1).sum(axis=1, dtype=np.int64)
            amount.fill(0)
        self.unflushed = 0

    def step(self) -> None:
        if self.unflushed == 255:  # one more step could overflow a byte
            self.flush()
        self.unflushed += 1
        self.t += 1
        env = dict(self.static)
        for node in self.dynamic:
            if node.name in self.replay:  # what the node gave at this step, recorded
                train = self.replay[node.name][self.t - 1]
                env[node.name] = (np.multiply(train, node.params["theta"], dtype=np.float32)
                                  if node.op == "if" else train)
                continue
            inputs = [env[i] for i in node.inputs]
            if node.op == "if":
                env[node.name] = self._fire(node, inputs[0])
            elif node.op == "maxpool":
                env[node.name] = self._pool(node, inputs[0])
            elif self.fast is not None and node.name in self.fast.sessions:
                env[node.name] = self.fast.window(node, inputs[0])
            else:
                env[node.name] = opdef(node.op).evaluate(node, inputs)
        self.acc += env[self.graph.output]
        self.env = env  # this step's values, for `capture`

    def _fire(self, node: Node, z: np.ndarray) -> np.ndarray:
        v = self.v[node.name]
        if self.fast is not None and node.name in self.fast.theta:
            return self.fast.fire(node, v, z, self.net.get(node.name), self.hits[node.name],
                                  self.amount.get(node.name))
        v += z
        if "i_shift" in node.params:
            v += node.params["i_shift"]
        theta = node.params["theta"]
        net = self.net.get(node.name)
        if node.name in self.levels:
            return self._fire_graded(node, v, theta, net)
        if node.attrs.get("ternary"):
            return self._fire_ternary(node, v, theta, net)
        if net is None and node.attrs.get("reset", "subtract") == "subtract":
            return self._fire_subtract(node, v, theta)
        spikes = v >= theta
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
        hits = self.hits[node.name]
        np.add(hits, events.view(np.uint8), out=hits)
        return out.astype(np.float32, copy=False)

    def _fire_subtract(self, node: Node, v: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """The plain IF neuron: the common case, with nothing but the byte count besides."""
        spikes = v >= theta
        out = spikes * theta  # float32: spikes of amplitude theta
        v -= out
        hits = self.hits[node.name]
        np.add(hits, spikes.view(np.uint8), out=hits)
        return out

    def _fire_ternary(self, node: Node, v: np.ndarray, theta: np.ndarray,
                      net: np.ndarray | None) -> np.ndarray:
        """A ternary neuron (Clip(-a, a)): n = +1 at V >= theta, -1 at V <= -theta;
        V -= n * theta; out = n * theta."""
        up, down = v >= theta, v <= -theta
        n = up.astype(np.float32) - down
        out = n * theta
        v -= out
        if net is not None:
            net += n
        hits = self.hits[node.name]
        np.add(hits, (up | down).view(np.uint8), out=hits)
        return out.astype(np.float32, copy=False)

    def _fire_graded(self, node: Node, v: np.ndarray, theta: np.ndarray,
                     net: np.ndarray | None) -> np.ndarray:
        """A graded neuron (kernels.fire_graded does the same float32 operations): n =
        floor(V / theta), one less where n * theta > V, clipped to [lo, K] with lo = 0, or for
        signed neurons -min(net, K); V -= n * theta; out = n * theta."""
        k = self.levels[node.name]
        n = np.floor(v / theta)
        n -= n * theta > v
        lo = -np.minimum(net, k) if node.attrs.get("signed") else np.float32(0)
        n = np.clip(n, lo, k)
        out = n * theta
        v -= out
        if net is not None:
            net += n
        hits = self.hits[node.name]
        np.add(hits, (n != 0).view(np.uint8), out=hits)
        amount = self.amount[node.name]
        np.add(amount, np.abs(n), out=amount, casting="unsafe")
        return out.astype(np.float32, copy=False)

    def _pool(self, node: Node, z: np.ndarray) -> np.ndarray:
        cum = self.cum[node.name]
        if cum is None:
            cum = self.cum[node.name] = np.array(z, dtype=np.float32)
        else:
            cum += z
        if self.fast is not None and node.name in self.fast.sessions:
            pooled = self.fast.window(node, cum)
        else:
            pooled = maxpool(node, cum)
        out = pooled - self.pooled[node.name]
        self.pooled[node.name] = pooled
        return out


# a chunk's largest layer state (potential, input, spikes: ~4 arrays) stays within a core's L2
_CHUNK_BYTES = 4 * 2**20


def _chunk_size(graph: Graph, needed: Collection[str] | None = None) -> int:
    largest = max(int(np.prod(n.shape)) for n in graph.nodes
                  if needed is None or n.name in needed)
    return max(1, _CHUNK_BYTES // (4 * 4 * largest))


def chunk_size(graph: Graph, n: int, batch_size: int = 256, engine: str = "reference",
               device: str | None = None, needed: Collection[str] | None = None) -> int:
    """Samples per chunk of a run on n samples: what a run split over processes aligns its
    shards to, so that every sample is simulated in the same chunk (runtime/distributed.py)."""
    if engine in PLUGIN_ENGINES:
        from importlib import import_module

        return import_module(PLUGIN_ENGINES[engine]).chunk_size(graph, n, batch_size, device,
                                                                needed)
    return min(batch_size, _chunk_size(graph, needed), max(1, -(-n // 2)))


def _checkpoints(timesteps: int | Sequence[int]) -> list[int]:
    ts = [timesteps] if isinstance(timesteps, (int, np.integer)) else list(timesteps)
    if not ts or any(int(t) < 1 for t in ts):
        raise UsageError(f"time steps must be positive integers, got {ts}")
    return sorted({int(t) for t in ts})


def simulate(graph: Graph, x: np.ndarray, timesteps: int | Sequence[int],
             batch_size: int = 256, progress: Progress | None = None,
             record: Collection[str] = (), observe: Observer | None = None,
             engine: str = "reference", replay: Mapping[str, np.ndarray] | None = None,
             capture: Collection[str] = (), device: str | None = None) -> SimulationResult:
    """Run the SNN for max(timesteps) steps, recording the decoded output at each checkpoint.
    `observe` is shown, at every checkpoint, the net spike counts per neuron of the IF nodes
    named in `record` (for calibration and per-layer reports; nothing is kept).
    engine "fast" runs convolutions and IF updates in compiled kernels (fast.py); it agrees
    with the reference to float rounding; engine "torch" runs the same steps in torch on
    `device` (cpu, cuda, cuda:N; backends/torch).
    `capture`: nodes whose counts (IF nodes) or values (others) at every step come back in
    `trains`; `replay`: node -> such trains of at least max(timesteps) steps for these samples,
    given out instead of computing the node (and what only it depends on); see the module's
    docstring."""
    if engine not in ENGINES:
        raise UsageError(f"engine '{engine}' is not one of: {', '.join(ENGINES)}")
    if CONVERTED not in facts(graph):
        raise UsageError("this graph has not been converted to a spiking network; "
                         "compile it first (snnc compile)")
    ts = _checkpoints(timesteps)
    x = check_input(graph, x)
    replay = dict(replay or {})
    for name, trains in replay.items():
        if name not in graph or name == graph.input.name:
            raise UsageError(f"replay: '{name}' is not a node of this graph")
        shape = (len(x), *graph.node(name).shape)
        if trains.ndim != len(shape) + 1 or tuple(trains.shape[1:]) != shape \
                or len(trains) < ts[-1]:
            raise UsageError(f"replay: trains of '{name}' have shape {list(trains.shape)}; "
                             f"expected [>= {ts[-1]}, {', '.join(map(str, shape))}]")
    needed = _needed(graph, replay) if replay else None
    for name in capture:
        if name not in graph or name == graph.input.name or name in replay \
                or (needed is not None and name not in needed):
            raise UsageError(f"capture: '{name}' is not a node this run simulates")
    static = _static_nodes(graph, replay)
    if is_sigma_delta(graph):  # one engine: the sd update is a few elementwise ops
        if record or observe is not None or replay or capture:
            raise UsageError("record/observe/replay/capture follow IF neurons' spike counts; "
                             "a sigma-delta network has none (it needs no calibration)")
        outputs, messages, settled = simulate_sigma_delta(
            graph, x, ts, static, chunk_size(graph, len(x), batch_size), progress)
        return SimulationResult(ts, outputs, messages, settled=settled)
    if_nodes = [n.name for n in graph.nodes if n.op == "if" and n.name not in replay
                and (needed is None or n.name in needed)]
    outputs = np.zeros((len(ts), len(x), *graph.output_node.shape), dtype=np.float32)
    spikes = {name: np.zeros((len(ts), len(x)), dtype=np.int64) for name in if_nodes}
    payload = {name: np.zeros((len(ts), len(x)), dtype=np.int64) for name in if_nodes
               if max_count(graph.node(name)) > 1}
    trains = {name: np.empty((ts[-1], len(x), *graph.node(name).shape),
                             dtype=train_dtype(graph.node(name))) for name in capture}
    replay = {name: (np.asarray(r, np.float32) if graph.node(name).op != "if" else r)
              for name, r in replay.items()}
    lock = threading.Lock()  # observe runs for one chunk at a time, from its thread

    if engine in PLUGIN_ENGINES:  # e.g. torch (backends/torch), on `device`
        from importlib import import_module

        return SimulationResult(ts, *import_module(PLUGIN_ENGINES[engine]).simulate(
            graph, x, ts, static=static, needed=needed, batch_size=batch_size,
            progress=progress, record=record, observe=observe, replay=replay, capture=capture,
            device=device))
    if device not in (None, "cpu"):
        raise UsageError(f"--device {device}: the {engine} engine runs on the CPU; "
                         "--engine torch runs on CUDA devices")
    fast = None
    if engine == "fast":
        from .fast import FastKernels

        fast = FastKernels(graph, (needed or {n.name for n in graph.nodes}) - static
                           - set(replay))

    def run(chunk: slice) -> None:
        batch = _Batch(graph, x[chunk], static, record, fast, needed,
                       {name: r[:, chunk] for name, r in replay.items()})
        k = 0
        for t in range(1, ts[-1] + 1):
            batch.step()
            for name, train in trains.items():  # the count: out = count * theta, theta > 0
                node, out = graph.node(name), batch.env[name]
                train[t - 1, chunk] = (out if node.op != "if" else np.sign(out)
                                       if max_count(node) == 1
                                       else np.rint(out / node.params["theta"]))
            if t == ts[k]:
                batch.flush()
                outputs[k, chunk] = batch.acc / t
                for name in if_nodes:
                    spikes[name][k, chunk] = batch.counts[name]
                for name in payload:
                    payload[name][k, chunk] = batch.payload[name]
                if observe is not None:
                    with lock:
                        observe(k, t, chunk, {name: batch.net[name] for name in record})
                k += 1

    # at least two chunks, so that two cores have work; not tied to the thread count, so
    # that results do not depend on it
    size = chunk_size(graph, len(x), batch_size, engine, device, needed)
    chunks = [slice(s, s + size) for s in range(0, len(x), size)]
    for chunk, _ in zip(chunks, parallel_map(run, chunks), strict=True):
        if progress is not None:  # in order, from this thread
            progress(len(x[chunk]))
    return SimulationResult(ts, outputs, spikes, payload, trains)
