"""snnc: compile trained ONNX CNNs into spiking neural networks.

    import snnc
    net = snnc.compile("model.onnx", calib="calib.npz", timesteps=32)
    result = net.run(x, timesteps=32)
    net.save("model.snn")
    net = snnc.load("model.snn")

The API is imported on first use (PEP 562), so importing one part of snnc (the IR, a pass)
does not load the frontend, the simulator and the backends too.
"""

from __future__ import annotations

import importlib
from typing import Any

from snnc.version import __version__

__all__ = ["__version__", "compile", "load", "load_nir"]
_API = ("compile", "load", "load_nir")


def __getattr__(name: str) -> Any:
    if name in _API:
        from snnc import api

        return getattr(api, name)
    try:  # a subpackage or module (snnc.api, snnc.compiler, ...), as an eager import gave
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module 'snnc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
