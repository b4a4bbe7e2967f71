"""The torch backend: the spiking simulator's `torch` engine, on the CPU or a CUDA device.

torch is optional (`pip install 'snnc[torch]'`): nothing here imports it until the engine runs,
and without it the engine says what to install. The numpy simulator checks a run's inputs and
dispatches here (backends/numpy/simulator.py: PLUGIN_ENGINES); this package imports no other
backend: it returns plain arrays, which the simulator wraps in its SimulationResult.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from snnc.compiler.errors import UsageError

INSTALL = "pip install 'snnc[torch]' (or pip install torch)"


def require_torch() -> None:
    """A UsageError saying what to install, where torch is missing."""
    if importlib.util.find_spec("torch") is None:
        raise UsageError(f"--engine torch needs PyTorch, which is not installed: {INSTALL}")


def simulate(*args: Any, **kwargs: Any) -> Any:
    """engine.simulate (see there), importing torch only now."""
    require_torch()
    from .engine import simulate as run

    return run(*args, **kwargs)


def chunk_size(graph: Any, n: int, batch_size: int = 256, device: str | None = None,
               needed: Any = None) -> int:
    """Samples per chunk of a run on n samples (engine.chunk_size)."""
    require_torch()
    from .engine import chunk_size as size

    return size(graph, n, batch_size, device, needed)


def check_device(device: str | None) -> str:
    """The device torch will run on ("cpu", "cuda:0", ...), or a UsageError saying why not."""
    require_torch()
    from .engine import resolve_device

    return str(resolve_device(device))


def throughput(device: str | None = None) -> float:
    """Multiply-adds per second this engine sustains on `device` (probe.py; measured once)."""
    require_torch()
    from .probe import throughput as measure

    return measure(device)


__all__ = ["INSTALL", "check_device", "chunk_size", "require_torch", "simulate", "throughput"]
