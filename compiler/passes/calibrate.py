"""calibrate: layer-by-layer correction of the converted network for the requested T
(Li et al. 2021 "free lunch" light/advanced calibration; RMPE, Chen et al. 2023).

Layers are taken in topological order, so each one is corrected while seeing the already
corrected spiking layers before it. For IF layer l, over the calibration set:

    a  = the ANN activation, clip(z, 0, theta), with the ANN before it        (target)
    r  = theta * (net spikes over T) / T, with the SNN before it             (what it delivers)
    bias:       i_shift_c += mean over samples and positions of (a - r)  (per channel)
    potential:  v0_i      += T * mean over samples of (a - r)            (per neuron)

Both move the neuron's time-averaged output by about the same amount: a current d per step adds
d to it, and a potential d*T at the start adds d*T/theta spikes over T steps. `bias+potential`
applies the channel-wise correction first and puts the per-neuron remainder into V(0).

The pass simulates, but the compiler does not import a backend: the simulator is handed in
(`Simulator`, the signature of snnc.backends.numpy.simulate). It uses up to `max_samples`
calibration samples, fewer on large models (compiler/cost.py's budget, at least MIN_SAMPLES).

Reusing the prefix: layer l only needs what the already calibrated layers before it emit, and
those do not change any more. So when the simulator can `capture` and `replay` spike trains
(snnc.backends.numpy.simulate can), each layer, once corrected, is simulated once more to record
the counts it emits at every step, and every later layer is simulated from the recorded trains
of the layers feeding it (its "frontier": the IF layers reached going back from it without
passing another IF layer), not from the input through the whole prefix again. The current
into the layer at every step is kept from its first simulation (float32) too, so that once
corrected only its neurons run again. The ANN targets of all layers come from one ANN pass (an
IF node's ANN meaning, clip(z, 0, theta), does not depend on the corrections). A replayed
layer delivers exactly the values it delivered when recorded, so the result is the same as
re-simulating the prefix, at about one simulation of the network instead of one per layer.
The trains (one byte per neuron, step and sample) of a layer are kept until the last layer
that reads them is calibrated; where they would need more than REPLAY_BYTES, or the simulator
cannot replay, every layer re-simulates its prefix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

import numpy as np

from ..contracts import CONVERTED, contract
from ..cost import calibration_macs, samples_within_budget, simulator_budget, window_macs
from ..errors import DataError, UsageError
from ..executor import run_batched
from ..ir.graph import Graph, Node
from ..ops.elementwise import channel_view

NAME = "calibrate"
CONTRACT = contract(requires={CONVERTED})  # corrects spiking layers for T
METHODS = ("none", "bias", "potential", "bias+potential", "auto")
MIN_SAMPLES = 16  # fewer calibration samples than this make the per-channel means noise
REPLAY_BYTES = 1 << 30  # the most memory the recorded spike trains may hold at once
# keep a layer's input current (4 bytes per neuron and step) rather than compute it again
# where that takes at least this many multiply-adds per value (measured: storing it won on
# the 32x32 ResNet's 3x3 convs of 16 channels, 144 per value, and on VGG-16's)
KEEP_CURRENT_MACS = 32
ProgressFn = Callable[[int], None]
OutputsFn = Callable[[Graph, np.ndarray, int, int, np.ndarray], None]


class Simulator(Protocol):
    def __call__(self, graph: Graph, x: np.ndarray, timesteps: int | list[int],
                 batch_size: int = ..., progress: ProgressFn | None = ...,
                 record: Collection[str] = ..., observe: Any = ...) -> Any: ...


def _ann_mean(graph: Graph, x: np.ndarray, name: str, batch_size: int) -> np.ndarray:
    total = None
    for values in run_batched(graph, x, batch_size, keep=lambda n: n == name):
        part = values[name].astype(np.float64).sum(axis=0)
        total = part if total is None else total + part
    return total / len(x)


def _ann_means(graph: Graph, x: np.ndarray, names: Collection[str],
               batch_size: int) -> dict[str, np.ndarray]:
    """_ann_mean of every node in `names`, from one pass of the ANN."""
    totals: dict[str, np.ndarray] = {}

    def observe(name: str, value: np.ndarray) -> None:
        if name in names:
            part = value.astype(np.float64).sum(axis=0)
            totals[name] = part if name not in totals else totals[name] + part

    for _ in run_batched(graph, x, batch_size, keep=lambda n: False, observe=observe):
        pass
    return {name: total / len(x) for name, total in totals.items()}


def _snn_mean(graph: Graph, x: np.ndarray, node: Node, timesteps: int, simulate: Simulator,
              batch_size: int, replay: Mapping[str, np.ndarray] | None = None,
              inputs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The layer's time-averaged output; `replay`: recorded trains to feed in; `inputs`, if
    given, receives the current into the layer at every step (its input node's values)."""
    total = np.zeros(node.shape, dtype=np.float64)

    def observe(k: int, t: int, chunk: slice, net: dict[str, np.ndarray]) -> None:
        total[...] += net[node.name].sum(axis=0)

    extra: dict[str, Any] = {"replay": replay} if replay else {}
    if inputs is not None:
        extra["capture"] = [node.inputs[0]]
    sim = simulate(graph, x, [timesteps], batch_size=batch_size, record=[node.name],
                   observe=observe, **extra)
    if inputs is not None:
        inputs.update(sim.trains)
    return total * node.params["theta"] / (timesteps * len(x))


