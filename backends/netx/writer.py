"""Writing a netx file: CUBA layers (export.py) or, for sigma-delta networks, SDNN layers
(sdnn.py), written whole or not at all."""

from __future__ import annotations

import os

from snnc.compiler.fileio import atomic_path
from snnc.compiler.ir.graph import Graph

from .export import _h5py, _write, to_netx
from .sdnn import is_sigma_delta, to_sdnn


def write_netx(graph: Graph, path: str | os.PathLike[str]) -> list[str]:
    """Write the netx file; returns the notes on what netx cannot express."""
    h5py = _h5py()
    net = to_sdnn(graph) if is_sigma_delta(graph) else to_netx(graph)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:  # h5py wants a file name
        _write(f, net)
    return net.notes
