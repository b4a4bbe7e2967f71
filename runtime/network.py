"""A compiled spiking network: run it, save it, load it (without the original ONNX)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snnc.backends.numpy import SimulationResult, simulate
from snnc.backends.numpy.simulator import DEFAULT_ENGINE, Observer
from snnc.compiler.errors import UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.targets import DEFAULT_TARGET, RUN_BACKENDS, resolve
from snnc.compiler.targets import target as target_entry

from . import artifact
from .results import RunResult


@dataclass
class CompiledNetwork:
    graph: Graph
    target: str = DEFAULT_TARGET
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def default_timesteps(self) -> int:
        return int(self.options.get("timesteps", 32))

    def simulate(self, x: np.ndarray, timesteps: Sequence[int], batch_size: int = 256,
                 progress: Any = None, record: Sequence[str] = (),
                 observe: Observer | None = None, engine: str = DEFAULT_ENGINE,
                 device: str | None = None) -> SimulationResult:
        """Outputs at several T in one run (each checkpoint is a prefix of the same run).
        A `loihi` network runs in the NumPy simulator's bit-exact fixed-point mode.
        `observe` sees per-neuron spike counts of the `record`ed layers (float mode).
        engine: "reference" (numpy), "fast" (compiled kernels) or "torch" (on `device`: cpu,
        cuda, cuda:N); float networks only, a `loihi` network always runs in its fixed-point
        mode."""
        run = resolve(target_entry(self.target).simulate)  # compiler/targets.py
        result: SimulationResult = run(self.graph, x, timesteps, batch_size, progress, record,
                                       observe, engine, device)
        return result

    def run(self, x: np.ndarray, timesteps: int | None = None, batch_size: int = 256,
            progress: Any = None, backend: str = "numpy", engine: str = DEFAULT_ENGINE,
            device: str | None = None) -> RunResult:
        """Run on the NumPy simulator, or (backend='lava') in Lava's CPU simulation."""
        t = self.default_timesteps if timesteps is None else int(timesteps)
        if t < 1:
            raise UsageError(f"--timesteps must be a positive integer, got {t}")
        if backend not in RUN_BACKENDS:
            raise UsageError(f"--backend '{backend}' is not one of: {', '.join(RUN_BACKENDS)}")
        if backend == "lava":  # Lava's mode comes from the target (lava_run.py)
            from .lava_run import run_in_lava

            return run_in_lava(self, x, t, progress)
        result = self.simulate(x, [t], batch_size, progress, engine=engine, device=device)
        return RunResult(t, result.outputs[0], {k: v[0] for k, v in result.spikes.items()},
                         {k: v[0] for k, v in result.payload.items()})

    def save(self, path: str | os.PathLike[str]) -> None:
        artifact.save(path, self.graph, self.target, self.options)

    def write(self, path: str | os.PathLike[str]) -> list[str]:
        """The target's file (an .snn artifact, or another tool's format: compiler/targets.py);
        returns the notes on what that format cannot express."""
        return list(resolve(target_entry(self.target).writer)(self, path))


# the NumPy runners compiler/targets.py names: a float network, or a fixed-point one bit-exact
def simulate_float(graph: Graph, x: np.ndarray, timesteps: Sequence[int], batch_size: int,
                   progress: Any, record: Sequence[str], observe: Observer | None,
                   engine: str, device: str | None) -> SimulationResult:
    return simulate(graph, x, timesteps, batch_size, progress, record, observe, engine,
                    device=device)


def simulate_fixed(graph: Graph, x: np.ndarray, timesteps: Sequence[int], batch_size: int,
                   progress: Any, record: Sequence[str], observe: Observer | None,
                   engine: str, device: str | None) -> SimulationResult:
    """The NumPy loihi mode (engine and device do not apply: integer arithmetic)."""
    from snnc.backends.numpy.loihi import simulate_loihi

    if record:
        raise UsageError("per-layer recording runs in the float simulator; compile "
                         "with --target numpy to inspect layers")
    # chunked inside (bounded memory for any batch); no rasters: only counts and outputs
    r = simulate_loihi(graph, x, timesteps, batch_size, progress, rasters=False)
    return SimulationResult(r.timesteps, r.outputs, r.spikes, r.payload)


def load(path: str | os.PathLike[str]) -> CompiledNetwork:
    graph, target, options = artifact.load(path)
    return CompiledNetwork(graph, target, options)
