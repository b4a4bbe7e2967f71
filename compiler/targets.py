"""The targets snnc compiles for, one entry each: what the target appends to the pipeline,
what it can hold, how its network is written and how it runs. The API, the CLI, the pass
manager and the runtime read this table and nothing else about targets; adding a target is
one entry here plus its backend.

The table is plain data: passes by name (compiler/passes/manager.py checks that they exist),
writers and runners as "module:function" strings resolved only when used (`resolve`), so the
compiler, the API, the CLI and the runtime all import it without importing a backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

# CompiledNetwork.write: (net, path) -> notes on what the file cannot express
_WRITERS = "snnc.runtime.writers"
# CompiledNetwork.simulate: (graph, x, timesteps, batch_size, progress, record, observe,
# engine, device) -> SimulationResult
_RUNNERS = "snnc.runtime.network"


@dataclass(frozen=True)
class Target:
    name: str
    summary: str  # its words in `--target`'s help
    passes: tuple[str, ...] = ()  # appended to the conversion pipeline
    writer: str = f"{_WRITERS}:write_artifact"  # the .snn artifact
    # passes the writer applies to a converted network that has not had them (for API
    # callers who write a network compiled for another target)
    writer_passes: tuple[str, ...] = ()
    suffix: str = ".snn"  # the output file's default suffix
    simulate: str = f"{_RUNNERS}:simulate_float"  # how the NumPy simulator runs it
    lava: str | None = None  # how Lava runs it (plan mode "float"/"fixed"); None: not at all
    # ------------------------------------------------------------------ capabilities
    neurons: str = "its neurons"  # how refusals name its neurons
    signed_neurons: bool = True  # negative spikes (--neuron signed)
    sigma_delta: bool = True  # --neuron sigma-delta (graded changes of each activation)
    max_spike_bits: int = 8  # graded spikes: counts up to 2^B - 1 per message (1: binary)
    per_channel_thresholds: bool = True  # one threshold per channel (else per layer)
    fixed_point: bool = False  # integer state, bit-exact with the chip (NumPy loihi mode)
    neurocores: bool = False  # lowered and mapped to Loihi 2 cores: checked right after import
    auto_neuron: str = "if"  # what --neuron auto (and a preset's signed) picks
    imports_nir: bool = False  # `snnc import NET.nir --target` compiles a NIR graph for it
    # a plain reader of the written file may predict otherwise: `agreement` (net, x) measures
    # how often it agrees; `reader` names that reader, `exact` says how to make them agree
    agreement: str | None = None
    reader: str = ""
    exact: str = ""


_LOIHI_PASSES = ("lower-synapses", "map-cores")

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("numpy", "numpy (default)", auto_neuron="signed", imports_nir=True),
    Target("lava", "lava", passes=_LOIHI_PASSES, lava="float", neurocores=True,
           imports_nir=True),
    Target("loihi", "loihi", passes=("lower-synapses", "quantize-weights", "map-cores"),
           simulate=f"{_RUNNERS}:simulate_fixed", lava="fixed", fixed_point=True,
           neurocores=True, imports_nir=True),
    Target("nir", "nir (a NIR graph file for other SNN tools)",
           writer=f"{_WRITERS}:write_nir", suffix=".nir", neurons="NIR's IF nodes",
           signed_neurons=False, sigma_delta=False, max_spike_bits=1,
           agreement="snnc.api:nir_agreement",
           reader="a reader that follows NIR (reset to zero, V(0) = 0)",
           exact="--preset nir compiles a network that NIR states exactly"),
    # .net: lava-dl's netx HDF5, holding the loihi pipeline's integers
    Target("netx", "netx (lava-dl's HDF5, .net)", writer=f"{_WRITERS}:write_netx",
           writer_passes=("lower-synapses", "quantize-weights"),
           suffix=".net", neurons="netx's CUBA neurons (one binary spike)",
           signed_neurons=False, max_spike_bits=1, per_channel_thresholds=False),
)}
DEFAULT_TARGET = "numpy"
# how CompiledNetwork.run runs a network: the NumPy simulator, or Lava (targets with `lava`)
RUN_BACKENDS = ("numpy", "lava")


def target(name: str) -> Target:
    """The entry for `name`, or the UsageError that lists the targets."""
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"--target '{name}' is not one of: {', '.join(TARGETS)}") from None


def having(capability: Callable[[Target], Any]) -> tuple[str, ...]:
    """The names of the targets with `capability`, e.g. having(lambda t: t.signed_neurons)."""
    return tuple(name for name, t in TARGETS.items() if capability(t))


def words(names: tuple[str, ...], flag: str = "--target ") -> str:
    """'--target numpy, lava or loihi'."""
    head, last = names[:-1], names[-1]
    return flag + (f"{', '.join(head)} or {last}" if head else last)


def resolve(ref: str) -> Callable[..., Any]:
    """The function a "module:function" string names, imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
