"""`snnc eval`: ANN accuracy (onnxruntime) beside SNN accuracy, spikes, synaptic operations and
energy at each T, for one or more method sets (presets), and optionally per layer.

A network tuned for one T (MMSE thresholds, layer-wise calibration, input or bias shift) is
compiled again for every T; otherwise one run to max(T) gives every smaller T as a prefix.

Per layer (`per_layer=True`, first method set), at each T, over the evaluation data:
* error: ||r - a|| / ||a||, r the SNN layer's time-averaged output (theta * net spikes / T),
  a the ANN activation clip(z, 0, theta) of the same network run as an ANN;
* rate: spikes per neuron per time step;
* saturated / silent: share of (sample, neuron) pairs that fired at every step / never.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snnc.api import compile
from snnc.backends.numpy.simulator import DEFAULT_ENGINE
from snnc.compiler.errors import DataError, UsageError
from snnc.compiler.executor import run_all
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
                            (counts >= t).sum(), (counts == 0).sum(), counts.size], np.float64)
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


def _simulate_method(model: str | os.PathLike[str], x: np.ndarray, y: np.ndarray,
                     ts: list[int], calib_x: np.ndarray | None, options: dict[str, Any],
                     bar: Any, per_layer: bool, engine: str
                     ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]],
                                float]:
    rows: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    net = compile(model, calib=calib_x, timesteps=ts[-1], engine=engine, **options)
    # largest T first, so that the network just compiled for it serves its own group
    groups = [[t] for t in reversed(ts)] if tuned_for_one_t(net.options) else [ts]
    for group in groups:
        if group[-1] != net.default_timesteps:
            net = compile(model, calib=calib_x, timesteps=group[-1], engine=engine, **options)
        stats = _LayerStats(net, x[:PER_LAYER_SAMPLES]) if per_layer else None
        sim = net.simulate(x, group, progress=bar.update, engine=engine)
        if stats is not None:
            net.simulate(stats.x, group, record=stats.names, observe=stats.observe,
                         engine=engine)
            layers.extend(stats.rows())
        for k, t in enumerate(group):
            pred = sim.outputs[k].reshape(len(x), -1).argmax(axis=1)
            per_layer_spikes = {name: float(s[k].mean()) for name, s in sim.spikes.items()}
            counts = op_counts(net.graph, per_layer_spikes)
            rows.append({"timesteps": t, "accuracy": float((pred == y).mean()),
                         "spikes_per_sample": float(sim.spikes_per_sample()[k]),
                         "sops_per_sample": counts.sops, "macs_per_sample": counts.snn_macs,
                         "energy_uj": counts.snn_energy_uj,
                         "energy_ratio": counts.energy_ratio})
    rows.sort(key=lambda r: r["timesteps"])
    layers.sort(key=lambda r: r["timesteps"])  # stable: layer order within each T is kept
    settings = {k: v for k, v in net.options.items() if k not in ("timesteps", "pipeline")}
    return rows, settings, layers, op_counts(net.graph, {}).ann_macs


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str],
             timesteps: Sequence[int], calib: str | os.PathLike[str] | None = None,
             presets: Sequence[str] | None = None, per_layer: bool = False,
             engine: str = DEFAULT_ENGINE, **compile_options: Any) -> dict[str, Any]:
    ts = sorted({int(t) for t in timesteps})
    if not ts or ts[0] < 1:
        raise UsageError(f"--timesteps must be positive integers, got {list(timesteps)}")
    x, y = load_data(data, need_labels=True)
    calib_x = None if calib is None else load_data(calib)[0]
    ann = ann_outputs(model, x)
    if len(ann) != len(y):
        raise DataError(f"the model gave {len(ann)} outputs for {len(y)} samples")
    ann_acc = float((ann.reshape(len(ann), -1).argmax(axis=1) == y).mean())
    presets = list(presets or [compile_options.pop("preset", None) or "calibrated"])
    compile_options.pop("preset", None)
    methods = []
    layers: list[dict[str, Any]] = []
    with progress_bar(total=len(x) * len(ts) * len(presets), desc="simulating") as bar:
        for k, preset in enumerate(presets):
            rows, settings, found, ann_macs = _simulate_method(
                model, x, y, ts, calib_x, {**compile_options, "preset": preset}, bar,
                per_layer and k == 0, engine)
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
    return report


def format_table(report: dict[str, Any]) -> str:
    ann = report["ann_accuracy"]
    lines = [f"{report['model']} on {report['data']} ({report['samples']} samples)",
             f"ANN accuracy (onnxruntime): {100 * ann:.2f}%, "
             f"{report.get('ann_macs_per_sample', 0) / 1e6:.3g} M MACs/sample, "
             f"{report.get('ann_energy_uj', 0):.3g} uJ/sample (45 nm)"]
    for method in report.get("methods", [{"name": "", "snn": report["snn"]}]):
        if method["name"]:
            lines.append(f"preset {method['name']}:")
        lines.append(f"{'T':>6}  {'SNN acc':>8}  {'vs ANN':>7}  {'spikes/sample':>13}  "
                     f"{'SOPs/sample':>11}  {'E/E_ANN':>7}")
        for row in method["snn"]:
            delta = 100 * (row["accuracy"] - ann)
            lines.append(f"{row['timesteps']:>6}  {100 * row['accuracy']:>7.2f}%  "
                         f"{delta:>+6.2f}  {row['spikes_per_sample']:>13.1f}  "
                         f"{row.get('sops_per_sample', 0):>11.3g}  "
                         f"{row.get('energy_ratio', float('nan')):>7.3f}")
    if report.get("per_layer"):
        lines.append("per layer (first preset): T, layer, error vs ANN, spikes/neuron/step, "
                     "saturated, silent")
        for row in report["per_layer"]:
            lines.append(f"{row['timesteps']:>6}  {row['layer']:<24} {row['error']:>7.3f}  "
                         f"{row['rate']:>7.3f}  {100 * row['saturated']:>6.2f}%  "
                         f"{100 * row['silent']:>6.2f}%")
    return "\n".join(lines)
