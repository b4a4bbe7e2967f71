"""`snnc eval --report DIR`: PNG plots and one self-contained `report.html` (the plots embedded
as base64 data URIs, the tables inline) from the dict that `snnc.evaluate.evaluate` returns.

Plots: accuracy vs T (the ANN as a horizontal line, one line per method set), per-layer firing
rate, per-layer conversion error, and spikes / synaptic operations vs T. A plot whose data is
missing from the dict is skipped with a note in the HTML, so older reports still render;
`eval --report` asks `evaluate` for everything the plots need (EVALUATE_OPTIONS).
matplotlib draws through its Agg canvas (no display, no pyplot global state).
"""

from __future__ import annotations

import base64
import html
import io
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from snnc.compiler.errors import UsageError
from snnc.compiler.fileio import atomic_write_bytes, atomic_write_text

Rows = list[dict[str, Any]]
# what `snnc.evaluate.evaluate` must compute for every plot to be drawn: `eval --report`
# passes these, so the report a user asks for never skips the per-layer plots
EVALUATE_OPTIONS: dict[str, Any] = {"per_layer": True}
_HIDDEN_SETTINGS = ("pipeline", "source", "timesteps")


class _Skip(Exception):
    """A plot that cannot be drawn from this report; the message says why."""


def _figure(ncols: int = 1) -> tuple[Any, list[Any]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("--report needs matplotlib: pip install matplotlib "
                         "(or pip install 'snnc[report]'; `make install` installs it)") from None
    fig = Figure(figsize=(6.4 * ncols, 4.2), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _label(settings: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(settings.items()) if k not in _HIDDEN_SETTINGS]
    return ", ".join(parts) or "snn"


def method_sets(report: dict[str, Any]) -> list[tuple[str, Rows]]:
    """(name, snn rows) per method set: `report["methods"]` (a dict by name, or a list of
    dicts with a name or settings) or else the single `report["snn"]`."""
    methods = report.get("methods")
    if isinstance(methods, dict):
        items = [(str(name), m) for name, m in methods.items()]
    elif isinstance(methods, list):
        items = [(str(m.get("name") or m.get("method") or m.get("label")
                      or _label(m.get("settings", {})) or f"method {k + 1}"), m)
                 for k, m in enumerate(methods) if isinstance(m, dict)]
    else:  # one method: its settings are in the table; the legend stays short
        preset = (report.get("settings") or {}).get("preset")
        return [(f"SNN ({preset})" if preset else "SNN", list(report.get("snn", [])))]
    return [(name, list(m if isinstance(m, list) else m.get("snn", []))) for name, m in items]


def _legend(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, [textwrap.fill(label, 40) for label in labels], fontsize="small")


def _series(rows: Rows, key: str) -> tuple[list[int], list[float]]:
    pairs = sorted((r["timesteps"], r[key]) for r in rows if r.get(key) is not None)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _log2_time_axis(ax: Any) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.grid(True, alpha=0.3)


def _plot_accuracy(report: dict[str, Any]) -> Any:
    sets = [(name, _series(rows, "accuracy")) for name, rows in method_sets(report)]
    if not any(ts for _, (ts, _) in sets):
        raise _Skip("no SNN accuracy rows (snn[].timesteps, snn[].accuracy)")
    fig, (ax,) = _figure()
    if report.get("ann_accuracy") is not None:
        ax.axhline(100 * report["ann_accuracy"], color="black", linestyle="--",
                   label=f"ANN {100 * report['ann_accuracy']:.2f}%")
    for name, (ts, acc) in sets:
        ax.plot(ts, [100 * a for a in acc], marker="o", label=name)
    _log2_time_axis(ax)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs time steps")
    _legend(ax)
    return fig


def _layer_groups(report: dict[str, Any], key: str) -> dict[str, tuple[list[str], list[float]]]:
    """Per-layer values of `key`, one series per (method,) T, layers in report order."""
    groups: dict[str, tuple[list[str], list[float]]] = {}
    for row in report.get("per_layer") or []:
        if row.get(key) is None or "layer" not in row:
            continue
        name = f"T={row['timesteps']}" if "timesteps" in row else "all"
        if row.get("method"):
            name = f"{row['method']}, {name}"
        layers, values = groups.setdefault(name, ([], []))
        layers.append(str(row["layer"]))
        values.append(float(row[key]))
    return groups


def _plot_per_layer(report: dict[str, Any], key: str, ylabel: str, title: str) -> Any:
    groups = _layer_groups(report, key)
    if not groups:
        raise _Skip(f"no per-layer data (per_layer[].{key})")
    fig, (ax,) = _figure()
    order = list(dict.fromkeys(layer for layers, _ in groups.values() for layer in layers))
    for name, (layers, values) in groups.items():
        ax.plot([order.index(layer) for layer in layers], values, marker="o", label=name)
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize="small")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig


def _plot_activity(report: dict[str, Any]) -> Any:
    sets = method_sets(report)
    panels = [(key, label) for key, label in (("spikes_per_sample", "spikes per sample"),
                                              ("sops_per_sample", "synaptic ops per sample"))
              if any(_series(rows, key)[0] for _, rows in sets)]
    if not panels:
        raise _Skip("no spike or SOP counts (snn[].spikes_per_sample, snn[].sops_per_sample)")
    fig, axes = _figure(len(panels))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, rows in sets:
            ax.plot(*_series(rows, key), marker="o", label=name)
        _log2_time_axis(ax)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.set_title(f"{label[0].upper()}{label[1:]} vs time steps")
        _legend(ax)
    return fig


PLOTS: list[tuple[str, str, Callable[[dict[str, Any]], Any]]] = [
    ("accuracy.png", "Accuracy vs time steps", _plot_accuracy),
    ("firing_rate.png", "Firing rate per layer", lambda r: _plot_per_layer(
        r, "rate", "spikes per neuron per step", "Firing rate per layer")),
    ("conversion_error.png", "Conversion error per layer", lambda r: _plot_per_layer(
        r, "error", "relative error vs ANN activation", "Conversion error per layer")),
    ("spikes_sops.png", "Spikes and synaptic operations vs time steps", _plot_activity),
]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _accuracy_tables(report: dict[str, Any]) -> str:
    ann = report.get("ann_accuracy")
    extra = [(k, h) for k, h in (("sops_per_sample", "SOPs/sample"),
                                 ("energy_ratio", "energy vs ANN"))
             if any(k in r for _, rows in method_sets(report) for r in rows)]
    parts = []
    for name, rows in method_sets(report):
        table = [[r.get("timesteps"), f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else "",
                  f"{100 * (r['accuracy'] - ann):+.2f}" if ann is not None and "accuracy" in r
                  else "", r.get("spikes_per_sample", "")] + [r.get(k, "") for k, _ in extra]
                 for r in sorted(rows, key=lambda r: r.get("timesteps", 0))]
        parts.append(f"<h3>{html.escape(name)}</h3>" + _table(
            ["T", "SNN accuracy", "vs ANN (points)", "spikes/sample", *[h for _, h in extra]],
            table))
    return "".join(parts)


def _layer_table(report: dict[str, Any]) -> str:
    rows = report.get("per_layer") or []
    if not rows:
        return "<p class=note>No per-layer data in this report.</p>"
    keys = [k for k in ("method", "layer", "timesteps", "rate", "error", "saturated", "silent")
            if any(k in r for r in rows)]
    return _table(keys, [[r.get(k, "") for k in keys] for r in rows])


_STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:.2em .6em;text-align:right}th{background:#eee}img{max-width:100%}
.note{color:#a33}"""


def render_html(report: dict[str, Any], images: dict[str, bytes | str]) -> str:
    """The page: title, summary, each plot (PNG bytes, or a note why it is missing), tables."""
    title = f"snnc eval: {report.get('model', '?')} on {report.get('data', '?')}"
    ann = report.get("ann_accuracy")
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p>{report.get('samples', '?')} samples; ANN accuracy (onnxruntime): "
           + (f"{100 * ann:.2f}%" if ann is not None else "not measured") + "</p>"]
    for (file, caption, _), image in zip(PLOTS, images.values(), strict=True):
        out.append(f"<h2>{html.escape(caption)}</h2>")
        if isinstance(image, bytes):
            data = base64.b64encode(image).decode("ascii")
            out.append(f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>")
        else:
            out.append(f"<p class=note>Plot skipped ({html.escape(file)}): "
                       f"{html.escape(image)}</p>")
    out.append("<h2>Accuracy and activity per T</h2>" + _accuracy_tables(report))
    out.append("<h2>Per layer</h2>" + _layer_table(report))
    settings = report.get("settings") or {}
    out.append("<h2>Settings</h2>" + _table(["setting", "value"], sorted(
        (k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in settings.items())))
    return "\n".join(out) + "\n</body></html>\n"


def _directory(directory: str | os.PathLike[str]) -> Path:
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--report {path}: a file is in the way; name a folder") from None
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot create the folder "
                         f"({exc.strerror or exc}); choose another place") from None
    return path


def write_report(report: dict[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write the PNG plots and report.html into `directory`; returns the HTML's path."""
    path = _directory(directory)
    images: dict[str, bytes | str] = {}
    for file, _, plot in PLOTS:
        try:
            images[file] = _png(plot(report))
        except _Skip as why:
            images[file] = str(why)
            continue
        atomic_write_bytes(path / file, images[file])  # type: ignore[arg-type]
    page = path / "report.html"
    atomic_write_text(page, render_html(report, images))
    return page
