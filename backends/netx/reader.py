"""Reading a netx file back into the layers the writer wrote (export.Layer), as lava-dl's
NetDict sees them: datasets (with a layer's `type` a 1-element bytes array), its `neuron`
group, and the snnc_* attributes."""

from __future__ import annotations

import os
from typing import Any

from snnc.compiler.errors import InputFileError

from .export import Layer, NetxNetwork, _h5py


def _text(value: Any) -> str:
    value = value[()]
    if getattr(value, "shape", ()):
        value = value.reshape(-1)[0]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def read_netx(path: str | os.PathLike[str]) -> NetxNetwork:
    """The layers and file attributes of a netx HDF5 file (notes empty)."""
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise InputFileError(f"{path}: cannot read it as a netx HDF5 file ({e})") from None
    with f:
        if "layer" not in f:
            raise InputFileError(f"{path}: no /layer group: not a netx file")
        layers = []
        for i in range(len(f["layer"])):
            if str(i) not in f["layer"]:
                raise InputFileError(f"{path}: the layers are not numbered 0..n-1 "
                                     f"(no /layer/{i})")
            group = f["layer"][str(i)]
            if "type" not in group:
                raise InputFileError(f"{path}: /layer/{i} has no type")
            data = {k: group[k][()] for k in group if k not in ("type", "neuron")}
            neuron, kind = None, "CUBA"
            if "neuron" in group:
                g = group["neuron"]
                kind = _text(g["type"]) if "type" in g else "CUBA"
                neuron = {k: g[k][()] for k in g if k != "type"}
            layers.append(Layer(_text(group["type"]), data, neuron, dict(group.attrs), kind))
        return NetxNetwork(layers, dict(f.attrs), [])
