"""The Python API: `snnc.compile(...)` and `snnc.load(...)`.

    net = snnc.compile("model.onnx", calib=x_calib, timesteps=32)
    result = net.run(x_test)           # RunResult: outputs, predictions, spikes
    net.save("model.snn"); net = snnc.load("model.snn")
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from snnc.backends.numpy import simulate
from snnc.backends.numpy.simulator import DEFAULT_ENGINE, ENGINES
from snnc.compiler.errors import DataError, UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.feasibility import check_feasible
from snnc.compiler.loihi.map_cores import CoreLimits
from snnc.compiler.passes import DEFAULT_PIPELINE, DumpSpec, NormSpec, PassOptions, run_pipeline
from snnc.compiler.passes.convert import NEURONS, check_spike_bits
from snnc.compiler.passes.manager import (
    FOLD_BATCHNORM,
    LOWER_MAXPOOL,
    NORMALIZE_THRESHOLDS,
    SIGMA_DELTA_PIPELINE,
    SPIKE_OUTPUT,
    TREE_THRESHOLDS,
    check_pipeline,
    split_pipeline,
    target_passes,
)
from snnc.compiler.passes.recognise_activations import recognise_activations
from snnc.compiler.targets import DEFAULT_TARGET, TARGETS, Target, having, words
from snnc.compiler.targets import target as check_target
from snnc.compiler.tuning import TuningCache, choose, norm_candidates
from snnc.frontends.onnx import load_onnx
from snnc.presets import DEFAULT_PRESET, PRESETS, preset_options
from snnc.runtime import CompiledNetwork, load, load_data

# every target, what it appends to the pipeline and what it can hold: compiler/targets.py
# max pooling as ReLU tournaments (compiler/passes/lower_maxpool.py: what chip neurons
# compute; the default for sigma-delta) or snnc's spiking max pool (a host process on Lava)
MAXPOOL_MODES = ("relu", "spiking")
DECODINGS = ("potential", "spikes")  # the output: the last layer's potential, or its spikes


def _calib_array(calib: np.ndarray | str | os.PathLike[str] | None) -> np.ndarray | None:
    if calib is None or isinstance(calib, np.ndarray):
        return calib
    return load_data(calib)[0]


def compile(  # noqa: A001 - the public name users expect
    model: str | os.PathLike[str] | Graph,
    *,
    target: str = DEFAULT_TARGET,
    calib: np.ndarray | str | os.PathLike[str] | None = None,
    timesteps: int = 32,
    preset: str = DEFAULT_PRESET,
    norm: str | NormSpec | None = None,
    per_channel: bool = False,
    shift: str | None = None,
    neuron: str | None = None,
    calibrate: str | None = None,
    decode: str = "potential",
    maxpool: str | None = None,
    input_shape: Sequence[int] | None = None,
    pipeline: Sequence[str] = DEFAULT_PIPELINE,
    dump_ir: str | None = None,
    dump_dir: str | os.PathLike[str] | None = None,
    dump_format: str = "text",
    progress: Any = None,
    engine: str = DEFAULT_ENGINE,
    device: str | None = None,
    max_chips: int | None = None,
    core_limits: CoreLimits | None = None,
    spike_bits: int = 1,
    max_spike_bits: int | None = None,
    cache: TuningCache | None = None,
) -> CompiledNetwork:
    """Compile an ONNX model (or an imported IR graph) into a spiking network for `timesteps`
    steps, with the conversion methods of `preset` (see snnc.presets), each of which an
    explicit argument overrides. `progress(n)` is told of every tuning candidate scored and
    every layer calibrated; `engine` is the simulator engine those simulations run on (and
    `device` the torch engine's: cpu, cuda, cuda:N).
    `max_chips` bounds the Loihi 2 chips the lava/loihi network may need (`core_limits`:
    every per-core and per-chip limit, compiler/loihi/map_cores.py).
    `spike_bits` B > 1 makes graded neurons (up to 2^B - 1 counts per message; numpy, lava
    and loihi targets); `max_spike_bits` M > B lets tuning pick B in B..M on the calibration
    data.
    `cache` (compiler.tuning.TuningCache) shares tuning work between compiles of the same
    model (path or Graph object) and calibration array, e.g. for several T (`snnc eval`)."""
    entry = check_target(target)
    if engine not in ENGINES:
        raise UsageError(f"--engine '{engine}' is not one of: {', '.join(ENGINES)}")
    if int(timesteps) < 1:
        raise UsageError(f"--timesteps must be a positive integer, got {timesteps}")
    chosen = preset_options(preset, {"norm": norm, "shift": shift, "neuron": neuron,
                                     "calibrate": calibrate})
    norm = chosen["norm"]
    spec = norm if isinstance(norm, NormSpec) else NormSpec.parse(norm, per_channel)
    dump = None
    if dump_ir:
        if dump_dir is None:
            raise UsageError("--dump-ir needs --dump-dir DIR (where to write the dumps)")
        dump = DumpSpec.parse(dump_ir, dump_dir, dump_format)
    shape = tuple(input_shape) if input_shape else None
    cache = cache if cache is not None else TuningCache()
    graph = model if isinstance(model, Graph) else cache.memo(
        ("import", str(Path(model).resolve()), shape), lambda: load_onnx(model, shape))
    if decode not in DECODINGS:
        raise UsageError(f"--decode '{decode}' is not one of: {', '.join(DECODINGS)}")
    calib_x = _calib_array(calib)
    method = chosen["calibrate"]
    if calib_x is None and calibrate is None:
        method = "none"  # a preset's calibration needs data; trained thresholds need none
    shift, picked = chosen["shift"], chosen.get("neuron", "if")
    pipeline = tuple(pipeline)
    if picked == "sigma-delta":  # settles to the ANN: nothing to shift or calibrate for T
        spec, shift, method, pipeline = _sigma_delta_options(spec, shift, calibrate, pipeline)
    if picked == "auto" or (picked == "signed" and neuron is None):
        picked = entry.auto_neuron  # a preset's signed: where it runs
    neuron = picked
    _check_neuron(entry, neuron)
    bits, max_bits = _spike_bits(spike_bits, max_spike_bits, neuron)
    if max_bits > entry.max_spike_bits:
        flag = f"--spike-bits {bits}" if bits > 1 else f"--max-spike-bits {max_bits}"
        raise UsageError(f"{flag}: graded spikes carry a count in each message, which "
                         f"--target {target} cannot express (its neurons send binary "
                         f"spikes); use {words(having(lambda t: t.max_spike_bits > 1))} "
                         "(or --spike-bits 1)")
    limits = core_limits
    if max_chips is not None:
        if int(max_chips) < 1:
            raise UsageError(f"--max-chips must be a positive integer, got {max_chips}")
        limits = replace(limits or CoreLimits(), max_chips=int(max_chips))
    options = PassOptions(calib=calib_x, norm=spec, shift=shift, timesteps=int(timesteps),
                          neuron=neuron, spike_bits=bits, calibrate=method,
                          simulator=_simulator(engine, device),
                          progress=progress, core_limits=limits)
    if entry.neurocores:  # refuse in seconds what the Loihi passes would refuse
        check_feasible(graph, calib_x, neuron, limits)
    # stock LIFs on lava/loihi: ReLU trees too, since a spiking max pool is a host process
    # (tree-thresholds makes them about as accurate, README; --maxpool spiking keeps it)
    chip_lif = neuron == "lif" and entry.neurocores
    pool = maxpool or ("relu" if neuron == "sigma-delta" or chip_lif else "spiking")
    if pool not in MAXPOOL_MODES:
        raise UsageError(f"--maxpool '{maxpool}' is not one of: {', '.join(MAXPOOL_MODES)}")
    if pool == "relu" and LOWER_MAXPOOL not in pipeline:  # ReLU trees, before the thresholds
        k = pipeline.index(FOLD_BATCHNORM) + 1 if FOLD_BATCHNORM in pipeline else 0
        pipeline = (*pipeline[:k], LOWER_MAXPOOL, *pipeline[k:])
        if neuron != "sigma-delta" and NORMALIZE_THRESHOLDS in pipeline:  # rate-coded trees
            k = pipeline.index(NORMALIZE_THRESHOLDS) + 1
            pipeline = (*pipeline[:k], TREE_THRESHOLDS, *pipeline[k:])
    if decode == "spikes":
        pipeline = (SPIKE_OUTPUT, *pipeline)
    extra = target_passes(target)  # lava/loihi: synapses, quantization, cores
    check_pipeline(graph, (*pipeline, *extra))  # out of order: refused before tuning
    tried: list[dict[str, Any]] = []
    note = ""
    tuned = None
    if spec.method == "auto" or method == "auto" or max_bits > bits:  # on the float network
        # histograms shared by the candidates; calibration's outputs scored without a rerun
        options = replace(options, stats=cache.stats, on_calibrated=cache.record_outputs)
        # netx holds one threshold per layer (lava-dl's CUBA neurons)
        options, tried, note, tuned = _tune(graph, pipeline, options,
                                            per_channel=entry.per_channel_thresholds,
                                            max_spike_bits=max_bits, cache=cache)
    pipeline += extra
    if tuned is not None and dump is None:  # the winner is compiled already: the same graph
        snn = run_pipeline(tuned, extra, options)
    else:
        snn = run_pipeline(graph, pipeline, options, dump)
    settings: dict[str, Any] = {
        "timesteps": int(timesteps), "preset": preset, "norm": str(options.norm),
        "shift": shift, "neuron": neuron, "calibrate": options.calibrate, "decode": decode,
        "engine": engine,
        **({"device": device} if device is not None else {}),
        # lowered max pools only: other artifacts stay byte-identical
        **({"maxpool": pool} if pool != "spiking" else {}),
        "pipeline": list(pipeline),
        # graded spikes only: a binary network's settings (and artifact) stay as they were
        **({"spike_bits": options.spike_bits} if max_bits > 1 else {}),
        **({"max_spike_bits": max_bits} if max_bits > bits else {}),
        "source": Path(model).name if not isinstance(model, Graph) else graph.meta.get("name"),
    }
    if tried:
        settings["tuned"] = tried  # chosen for this T on the calibration data
    if note:
        settings["tuning_note"] = note  # what the compute budget changed
    return CompiledNetwork(snn, target, settings)


def _check_neuron(entry: Target, neuron: str) -> None:
    """The refusals of neurons the target cannot hold (compiler/targets.py)."""
    held = tuple(n for n in NEURONS if (n != "signed" or entry.signed_neurons)
                 and (n != "sigma-delta" or entry.sigma_delta))
    # neuron -> (the Target capability it needs, what it sends that the target must hold)
    needs = {"signed": ("signed_neurons", "emits negative spikes"),  # lava/loihi: payloads
             "sigma-delta": ("sigma_delta", "sends graded changes of each activation")}
    if neuron in needs and not getattr(entry, needs[neuron][0]):
        capability, sends = needs[neuron]
        raise UsageError(f"--neuron {neuron} {sends}, which {entry.neurons} cannot hold; "
                         f"--target {entry.name} supports {words(held, '--neuron ')} (use "
                         f"{words(having(lambda t: getattr(t, capability)))} for {neuron})")


def _sigma_delta_options(spec: NormSpec, shift: str, calibrate: str | None,
                         pipeline: tuple[str, ...]
                         ) -> tuple[NormSpec, str, str, tuple[str, ...]]:
    """Norm, shift, calibration and pipeline of a sigma-delta compile: per-layer scales (Lava's
    SigmaDelta holds one vth), no half-step shift, no calibration for T; delta thresholds
    chosen on the calibration data instead."""
    if calibrate not in (None, "none") or shift not in ("none", "v0"):
        raise UsageError(f"--neuron sigma-delta: --calibrate {calibrate} / --shift {shift} tune "
                         "IF neurons for T; a sigma-delta network settles to the ANN and takes "
                         "neither (its delta thresholds are chosen on --calib data)")
    if spec.method == "auto":
        spec = NormSpec.parse(PRESETS["sigma-delta"]["norm"], False)
    if pipeline == DEFAULT_PIPELINE:
        pipeline = SIGMA_DELTA_PIPELINE
    return spec, "none", "none", pipeline


def _simulator(engine: str, device: str | None) -> Any:
    """simulate() on `engine`, carrying how to measure its throughput (compiler/cost.py
    scales tuning's and calibration's compute budget to it; the CPU engines are the
    baseline)."""
    sim = functools.partial(simulate, engine=engine, device=device)
    if engine == "torch":
        from snnc.backends import torch as torch_engine

        torch_engine.check_device(device)  # refused now, not after importing the model
        sim.macs_per_second = functools.partial(torch_engine.throughput, device)
    elif device not in (None, "cpu"):
        raise UsageError(f"--device {device}: the {engine} engine runs on the CPU; "
                         "--engine torch runs on CUDA devices")
    return sim


def _spike_bits(bits: int, max_bits: int | None, neuron: str) -> tuple[int, int]:
    """B and M (M = B unless given: no search), checked."""
    bits = check_spike_bits(bits, neuron)
    if max_bits is None:
        return bits, bits
    max_bits = check_spike_bits(max_bits, neuron, "--max-spike-bits")
    if max_bits < bits:
        raise UsageError(f"--max-spike-bits {max_bits} is below --spike-bits {bits}: tuning "
                         "chooses B in spike-bits..max-spike-bits")
    return bits, max_bits


def _tune(graph: Graph, pipeline: tuple[str, ...], options: PassOptions,
          per_channel: bool = True, max_spike_bits: int | None = None,
          cache: TuningCache | None = None
          ) -> tuple[PassOptions, list[dict[str, Any]], str, Graph | None]:
    """Resolve --norm auto / --calibrate auto / --max-spike-bits by simulating the candidates
    (compiler.tuning); also the winner's graph out of `pipeline` (None if none was compiled).
    The option-free passes at the head of the pipeline run once for all candidates."""
    cache = cache if cache is not None else TuningCache()
    auto_norm = options.norm.method == "auto"
    max_bits = max_spike_bits or options.spike_bits
    if options.calib is None or len(options.calib) == 0:
        if max_bits > options.spike_bits:
            raise DataError(f"--max-spike-bits {max_bits} chooses the spike bits by "
                            "simulating on calibration data: pass --calib CALIB.npz (or "
                            "give --spike-bits B alone)")
        if auto_norm and _needs_data(graph):
            raise DataError("--norm auto chooses thresholds on calibration data: pass --calib "
                            "CALIB.npz (or train with Clip activations)")
        fallback = NormSpec() if auto_norm else options.norm
        return replace(options, norm=fallback, calibrate="none"), [], "", None
    recognised = recognise_activations(graph)  # QCFS chains count as trained activations
    norms = norm_candidates(_needs_data(recognised), _has_trained(recognised), per_channel)
    head, tail = split_pipeline(pipeline)
    prepared = cache.memo(("prepared", graph, head), lambda: run_pipeline(graph, head, options))
    choice = choose(graph, options, lambda o: run_pipeline(prepared, tail, o),
                    options.calib, int(options.timesteps), options.simulator, auto_norm,
                    options.calibrate == "auto", norms, options.progress,
                    max_spike_bits=max_bits, cache=cache)
    tried = [{"candidate": name, "agreement": s.agreement, "error": s.error,
              "samples": s.samples, **({"stopped": True} if s.stopped else {})}
             for name, s in choice.tried]
    return choice.options, tried, choice.note, choice.graph


def load_nir(path: str | os.PathLike[str] | Any, *, target: str = DEFAULT_TARGET,
             timesteps: int = 32, reset: str | None = None, metadata: bool = True,
             dt: float = 1e-4) -> CompiledNetwork:
    """A NIR graph written by another tool (a path or nir.NIRGraph) as a compiled network for
    `target` (numpy, lava or loihi: the Loihi passes run on it as on a compiled ONNX model).
    `reset="subtract"` reads every IF as resetting by subtraction (Sinabs' IAF), `metadata`
    honours snnc's own (reset, v_initial), `dt` reads LIF time constants
    (frontends/nir/importer.py)."""
    from snnc.frontends.nir import from_nir

    importable = having(lambda t: t.imports_nir)
    if target not in importable:
        raise UsageError(f"--target {target}: a NIR graph compiles for "
                         f"{words(importable, '')}")
    graph = from_nir(path, reset=reset, metadata=metadata, dt=dt)
    neuron = "lif" if all(n.attrs.get("reset") == "zero" for n in graph if n.op == "if") \
        else "if"
    extra = target_passes(target)  # lava/loihi: synapses, quantization, cores
    if extra:
        graph = run_pipeline(graph, extra, PassOptions(timesteps=int(timesteps), neuron=neuron))
    source = Path(path).name if isinstance(path, (str, os.PathLike)) else "nir"
    return CompiledNetwork(graph, target, {"timesteps": int(timesteps), "preset": "nir-import",
                                           "neuron": neuron, "source": source})


def nir_agreement(net: CompiledNetwork, x: np.ndarray, timesteps: int | None = None) -> float:
    """The share of samples `x` on which a reader that follows NIR's own semantics (reset to
    zero, V(0) = 0, no metadata) predicts what `net` predicts: the cost of what NIR cannot
    state (backends/nir/export.py)."""
    from snnc.backends.nir import to_nir
    from snnc.frontends.nir import from_nir

    steps = timesteps or net.default_timesteps
    plain = CompiledNetwork(from_nir(to_nir(net.graph), metadata=False))
    return float((plain.run(x, steps).predictions == net.run(x, steps).predictions).mean())


def _has_trained(graph: Graph) -> bool:
    return any(n.op == "qclip" or (n.op == "clip" and n.attrs.get("max") is not None)
               for n in graph.nodes)


def _needs_data(graph: Graph) -> bool:
    return any(n.op == "relu" or (n.op == "clip" and n.attrs.get("max") is None)
               for n in graph.nodes)


__all__ = ["TARGETS", "compile", "load", "load_nir", "nir_agreement"]
