"""The simulator's torch engine: the reference's time steps (backends/numpy/simulator.py) in
torch tensors, on the CPU or a CUDA device.

Per step, for a chunk of samples at once: the nodes that depend only on the input are
computed once per chunk; every other node runs its kernel (kernels.py); IF nodes integrate,
fire and reset with the reference's float32 operations in the reference's order (binary,
signed, reset to zero, graded, ternary), max pooling pools the cumulative input and emits the
increase of the pooled maximum, and the output accumulates in float64. So the neuron updates are
bit-equal to the reference; convolutions, dense layers and pooling sum in torch's order, and a
potential that lands within rounding of a threshold may fire a step earlier or later (outputs
agree to float rounding, predictions on all but a few samples: tests/test_torch_engine.py).

No autograd (inference mode); the state (potentials, net counts, spike bytes, pooled maxima,
the output sum) is allocated once per chunk and updated in place. On CUDA, convolutions and
matrix products run in IEEE float32 (not TF32, torch's default for cuDNN convolutions), with
deterministic cuDNN algorithms, so that runs repeat exactly.

Counts: spikes per neuron accumulate in one byte and are summed per sample at checkpoints and
every 255 steps, as in the reference; graded layers' payloads in int32 per neuron.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np
import torch

from snnc.compiler.errors import UsageError
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ops.neuron import max_count
from snnc.compiler.parallel import parallel_map

from . import kernels
from .kernels import Kernel, Tensor

# the IF attributes this engine models; a neuron with any other (a kind added later) is
# refused rather than simulated as something it is not
KNOWN_IF_ATTRS = frozenset({"reset", "signed", "spike_bits", "levels", "ternary"})
_CPU_CHUNK_BYTES = 16 * 2**20  # a chunk's largest layer state on the CPU (cache-friendly)
# on CUDA, a chunk's whole state (every layer's potential, spike bytes, net counts, the values
# of one step) within this share of the device's memory: its total, not what is free now, so
# that the chunks (and with them cuDNN's choices) do not change from run to run
_CUDA_MEMORY_SHARE = 0.25
_STATE_BYTES = 16  # per IF neuron: potential, net count, spike byte, its step's output
Observer = Callable[[int, int, slice, dict[str, np.ndarray]], None]
Progress = Callable[[int], None]

_TRAIN_DTYPES = {np.dtype(np.int8): torch.int8, np.dtype(np.int16): torch.int16,
                 np.dtype(np.float32): torch.float32}


def resolve_device(device: str | None) -> torch.device:
    """cpu (default), cuda or cuda:N, checked against what torch sees."""
    name = (device or "cpu").strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or re.fullmatch(r"cuda:\d+", name):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: torch {torch.__version__} sees no CUDA device "
                             "(a CPU-only build of torch, or no GPU or driver on this "
                             "machine); use --device cpu, or install a CUDA build of torch")
        index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise UsageError(f"--device {name}: torch sees {count} CUDA device(s), "
                             f"cuda:0..cuda:{count - 1}")
        return torch.device("cuda", index)
    raise UsageError(f"--device '{device}' is not one of: cpu, cuda, cuda:N")


def _ieee_float32() -> None:
    """IEEE float32 convolutions and products on CUDA, deterministic algorithms."""
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):  # torch >= 2.9
        cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    cudnn.deterministic = True
    cudnn.benchmark = False


def check_graph(graph: Graph, names: Collection[str]) -> None:
    for node in graph.nodes:
        if node.name in names and node.op == "if":
            unknown = sorted(set(node.attrs) - KNOWN_IF_ATTRS)
            if unknown:
                raise UsageError(f"the torch engine does not model {node.origin}'s neuron "
                                 f"setting(s) {', '.join(unknown)} yet; use --engine fast "
                                 "or reference")


class _Neuron:
    """An IF node's constants on the device."""

    def __init__(self, node: Node, device: torch.device) -> None:
        self.theta = kernels.param(node, "theta", device)
        self.shift = (kernels.param(node, "i_shift", device) if "i_shift" in node.params
                      else None)
        self.v0 = kernels.param(node, "v0", device)
        self.k = max_count(node)
        self.signed = bool(node.attrs.get("signed"))
        self.zero = node.attrs.get("reset") == "zero"
        self.ternary = bool(node.attrs.get("ternary"))


