"""`snnc eval`: ANN accuracy (onnxruntime) beside SNN accuracy, spikes, synaptic operations and
energy at each T, for one or more method sets (presets), and optionally per layer.

A network tuned for one T (MMSE thresholds, layer-wise calibration, input or bias shift) is
compiled again for every T; otherwise one run to max(T) gives every smaller T as a prefix. The
compiles for each T share one TuningCache (compiler/tuning.py: the activation histograms, the
ANN's outputs, each candidate network's outputs at every T), and Ts whose compiled networks
are identical (tuning picked the same untuned-for-T candidate) share one run on the test set.
`timing` says where the time went: compiling (tuning's phases) and simulating.

Per layer (`per_layer=True`, first method set; `eval --per-layer`, implied by `eval --report`,
whose firing-rate and conversion-error plots draw these), at each T, over the evaluation data:
* error: ||r - a|| / ||a||, r the SNN layer's time-averaged output (theta * net spikes / T),
  a the ANN activation clip(z, 0, theta) of the same network run as an ANN;
* rate: spikes per neuron per time step (for graded layers, counts: the payload);
* saturated / silent: share of (sample, neuron) pairs that fired at every step (graded: the
  full 2^B - 1 counts at every step) / never.

With `bound=True`, each row also has `bound_accuracy`: the accuracy of the network's rate-coding
bound at that T (compiler/rate_bound.py: every IF layer replaced by its T-step staircase for a
constant current), so that a user sees how much of the loss is quantization of the
activations, which no calibration of the conversion removes (None where it has no closed form).

Counts per sample: messages (spike events: neuron-steps that emitted n != 0), payload (the
counts they carried, sum of |n|; equal to messages for binary neurons) and synaptic operations
(messages x fan-out, runtime/metrics.py; graded messages' SOPs are charged as MACs).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snnc.api import compile
from snnc.backends.numpy.simulator import DEFAULT_ENGINE
from snnc.compiler.errors import DataError, UsageError
from snnc.compiler.executor import run, run_all
from snnc.compiler.ops.neuron import max_count
from snnc.compiler.rate_bound import rate_bound_graph
from snnc.compiler.targets import target
from snnc.compiler.tuning import TuningCache, graph_digest
from snnc.runtime import CompiledNetwork, load_data
from snnc.runtime.ann import ann_outputs
from snnc.runtime.metrics import E_MAC_PJ, op_counts

from .progress import progress_bar

PER_LAYER_SAMPLES = 512  # the per-layer report looks at this many samples at most


def tuned_for_one_t(options: dict[str, Any]) -> bool:
    return (options.get("shift") in ("input", "bias") or options.get("calibrate", "none")
            != "none" or str(options.get("norm", "")).startswith("mmse")
            or bool(options.get("tuned")) or bool(options.get("tuning_note")))


class _LayerStats:
    """Streaming per-layer statistics, fed by the simulator's observe hook."""

    def __init__(self, net: CompiledNetwork, x: np.ndarray) -> None:
        self.net, self.x = net, x
        self.names = [n.name for n in net.graph.nodes if n.op == "if"]
        self.levels = {name: max_count(net.graph.node(name)) for name in self.names}
        self.sums: dict[tuple[int, str], np.ndarray] = {}
        self._ann: tuple[int, dict[str, np.ndarray]] | None = None

    def _ann_values(self, chunk: slice) -> dict[str, np.ndarray]:
        if self._ann is None or self._ann[0] != chunk.start:
            wanted = set(self.names)
            self._ann = (chunk.start, run_all(self.net.graph, self.x[chunk],
                                              keep=wanted.__contains__))
        return self._ann[1]

    def observe(self, k: int, t: int, chunk: slice, net: dict[str, np.ndarray]) -> None:
        ann = self._ann_values(chunk)
        for name in self.names:
            counts = net[name]
            theta = self.net.graph.node(name).params["theta"]
            r = counts * theta / t
            a = ann[name]
            row = np.array([((r - a) ** 2).sum(), (a ** 2).sum(), np.abs(counts).sum(),
                            (counts >= self.levels[name] * t).sum(), (counts == 0).sum(),
                            counts.size], np.float64)
            key = (t, name)
            self.sums[key] = self.sums.get(key, 0) + row

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for (t, name), (err, ref, spikes, saturated, silent, size) in sorted(
                self.sums.items(), key=lambda kv: (kv[0][0], self.names.index(kv[0][1]))):
            out.append({"layer": name, "timesteps": t,
                        "error": float(np.sqrt(err / ref)) if ref > 0 else 0.0,
                        "rate": float(spikes / (size * t)),
                        "saturated": float(saturated / size), "silent": float(silent / size)})
        return out


def bound_accuracy(net: CompiledNetwork, x: np.ndarray, y: np.ndarray,
                   timesteps: int) -> float | None:
    """Accuracy of the network's rate-coding bound at `timesteps` (None: no closed form, or a
    fixed-point network, whose float weights are not what runs)."""
    # only the converted network itself: no target passes lowered or quantized it
    graph = None if target(net.target).passes else rate_bound_graph(net.graph, timesteps)
    if graph is None:
        return None
    batches = (x[s:s + 256] for s in range(0, len(x), 256))  # bounded memory
    pred = np.concatenate([run(graph, b).reshape(len(b), -1).argmax(axis=1) for b in batches])
    return float((pred == y).mean())


