"""`snnc inspect NET.snn --layers`: one row per layer of a compiled network, with totals; as a
text table or (`--format json`) as {"layers": [row, ...], "total": row}. On a loihi artifact
the populations carry their weight bits, weight exponent (quantize-weights) and neurocores
(map-cores)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from snnc.compiler.cost import synapses
from snnc.compiler.ir.graph import Graph
from snnc.compiler.ops.registry import fmt_array

COLUMNS = ("layer", "op", "shape", "neurons", "synapses", "theta", "v0", "weight_bits",
           "weight_exp", "cores")
HEADERS = {"weight_bits": "w bits", "weight_exp": "w exp"}


def layer_rows(graph: Graph) -> list[dict[str, Any]]:
    rows = []
    for node in graph.nodes:
        if node.op in ("input", "flatten", "reshape"):
            continue
        meta = node.meta
        rows.append({
            "layer": node.name, "op": node.op, "shape": "x".join(map(str, node.shape)),
            "neurons": int(np.prod(node.shape)) if node.op == "if" else 0,
            "synapses": synapses(node),
            "theta": fmt_array(node.params["theta"]) if "theta" in node.params else "",
            "v0": fmt_array(node.params["v0"]) if "v0" in node.params else "",
            "weight_bits": meta.get("weight_bits", ""), "weight_exp": meta.get("weight_exp", ""),
            "cores": meta.get("cores", ""),
        })
    return rows


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {c: "" for c in COLUMNS}
    total.update(layer="total", neurons=sum(r["neurons"] for r in rows),
                 synapses=sum(r["synapses"] for r in rows))
    cores = [r["cores"] for r in rows if isinstance(r["cores"], (int, float))]
    if cores:
        total["cores"] = sum(cores)
    return total


def layers_json(graph: Graph) -> str:
    rows = layer_rows(graph)
    return json.dumps({"layers": rows, "total": _total(rows)}, indent=1) + "\n"


def format_layers(graph: Graph) -> str:
    rows = layer_rows(graph)
    total = _total(rows)
    table = [[HEADERS.get(c, c) for c in COLUMNS]] + [[str(r[c]) for c in COLUMNS]
                                                      for r in [*rows, total]]
    widths = [max(len(row[k]) for row in table) for k in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) if k >= 3 else cell.ljust(w)
                       for k, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in table]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"
