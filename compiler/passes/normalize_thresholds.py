"""normalize-thresholds: give every activation a threshold theta from the model or from data.

* Clip(0, a), or a recognised `qclip` activation (QCFS, clipped ReLU chains): the model's own
  upper bound is the trained threshold (theta = a, per channel where the model has it).
* ReLU: theta = the p-th percentile of the layer's positive activations on calibration data
  (Rueckauer et al. 2017, "robust normalization"; p = 100 is Diehl 2015's max-norm), per layer
  or per channel, from streaming histograms (one pass, activations never held in memory).

theta is what the converted IF neuron fires at, and the amplitude of its spikes, so the layer
after it needs no weight rescaling (threshold balancing, the dual of weight normalization).
For graded neurons (`spike_bits` B > 1) it is the clip level lambda, the neuron's largest rate:
convert makes the step lambda / (2^B - 1). `mmse` then quantizes to T * (2^B - 1) levels, what
T steps of a graded neuron can deliver.

Before:  %relu1 : f32[N,16,8,8] = relu(%conv1)
After:   %relu1 : f32[N,16,8,8] = relu[theta=1.734](%conv1)
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from ..contracts import CONVERTED, contract
from ..errors import DataError, ModelError, UsageError
from ..executor import run_batched
from ..ir.graph import Graph, Node
from ..ops.neuron import spike_levels
from ..stats import NonFiniteError, PositiveHistogram

NAME = "normalize-thresholds"
CONTRACT = contract(forbids={CONVERTED})  # thresholds of the ANN's activations
ACTIVATIONS = ("relu", "clip", "qclip")


@dataclass(frozen=True)
class NormSpec:
    """How to set data-based thresholds: 'max', 'percentile' at p, or 'mmse' (the threshold
    that minimises the quantization error of the requested number of time steps)."""

    method: str = "percentile"
    percentile: float = 99.99
    per_channel: bool = False
    # also replace trained thresholds (Clip bounds, QCFS lambdas) by data-based ones, from the
    # statistics of the clipped activations: at low T a lower threshold can serve better
    override_trained: bool = False

    @classmethod
    def parse(cls, text: str, per_channel: bool = False) -> NormSpec:
        """'max', 'mmse', 'percentile' or 'percentile:P' (0 < P <= 100)."""
        if text == "max":
            return cls("max", 100.0, per_channel)
        if text in ("mmse", "auto"):  # auto: chosen per T by snnc.compiler.tuning
            return cls(text, 100.0, per_channel or text == "auto")
        if text == "percentile" or text.startswith("percentile:"):
            raw = text.partition(":")[2] or "99.99"
            try:
                p = float(raw)
            except ValueError:
                p = float("nan")
            if not 0 < p <= 100:
                raise UsageError(f"--norm percentile:{raw}: P must be a number in (0, 100]")
            return cls("percentile", p, per_channel)
        raise UsageError(f"--norm '{text}' is not one of: auto, max, mmse, percentile, "
                         "percentile:P")

    def __str__(self) -> str:
        text = (self.method if self.method in ("max", "mmse", "auto")
                else f"percentile:{self.percentile:g}")
        text += " per-channel" if self.per_channel else ""
        return text + (" (also for trained activations)" if self.override_trained else "")


def _trained_theta(node: Node) -> np.ndarray | None:
    if node.op == "qclip":
        return node.params["theta"]
    if node.op == "clip" and node.attrs.get("max") is not None:
        return np.array(node.attrs["max"], dtype=np.float32)
    return None


# histogram resolution: a percentile is exact to hi/BINS, hi < 2 * the layer's max
LAYER_BINS = 4096
CHANNEL_BINS = 512


def _histogram(node: Node, per_channel: bool) -> PositiveHistogram:
    channels = node.shape[0] if per_channel and node.shape else 1
    return PositiveHistogram(channels, CHANNEL_BINS if per_channel else LAYER_BINS)


def _theta(hist: PositiveHistogram, node: Node, spec: NormSpec,
           timesteps: int | None, spike_bits: int = 1) -> np.ndarray:
    """Scalar theta, or (C, 1, ...) per channel; a channel that never fired gets 1.0 (any
    positive threshold keeps it silent)."""
    if spec.method == "auto":
        raise UsageError("--norm auto is chosen by simulating candidates, which needs "
                         "calibration data (--calib) and snnc.compile")
    if spec.method == "mmse":
        if not timesteps:
            raise UsageError("--norm mmse chooses thresholds for a number of time steps: "
                             "give --timesteps T")
        # T steps of up to 2^B - 1 counts each: T * (2^B - 1) quanta of lambda
        theta = hist.mmse_threshold(timesteps * spike_levels(spike_bits))
    else:
        theta = hist.percentile(spec.percentile)
    theta = np.where(theta > 0, theta, 1.0).astype(np.float32)
    if not spec.per_channel:
        return np.array(theta[0], dtype=np.float32)
    return theta.reshape((-1,) + (1,) * (len(node.shape) - 1))


def collect_histograms(graph: Graph, calib: np.ndarray, names: Collection[str],
                       per_channel: bool, batch_size: int = 32
                       ) -> dict[str, PositiveHistogram]:
    """The histograms of the activations `names` on the calibration data, in one streaming
    pass: each activation updates its histogram as soon as it is made."""
    hists = {name: _histogram(graph.node(name), per_channel) for name in names}

    def observe(name: str, acts: np.ndarray) -> None:
        if name in hists:
            try:
                hists[name].add(acts if per_channel else acts.reshape(len(acts), 1, -1))
            except NonFiniteError:
                raise ModelError.at(graph.node(name), "its activations on the calibration "
                                    "data are NaN or overflow float32: check the "
                                    "weights before this layer (are they trained?) and "
                                    "the calibration data's scale") from None

    if hists:
        for _ in run_batched(graph, calib, batch_size, keep=lambda name: False,
                             observe=observe):
            pass
    return hists


class ActivationStats:
    """Histograms of a graph's activations on calibration data, collected once and shared by
    every normalize-thresholds run on the same graph object and data array: tuning's
    candidates (and `eval`'s compiles for each T) differ only in what they read off them
    (which percentile, mmse for which T). The first pass collects every activation, trained
    ones too (the candidates that override trained thresholds read those), so that one pass
    serves them all. A histogram does not depend on which other activations were collected in
    the same pass, so the thresholds are those of a pass of their own."""

    def __init__(self) -> None:
        self.seconds = 0.0  # spent collecting
        # (graph, calib, per_channel, batch_size, {activation: histogram})
        self._entries: list[tuple[Graph, np.ndarray, bool, int,
                                  dict[str, PositiveHistogram]]] = []

    def histograms(self, graph: Graph, calib: np.ndarray, names: Collection[str],
                   per_channel: bool, batch_size: int = 32) -> dict[str, PositiveHistogram]:
        wanted = list(names)
        hists = next((entry[4] for entry in self._entries if entry[0] is graph
                      and entry[1] is calib and entry[2:4] == (per_channel, batch_size)), None)
        if hists is None:
            hists = {}
            self._entries.append((graph, calib, per_channel, batch_size, hists))
            names = [*names, *(n.name for n in graph.nodes
                               if n.op in ACTIVATIONS and n.name not in names)]
        missing = [name for name in names if name not in hists]
        if missing:
            start = time.perf_counter()
            hists.update(collect_histograms(graph, calib, missing, per_channel, batch_size))
            self.seconds += time.perf_counter() - start
        return {name: hists[name] for name in wanted}


def normalize_thresholds(graph: Graph, calib: np.ndarray | None, spec: NormSpec = NormSpec(),
                         batch_size: int = 32, timesteps: int | None = None,
                         spike_bits: int = 1, stats: ActivationStats | None = None) -> Graph:
    """`stats`: histograms shared with other runs on this graph and data (tuning)."""
    def trained(node: Node) -> np.ndarray | None:
        return None if spec.override_trained else _trained_theta(node)

    needs_data = [n for n in graph.nodes if n.op in ACTIVATIONS and trained(n) is None]
    hists: dict[str, PositiveHistogram] = {}
    if needs_data:
        if calib is None or len(calib) == 0:
            who = ", ".join(n.origin for n in needs_data[:3])
            raise DataError(f"{len(needs_data)} activation(s) have no trained threshold "
                            f"({who}{', ...' if len(needs_data) > 3 else ''}); pass calibration "
                            "data with --calib CALIB.npz, or train with Clip(0, a) activations")
        names = [n.name for n in needs_data]
        hists = (stats.histograms(graph, calib, names, spec.per_channel, batch_size)
                 if stats is not None
                 else collect_histograms(graph, calib, names, spec.per_channel, batch_size))
    nodes = []
    for node in graph.nodes:
        if node.op in ACTIVATIONS:
            theta = trained(node)
            if theta is not None:
                origin = "trained activation" if node.op == "qclip" else "clip bound"
                node = node.replace(meta={**node.meta, "theta_from": origin})
            else:
                theta = _theta(hists[node.name], node, spec, timesteps, spike_bits)
                node = node.replace(meta={**node.meta, "theta_from": str(spec)})
            node = node.with_params(theta=theta)
        nodes.append(node)
    return graph.replace(nodes)