def _ticks(bar: Any, per_sample: int) -> Any:
    return lambda n: bar.update(n * per_sample)


def _simulate_method(model: str | os.PathLike[str], x: np.ndarray, y: np.ndarray,
                     ts: list[int], calib_x: np.ndarray | None, options: dict[str, Any],
                     bar: Any, per_layer: bool, engine: str, cache: TuningCache,
                     timing: dict[str, float], bound: bool = False, runner: Any = None
                     ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]],
                                float]:
    rows: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []

    def compiled(t: int) -> CompiledNetwork:
        start = time.perf_counter()
        net = compile(model, calib=calib_x, timesteps=t, engine=engine, cache=cache, **options)
        timing["compile_s"] += time.perf_counter() - start
        return net

    net = compiled(ts[-1])
    nets = {ts[-1]: net}
    if tuned_for_one_t(net.options):
        for t in reversed(ts[:-1]):  # largest T first, the order of the old per-T groups
            nets[t] = net = compiled(t)
        by_network: dict[str, list[int]] = {}
        for t in ts:  # the same network at several T: one run, each T a prefix of it
            by_network.setdefault(graph_digest(nets[t].graph), []).append(t)
        groups = sorted(by_network.values(), key=lambda g: -g[-1])
    else:
        groups = [ts]
    for group in groups:
        group_net = nets[group[-1]]
        stats = _LayerStats(group_net, x[:PER_LAYER_SAMPLES]) if per_layer else None
        start = time.perf_counter()
        # one run serves every T of the group (sharded over a Dask cluster: `runner`,
        # runtime/distributed.py, the same results)
        device, ticks = options.get("device"), _ticks(bar, len(group))
        sim = (runner.simulate(group_net, x, group, ticks, engine, device) if runner is not None
               else group_net.simulate(x, group, progress=ticks, engine=engine, device=device))
        timing["simulate_s"] += time.perf_counter() - start
        timing["runs"] += 1
        if stats is not None:
            start = time.perf_counter()
            group_net.simulate(stats.x, group, record=stats.names, observe=stats.observe,
                               engine=engine, device=device)
            layers.extend(stats.rows())
            timing["per_layer_s"] += time.perf_counter() - start
        for k, t in enumerate(group):
            pred = sim.outputs[k].reshape(len(x), -1).argmax(axis=1)
            per_layer_spikes = {name: float(s[k].mean()) for name, s in sim.spikes.items()}
            counts = op_counts(group_net.graph, per_layer_spikes)
            messages = float(sim.spikes_per_sample()[k])
            rows.append({"timesteps": t, "accuracy": float((pred == y).mean()),
                         "spikes_per_sample": messages, "messages_per_sample": messages,
                         "payload_per_sample": float(sim.payload_per_sample()[k]),
                         "sops_per_sample": counts.sops,
                         "graded_sops_per_sample": counts.graded_sops,
                         "macs_per_sample": counts.snn_macs,
                         "energy_uj": counts.snn_energy_uj,
                         "energy_ratio": counts.energy_ratio,
                         **({"spike_bits": group_net.options["spike_bits"]}
                            if "spike_bits" in group_net.options else {})})
            if bound:
                start = time.perf_counter()
                rows[-1]["bound_accuracy"] = bound_accuracy(group_net, x, y, t)
                timing["bound_s"] += time.perf_counter() - start
    rows.sort(key=lambda r: r["timesteps"])
    layers.sort(key=lambda r: r["timesteps"])  # stable: layer order within each T is kept
    settings = {k: v for k, v in net.options.items() if k not in ("timesteps", "pipeline")}
    return rows, settings, layers, op_counts(net.graph, {}).ann_macs


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str],
             timesteps: Sequence[int], calib: str | os.PathLike[str] | None = None,
             presets: Sequence[str] | None = None, per_layer: bool = False,
             engine: str = DEFAULT_ENGINE, bound: bool = False, runner: Any = None,
             **compile_options: Any) -> dict[str, Any]:
    """`runner`: a runtime.distributed.Cluster to shard the test-set simulations over."""
    ts = sorted({int(t) for t in timesteps})
    if not ts or ts[0] < 1:
        raise UsageError(f"--timesteps must be positive integers, got {list(timesteps)}")
    began = time.perf_counter()
    x, y = load_data(data, need_labels=True)
    calib_x = None if calib is None else load_data(calib)[0]
    ann = ann_outputs(model, x)
    timing: dict[str, float] = defaultdict(float)
    timing["ann_s"] = time.perf_counter() - began
    if len(ann) != len(y):
        raise DataError(f"the model gave {len(ann)} outputs for {len(y)} samples")
    ann_acc = float((ann.reshape(len(ann), -1).argmax(axis=1) == y).mean())
    presets = list(presets or [compile_options.pop("preset", None) or "calibrated"])
    compile_options.pop("preset", None)
    methods = []
    layers: list[dict[str, Any]] = []
    cache = TuningCache(ts)  # tuning work shared by every T and preset
    with progress_bar(total=len(x) * len(ts) * len(presets), desc="simulating") as bar:
        for k, preset in enumerate(presets):
            rows, settings, found, ann_macs = _simulate_method(
                model, x, y, ts, calib_x, {**compile_options, "preset": preset}, bar,
                per_layer and k == 0, engine, cache, timing, bound, runner)
            methods.append({"name": preset, "settings": settings, "snn": rows})
            layers = layers or found
    first = methods[0]
    report: dict[str, Any] = {
        "model": Path(model).name, "data": Path(data).name, "samples": int(len(x)),
        "ann_accuracy": ann_acc, "ann_macs_per_sample": ann_macs,
        "ann_energy_uj": ann_macs * E_MAC_PJ * 1e-6,
        "snn": first["snn"], "settings": first["settings"], "methods": methods,
    }
    if per_layer:
        report["per_layer"] = layers
    timing.update({f"{phase}_s": seconds for phase, seconds in cache.seconds.items()})
    timing["histograms_s"] = cache.stats.seconds
    timing["total_s"] = time.perf_counter() - began
    report["timing"] = {k: (int(v) if k == "runs" else round(v, 2)) for k, v in timing.items()}
    return report