class _Plan:
    """What every chunk of one run shares: the nodes in step order, kernels, IF constants."""

    def __init__(self, graph: Graph, device: torch.device, static: set[str],
                 needed: set[str] | None, replay: Collection[str],
                 record: Collection[str]) -> None:
        self.graph, self.device, self.record = graph, device, set(record)
        self.static: list[Node] = []
        self.dynamic: list[Node] = []
        for node in graph.nodes[1:]:
            if needed is not None and node.name not in needed:
                continue
            if node.name not in replay and node.name in static:
                self.static.append(node)
            else:
                self.dynamic.append(node)
        self.kernels: dict[str, Kernel] = {
            n.name: kernels.build(n, device) for n in self.static + self.dynamic
            if n.op != "if" and n.name not in replay}
        self.neurons = {n.name: _Neuron(n, device) for n in graph.nodes if n.op == "if"
                        and (needed is None or n.name in needed)}


class _Chunk:
    """The state of one chunk of samples in flight."""

    def __init__(self, plan: _Plan, x: Tensor, replay: dict[str, Tensor]) -> None:
        self.plan, self.replay, self.t = plan, replay, 0
        n, device = len(x), plan.device
        self.static: dict[str, Tensor] = {plan.graph.input.name: x}
        for node in plan.static:
            self.static[node.name] = plan.kernels[node.name](
                [self.static[i] for i in node.inputs])
        spiking = [nd for nd in plan.dynamic if nd.op == "if" and nd.name not in replay]
        self.v = {nd.name: plan.neurons[nd.name].v0.expand(n, *nd.shape).contiguous().clone()
                  for nd in spiking}
        self.net = {nd.name: torch.zeros((n, *nd.shape), dtype=torch.float32, device=device)
                    for nd in spiking if nd.attrs.get("signed") or nd.name in plan.record}
        self.hits = {name: torch.zeros(v.shape, dtype=torch.uint8, device=device)
                     for name, v in self.v.items()}
        self.amount = {name: torch.zeros(v.shape, dtype=torch.int32, device=device)
                       for name, v in self.v.items() if plan.neurons[name].k > 1}
        self.counts = {name: torch.zeros(n, dtype=torch.int64, device=device)
                       for name in self.v}
        self.payload = {name: torch.zeros(n, dtype=torch.int64, device=device)
                        for name in self.amount}
        self.cum: dict[str, Tensor] = {}
        self.pooled: dict[str, Tensor] = {}
        self.acc = torch.zeros((n, *plan.graph.output_node.shape), dtype=torch.float64,
                               device=device)
        self.unflushed = 0
        self.env: dict[str, Tensor] = {}

    def flush(self) -> None:
        for name, hits in self.hits.items():
            self.counts[name] += hits.reshape(len(hits), -1).sum(dim=1, dtype=torch.int64)
            hits.zero_()
        for name, amount in self.amount.items():
            self.payload[name] += amount.reshape(len(amount), -1).sum(dim=1,
                                                                       dtype=torch.int64)
            amount.zero_()
        self.unflushed = 0

    def step(self) -> None:
        if self.unflushed == 255:  # one more step could overflow a byte
            self.flush()
        self.unflushed += 1
        self.t += 1
        plan = self.plan
        env = dict(self.static)
        for node in plan.dynamic:
            name = node.name
            if name in self.replay:  # what the node gave at this step, recorded
                train = self.replay[name][self.t - 1]
                env[name] = (train.to(torch.float32) * plan.neurons[name].theta
                             if node.op == "if" else train)
                continue
            inputs = [env[i] for i in node.inputs]
            if node.op == "if":
                env[name] = self._fire(name, inputs[0])
            elif node.op == "maxpool":
                env[name] = self._pool(name, inputs[0])
            else:
                env[name] = plan.kernels[name](inputs)
        self.acc += env[plan.graph.output]
        self.env = env

    def _fire(self, name: str, z: Tensor) -> Tensor:
        """The reference's IF update (simulator._Batch._fire), operation for operation."""
        p = self.plan.neurons[name]
        v, net, hits = self.v[name], self.net.get(name), self.hits[name]
        v += z
        if p.shift is not None:
            v += p.shift
        if p.k > 1:
            return self._fire_graded(name, p, v, net)
        if p.ternary:  # +1 at V >= theta, -1 at V <= -theta (Clip(-a, a))
            up, down = v >= p.theta, v <= -p.theta
            n = up.to(torch.float32) - down.to(torch.float32)
            out = n * p.theta
            v -= out
            if net is not None:
                net += n
            hits += up | down
            return out
        spikes = v >= p.theta
        if p.signed:
            undo = (v < 0) & (net > 0)
            signed = spikes.to(torch.float32) - undo.to(torch.float32)
            out = signed * p.theta
            events = spikes | undo
            v -= out
        else:
            events = spikes
            signed = spikes.to(torch.float32) if net is not None else None
            out = spikes * p.theta
            if p.zero:
                v.masked_fill_(spikes.expand(v.shape), 0.0)
            else:
                v -= out
        if net is not None:
            net += signed
        hits += events
        return out

    def _fire_graded(self, name: str, p: _Neuron, v: Tensor, net: Tensor | None) -> Tensor:
        n = torch.floor(v / p.theta)
        n -= (n * p.theta > v).to(torch.float32)
        k = float(p.k)
        # clip(n, lo, K), lo = -min(net, K) for signed neurons, else 0
        n = (torch.clamp(n, min=-torch.clamp(net, max=k)).clamp_(max=k) if p.signed
             else torch.clamp(n, 0.0, k))
        out = n * p.theta
        v -= out
        if net is not None:
            net += n
        self.hits[name] += n != 0
        self.amount[name] += n.abs().to(torch.int32)
        return out

    def _pool(self, name: str, z: Tensor) -> Tensor:
        cum = self.cum.get(name)
        if cum is None:
            cum = self.cum[name] = z.clone()
        else:
            cum += z
        pooled = self.plan.kernels[name]([cum])
        last = self.pooled.get(name)
        self.pooled[name] = pooled
        return pooled if last is None else pooled - last


