"""`snnc eval`: ANN accuracy (onnxruntime) beside SNN accuracy and spikes at each T."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snnc.api import compile
from snnc.compiler.errors import DataError, UsageError
from snnc.runtime import load_data
from snnc.runtime.ann import ann_outputs

from .progress import progress_bar


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str],
             timesteps: Sequence[int], calib: str | os.PathLike[str] | None = None,
             **compile_options: Any) -> dict[str, Any]:
    ts = sorted({int(t) for t in timesteps})
    if not ts or ts[0] < 1:
        raise UsageError(f"--timesteps must be positive integers, got {list(timesteps)}")
    x, y = load_data(data, need_labels=True)
    calib_x = None if calib is None else load_data(calib)[0]
    ann = ann_outputs(model, x)
    if len(ann) != len(y):
        raise DataError(f"the model gave {len(ann)} outputs for {len(y)} samples")
    ann_acc = float((ann.reshape(len(ann), -1).argmax(axis=1) == y).mean())
    shift = compile_options.get("shift", "v0")
    rows: list[dict[str, Any]] = []
    # a network compiled for one T (input shift) is compiled again per T; otherwise one run
    # to max(T) gives every smaller T as a prefix
    groups = [[t] for t in ts] if shift == "input" else [ts]
    with progress_bar(total=len(x) * len(groups), desc="simulating") as bar:
        for group in groups:
            net = compile(model, calib=calib_x, timesteps=group[-1], **compile_options)
            sim = net.simulate(x, group, progress=bar.update)
            for k, t in enumerate(group):
                pred = sim.outputs[k].reshape(len(x), -1).argmax(axis=1)
                rows.append({"timesteps": t, "accuracy": float((pred == y).mean()),
                             "spikes_per_sample": float(sim.spikes_per_sample()[k])})
    return {
        "model": Path(model).name,
        "data": Path(data).name,
        "samples": int(len(x)),
        "ann_accuracy": ann_acc,
        "snn": rows,
        "settings": {k: v for k, v in net.options.items() if k != "timesteps"},
    }


def format_table(report: dict[str, Any]) -> str:
    ann = report["ann_accuracy"]
    lines = [f"{report['model']} on {report['data']} ({report['samples']} samples)",
             f"ANN accuracy (onnxruntime): {100 * ann:.2f}%",
             f"{'T':>6}  {'SNN acc':>8}  {'vs ANN':>7}  {'spikes/sample':>13}"]
    for row in report["snn"]:
        delta = 100 * (row["accuracy"] - ann)
        lines.append(f"{row['timesteps']:>6}  {100 * row['accuracy']:>7.2f}%  {delta:>+6.2f}  "
                     f"{row['spikes_per_sample']:>13.1f}")
    return "\n".join(lines)