def format_timing(timing: dict[str, float]) -> str:
    """One line: where an evaluation's time went."""
    tuning = [f"{label} {timing[key]:.1f}" for key, label in (
        ("histograms_s", "histograms"), ("reference_s", "ANN outputs"),
        ("candidates_s", "candidates"), ("scoring_s", "scoring"),
        ("calibration_s", "calibration")) if timing.get(key)]
    line = (f"time {timing.get('total_s', 0):.1f} s: ANN (onnxruntime) "
            f"{timing.get('ann_s', 0):.1f}, compile {timing.get('compile_s', 0):.1f}"
            + (f" ({', '.join(tuning)})" if tuning else "")
            + f", test simulation {timing.get('simulate_s', 0):.1f} in "
            f"{timing.get('runs', 0)} run(s)")
    if timing.get("per_layer_s"):
        line += f", per-layer report {timing['per_layer_s']:.1f}"
    if timing.get("bound_s"):
        line += f", rate bound {timing['bound_s']:.1f}"
    return line


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def format_table(report: dict[str, Any]) -> str:
    ann = report["ann_accuracy"]
    lines = [f"{report['model']} on {report['data']} ({report['samples']} samples)",
             f"ANN accuracy (onnxruntime): {100 * ann:.2f}%, "
             f"{report.get('ann_macs_per_sample', 0) / 1e6:.3g} M MACs/sample, "
             f"{report.get('ann_energy_uj', 0):.3g} uJ/sample (45 nm)"]
    for method in report.get("methods", [{"name": "", "snn": report["snn"]}]):
        if method["name"]:
            lines.append(f"preset {method['name']}:")
        graded = any("spike_bits" in row for row in method["snn"])
        if graded:  # B per T (tuning may choose it per T); graded SOPs are charged as MACs
            lines.append("  graded spikes: B bits, a message carries up to 2^B - 1 counts; "
                         "graded messages' SOPs are charged as MACs")
        bits_head = f"  {'B':>2}" if graded else ""
        bounded = any("bound_accuracy" in row for row in method["snn"])
        if bounded:
            lines.append("  bound: the rate-coding limit at T (each layer's T-step staircase "
                         "for a constant current; compiler/rate_bound.py)")
        lines.append(f"{'T':>6}{bits_head}  {'SNN acc':>8}  {'vs ANN':>7}  "
                     f"{'messages/sample':>15}  {'payload/sample':>14}  {'SOPs/sample':>11}  "
                     f"{'E/E_ANN':>7}" + (f"  {'bound':>7}" if bounded else ""))
        for row in method["snn"]:
            delta = 100 * (row["accuracy"] - ann)
            messages = row.get("messages_per_sample", row["spikes_per_sample"])
            bits = f"  {row.get('spike_bits', 1):>2}" if graded else ""
            lines.append(f"{row['timesteps']:>6}{bits}  {100 * row['accuracy']:>7.2f}%  "
                         f"{delta:>+6.2f}  {messages:>15.1f}  "
                         f"{row.get('payload_per_sample', messages):>14.1f}  "
                         f"{row.get('sops_per_sample', 0):>11.3g}  "
                         f"{row.get('energy_ratio', float('nan')):>7.3f}"
                         + (f"  {_percent(row.get('bound_accuracy')):>7}" if bounded else ""))
    if report.get("timing"):
        lines.append(format_timing(report["timing"]))
    if report.get("per_layer"):
        lines.append("per layer (first preset): T, layer, error vs ANN, spikes/neuron/step, "
                     "saturated, silent")
        for row in report["per_layer"]:
            lines.append(f"{row['timesteps']:>6}  {row['layer']:<24} {row['error']:>7.3f}  "
                         f"{row['rate']:>7.3f}  {100 * row['saturated']:>6.2f}%  "
                         f"{100 * row['silent']:>6.2f}%")
    return "\n".join(lines)