def _count(node: Node, out: Tensor, theta: Tensor, dtype: torch.dtype) -> Tensor:
    """What a captured train holds per step (the reference's formula)."""
    if node.op != "if":
        return out
    if max_count(node) == 1:
        return torch.sign(out).to(dtype)
    return torch.round(out / theta).to(dtype)


def chunk_size(graph: Graph, n: int, batch_size: int = 256, device: str | None = None,
               needed: Collection[str] | None = None) -> int:
    """Samples per chunk of a run on n samples (the simulator's chunk_size)."""
    return _chunk_size(graph, resolve_device(device), batch_size, n, needed)


def _chunk_size(graph: Graph, device: torch.device, batch_size: int, n: int,
                needed: Collection[str] | None) -> int:
    """Samples per chunk: within batch_size and a memory bound; on the CPU at least two
    chunks, so that two cores have work (not tied to the thread count, so that results do
    not depend on it)."""
    nodes = [nd for nd in graph.nodes if needed is None or nd.name in needed]
    largest = max(int(np.prod(nd.shape)) for nd in nodes)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory * _CUDA_MEMORY_SHARE
        per_sample = sum(int(np.prod(nd.shape)) * (_STATE_BYTES if nd.op == "if" else 8)
                         for nd in nodes)
        return max(1, min(batch_size, int(total // per_sample), n))
    return max(1, min(batch_size, _CPU_CHUNK_BYTES // (4 * 4 * largest), -(-n // 2)))


def simulate(graph: Graph, x: np.ndarray, ts: Sequence[int], *, static: set[str],
             needed: set[str] | None, batch_size: int = 256, progress: Progress | None = None,
             record: Collection[str] = (), observe: Observer | None = None,
             replay: Mapping[str, np.ndarray] | None = None, capture: Collection[str] = (),
             device: str | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray],
                        dict[str, np.ndarray]]:
    """outputs, spikes, payload, trains of SimulationResult, for inputs the simulator has
    checked (backends/numpy/simulator.simulate dispatches here)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        _ieee_float32()
    replay = dict(replay or {})
    plan = _Plan(graph, dev, static, needed, replay, record)
    check_graph(graph, {n.name for n in plan.dynamic})
    if_nodes = [name for name in plan.neurons if name not in replay]
    outputs = np.zeros((len(ts), len(x), *graph.output_node.shape), dtype=np.float32)
    spikes = {name: np.zeros((len(ts), len(x)), dtype=np.int64) for name in if_nodes}
    payload = {name: np.zeros((len(ts), len(x)), dtype=np.int64) for name in if_nodes
               if plan.neurons[name].k > 1}
    trains = {name: np.empty((ts[-1], len(x), *graph.node(name).shape),
                             dtype=_train_dtype(graph.node(name))) for name in capture}
    lock = threading.Lock()  # observe runs for one chunk at a time

    def run(chunk: slice) -> None:
        if dev.type == "cpu":  # this thread's share of the cores is its chunk
            torch.set_num_threads(1)
        with torch.inference_mode():
            batch = _Chunk(plan, torch.from_numpy(np.ascontiguousarray(x[chunk])).to(dev),
                           {name: torch.from_numpy(np.ascontiguousarray(r[:, chunk])).to(dev)
                            for name, r in replay.items()})
            held = {name: torch.empty((ts[-1], chunk.stop - chunk.start,
                                       *graph.node(name).shape),
                                      dtype=_TRAIN_DTYPES[np.dtype(trains[name].dtype)],
                                      device=dev) for name in capture}
            k = 0
            for t in range(1, ts[-1] + 1):
                batch.step()
                for name, train in held.items():
                    node = graph.node(name)
                    theta = plan.neurons[name].theta if node.op == "if" else None
                    train[t - 1] = _count(node, batch.env[name], theta, train.dtype)
                if t == ts[k]:
                    batch.flush()
                    outputs[k, chunk] = (batch.acc / t).to(torch.float32).cpu().numpy()
                    for name in if_nodes:
                        spikes[name][k, chunk] = batch.counts[name].cpu().numpy()
                    for name in payload:
                        payload[name][k, chunk] = batch.payload[name].cpu().numpy()
                    if observe is not None:
                        nets = {name: batch.net[name].cpu().numpy() for name in record}
                        with lock:
                            observe(k, t, chunk, nets)
                    k += 1
            for name, train in held.items():
                trains[name][:, chunk] = train.cpu().numpy()

    size = _chunk_size(graph, dev, batch_size, len(x), needed)
    chunks = [slice(s, min(s + size, len(x))) for s in range(0, len(x), size)]
    if dev.type == "cpu":
        # torch's own intra-op threads (OpenMP) stall whenever a core is busy with other
        # work (measured 200x slower per op on a loaded 2-core machine): chunks run on the
        # kernel threads instead, one torch thread each, as the reference engine's do
        threads = torch.get_num_threads()
        try:
            for chunk, _ in zip(chunks, parallel_map(run, chunks), strict=True):
                if progress is not None:  # in order, from this thread
                    progress(chunk.stop - chunk.start)
        finally:
            torch.set_num_threads(threads)
    else:  # one device queue: chunks in turn
        for chunk in chunks:
            run(chunk)
            if progress is not None:
                progress(chunk.stop - chunk.start)
    return outputs, spikes, payload, trains


def _train_dtype(node: Node) -> type:
    """The reference's simulator.train_dtype (kept here: a backend imports no other)."""
    if node.op != "if":
        return np.float32
    return np.int8 if max_count(node) <= 127 else np.int16
