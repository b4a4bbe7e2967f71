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
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

import numpy as np

from ..cost import calibration_macs, samples_within_budget
from ..errors import DataError, UsageError
from ..executor import run_batched
from ..ir.graph import Graph, Node
from ..ops.elementwise import channel_view

NAME = "calibrate"
METHODS = ("none", "bias", "potential", "bias+potential", "auto")
MIN_SAMPLES = 16  # fewer calibration samples than this make the per-channel means noise
ProgressFn = Callable[[int], None]


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


def _snn_mean(graph: Graph, x: np.ndarray, node: Node, timesteps: int, simulate: Simulator,
              batch_size: int) -> np.ndarray:
    total = np.zeros(node.shape, dtype=np.float64)

    def observe(k: int, t: int, chunk: slice, net: dict[str, np.ndarray]) -> None:
        total[...] += net[node.name].sum(axis=0)

    simulate(graph, x, [timesteps], batch_size=batch_size, record=[node.name], observe=observe)
    return total * node.params["theta"] / (timesteps * len(x))


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
              progress: ProgressFn | None = None) -> Graph:
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
    # every layer's pass simulates the network up to it: bounded on large models
    x = calib[:samples_within_budget(calibration_macs(graph, timesteps), MIN_SAMPLES,
                                     max_samples)]
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