def can_replay(simulate: Simulator) -> bool:
    """Whether the simulator records and replays spike trains (`capture`, `replay`)."""
    try:
        params = inspect.signature(simulate).parameters
    except (TypeError, ValueError):
        return False
    return "replay" in params and "capture" in params


def frontier(graph: Graph, name: str) -> set[str]:
    """The IF nodes that feed node `name` without another IF node in between."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = list(graph.node(name).inputs)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        node = graph.node(current)
        if node.op == "if":
            found.add(current)
        else:
            stack.extend(node.inputs)
    return found


def _train_bytes(node: Node, samples: int, timesteps: int) -> int:
    """What capturing the node's trains holds: counts of an IF node (one byte each up to 127,
    else two), float32 values of any other node."""
    per = 4 if node.op != "if" else (
        1 if (1 << int(node.attrs.get("spike_bits", 1))) - 1 <= 127 else 2)
    return per * samples * timesteps * int(np.prod(node.shape))


def _replay_plan(graph: Graph, names: list[str], samples: int, timesteps: int,
                 output: bool = False) -> tuple[dict[str, set[str]], dict[str, int]] | None:
    """Each layer's frontier and, per recorded layer, the index of its last reader (with
    `output`, the network's output reads its frontier after the last layer); None where the
    recorded trains would need more than REPLAY_BYTES at some point."""
    fronts = {name: frontier(graph, name) for name in names}
    last: dict[str, int] = {}
    for k, name in enumerate(names):
        for j in fronts[name]:
            last[j] = k
    if output:
        for j in frontier(graph, graph.output) - {graph.output}:
            last[j] = len(names)
    alive = 0
    for k, name in enumerate(names):
        if name in last:
            alive += _train_bytes(graph.node(name), samples, timesteps)
        if alive > REPLAY_BYTES:
            return None
        alive -= sum(_train_bytes(graph.node(j), samples, timesteps) for j in fronts[name]
                     if last[j] == k)
    return fronts, last


def _per_channel(diff: np.ndarray) -> np.ndarray:
    """The mean over positions of each channel, shaped to broadcast over the layer."""
    if diff.ndim <= 1:
        return diff
    return channel_view(diff.reshape(len(diff), -1).mean(axis=1), diff.ndim)


def _corrected(node: Node, diff: np.ndarray, method: str, timesteps: int) -> Node:
    params: dict[str, np.ndarray] = {}
    remainder = diff
    if method in ("bias", "bias+potential"):
        channel = _per_channel(diff)
        shift = node.params.get("i_shift", np.float32(0))
        params["i_shift"] = np.asarray(shift + channel, np.float32)
        remainder = diff - channel
    if method in ("potential", "bias+potential"):
        v0 = np.broadcast_to(node.params["v0"], node.shape)
        params["v0"] = np.asarray(v0 + timesteps * remainder, np.float32)
    return node.with_params(**params).replace(
        meta={**node.meta, "calibrated": f"{method} for T={timesteps}"})


def calibrate(graph: Graph, calib: np.ndarray | None, timesteps: int | None,
              simulate: Simulator | None, method: str = "bias+potential",
              max_samples: int = 256, batch_size: int = 128, rounds: int = 1,
              progress: ProgressFn | None = None,
              on_outputs: OutputsFn | None = None) -> Graph:
    """`on_outputs(graph, calib, n, timesteps, outputs)` is told the calibrated network's
    outputs after T steps on calib[:n], where replaying made them nearly free (tuning scores
    the calibrated network on them without simulating it again)."""
    if method not in METHODS:
        raise UsageError(f"--calibrate '{method}' is not one of: {', '.join(METHODS)}")
    if method == "none":
        return graph
    if method == "auto":
        raise UsageError("--calibrate auto (calibrate only where it helps) is decided by "
                         "simulating, which needs calibration data (--calib) and snnc.compile")
    if calib is None or len(calib) == 0:
        raise DataError("layer-wise calibration needs calibration data: pass --calib "
                        "CALIB.npz, or --calibrate none")
    if not timesteps:
        raise UsageError("layer-wise calibration tunes the network for one T: give --timesteps")
    if simulate is None:
        raise UsageError("layer-wise calibration needs a simulator to be handed in")
    if graph.meta.get("shift") == "bias":
        raise UsageError("--calibrate corrects the layer biases itself, which --shift bias "
                         "also changes: use --shift v0 (default) or input with calibration")
    names = [n.name for n in graph.nodes if n.op == "if"]
    # bounded on large models (the samples that re-simulating every prefix could afford)
    x = calib[:samples_within_budget(calibration_macs(graph, timesteps), MIN_SAMPLES,
                                     max_samples, simulator_budget(simulate))]
    plan = (_replay_plan(graph, names, len(x), timesteps, on_outputs is not None)
            if can_replay(simulate) else None)
    if plan is not None:
        graph, outputs = _calibrate_replaying(graph, x, names, plan, timesteps, simulate,
                                              method, batch_size, rounds, progress,
                                              on_outputs is not None)
        graph = graph.with_meta(calibrated=method, timesteps=int(timesteps))
        if on_outputs is not None and outputs is not None:
            on_outputs(graph, calib, len(x), int(timesteps), outputs)
        return graph
    for name in names:
        upto = graph.replace(output=name)  # the layers after it do not matter yet
        target = _ann_mean(upto, x, name, batch_size)
        for _ in range(rounds):
            node = upto.node(name)
            diff = target - _snn_mean(upto, x, node, timesteps, simulate, batch_size)
            node = _corrected(node, diff.astype(np.float32), method, timesteps)
            upto = upto.replace([node if n.name == name else n for n in upto.nodes])
        graph = graph.replace([node if n.name == name else n for n in graph.nodes])
        if progress is not None:
            progress(1)
    return graph.with_meta(calibrated=method, timesteps=int(timesteps))


def _calibrate_replaying(graph: Graph, x: np.ndarray, names: list[str],
                         plan: tuple[dict[str, set[str]], dict[str, int]], timesteps: int,
                         simulate: Simulator, method: str, batch_size: int, rounds: int,
                         progress: ProgressFn | None, outputs: bool = False
                         ) -> tuple[Graph, np.ndarray | None]:
    """The layer loop of `calibrate`, each layer simulated from the recorded trains of its
    frontier (see the module's docstring); with `outputs`, also the calibrated network's
    outputs, from the recorded trains of the layers feeding its output."""
    fronts, last = plan
    targets = _ann_means(graph, x, set(names), batch_size)
    trains: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        upto = graph.replace(output=name)  # the layers after it do not matter yet
        replay = {j: trains[j] for j in fronts[name]}
        # the current into the layer does not change with its corrections: kept from the
        # first simulation, the others only run the neurons (unless it is computed once
        # anyway, from the input, or would not fit in memory)
        source = upto.node(upto.node(name).inputs[0])
        alive = sum(_train_bytes(graph.node(j), len(x), timesteps) for j in trains)
        keep = (bool(fronts[name]) and source.op != "if"
                and window_macs(graph, name) >= KEEP_CURRENT_MACS * np.prod(source.shape)
                and alive + _train_bytes(source, len(x), timesteps) <= REPLAY_BYTES)
        current: dict[str, np.ndarray] = {}
        for _ in range(rounds):
            node = upto.node(name)
            if current:  # only the neurons run
                mean = _snn_mean(upto, x, node, timesteps, simulate, batch_size, current)
            else:
                mean = _snn_mean(upto, x, node, timesteps, simulate, batch_size, replay,
                                 current if keep else None)
            node = _corrected(node, (targets[name] - mean).astype(np.float32), method,
                              timesteps)
            upto = upto.replace([node if n.name == name else n for n in upto.nodes])
        graph = graph.replace([node if n.name == name else n for n in graph.nodes])
        if name in last:  # later layers read it: record what it emits, corrected
            trains[name] = simulate(upto, x, [timesteps], batch_size=batch_size,
                                    replay=current or replay, capture=[name]).trains[name]
        current.clear()
        for j in fronts[name]:
            if last[j] == k:
                del trains[j]
        if progress is not None:
            progress(1)
    if not outputs:
        return graph, None
    replay = {j: trains[j] for j in frontier(graph, graph.output) - {graph.output}}
    sim = simulate(graph, x, [timesteps], batch_size=batch_size, replay=replay)
    return graph, sim.outputs[0]
