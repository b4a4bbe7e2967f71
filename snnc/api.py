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
from snnc.compiler.passes.manager import SPIKE_OUTPUT, TARGET_PASSES
from snnc.compiler.passes.recognise_activations import recognise_activations
from snnc.compiler.tuning import choose, norm_candidates
from snnc.frontends.onnx import load_onnx
from snnc.presets import DEFAULT_PRESET, preset_options
from snnc.runtime import CompiledNetwork, load, load_data

TARGETS = ("numpy", "lava", "loihi", "nir", "netx")
# targets written as a file of another tool's format, not as an .snn artifact
LOIHI_TARGETS = ("lava", "loihi")  # lowered to synapses and mapped to neurocores
EXPORT_SUFFIX = {"nir": ".nir", "netx": ".net"}  # .net: lava-dl's netx HDF5 files
_LATER: dict[str, str] = {}
DECODINGS = ("potential", "spikes")  # targets announced but not built yet (lava/loihi: issue #3)


class TargetUnavailableError(UsageError):
    """A target that this version of snnc cannot produce yet."""


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise UsageError(f"--target '{target}' is not one of: {', '.join(TARGETS)}")
    if target in _LATER:
        raise TargetUnavailableError(
            f"--target {target}: {_LATER[target]} is not available in snnc {_version()} yet "
            "(it arrives with the Lava/Loihi backend). Use --target numpy for now."
        )


def _version() -> str:
    from snnc import __version__

    return __version__


def _calib_array(calib: np.ndarray | str | os.PathLike[str] | None) -> np.ndarray | None:
    if calib is None or isinstance(calib, np.ndarray):
        return calib
    return load_data(calib)[0]


def compile(  # noqa: A001 - the public name users expect
    model: str | os.PathLike[str] | Graph,
    *,
    target: str = "numpy",
    calib: np.ndarray | str | os.PathLike[str] | None = None,
    timesteps: int = 32,
    preset: str = DEFAULT_PRESET,
    norm: str | NormSpec | None = None,
    per_channel: bool = False,
    shift: str | None = None,
    neuron: str | None = None,
    calibrate: str | None = None,
    decode: str = "potential",
    input_shape: Sequence[int] | None = None,
    pipeline: Sequence[str] = DEFAULT_PIPELINE,
    dump_ir: str | None = None,
    dump_dir: str | os.PathLike[str] | None = None,
    dump_format: str = "text",
    progress: Any = None,
    engine: str = DEFAULT_ENGINE,
    max_chips: int | None = None,
    core_limits: CoreLimits | None = None,
) -> CompiledNetwork:
    """Compile an ONNX model (or an imported IR graph) into a spiking network for `timesteps`
    steps, with the conversion methods of `preset` (see snnc.presets), each of which an
    explicit argument overrides. `progress(n)` is told of every tuning candidate scored and
    every layer calibrated; `engine` is the simulator engine those simulations run on.
    `max_chips` bounds the Loihi 2 chips the lava/loihi network may need (`core_limits`:
    every per-core and per-chip limit, compiler/loihi/map_cores.py)."""
    check_target(target)
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
    graph = model if isinstance(model, Graph) else load_onnx(
        model, tuple(input_shape) if input_shape else None)
    if decode not in DECODINGS:
        raise UsageError(f"--decode '{decode}' is not one of: {', '.join(DECODINGS)}")
    calib_x = _calib_array(calib)
    method = chosen["calibrate"]
    if calib_x is None and calibrate is None:
        method = "none"  # a preset's calibration needs data; trained thresholds need none
    shift, picked = chosen["shift"], chosen.get("neuron", "if")
    if picked == "auto" or (picked == "signed" and neuron is None):
        picked = "signed" if target == "numpy" else "if"  # a preset's signed: where it runs
    neuron = picked
    if neuron == "signed" and target in ("lava", "loihi", "netx"):
        raise UsageError(f"--neuron signed emits negative spikes, which need graded spikes "
                         f"that snnc's Lava processes do not model yet; --target {target} "
                         "supports --neuron if or lif (use --target numpy for signed)")
    limits = core_limits
    if max_chips is not None:
        if int(max_chips) < 1:
            raise UsageError(f"--max-chips must be a positive integer, got {max_chips}")
        limits = replace(limits or CoreLimits(), max_chips=int(max_chips))
    options = PassOptions(calib=calib_x, norm=spec, shift=shift, timesteps=int(timesteps),
                          neuron=neuron, calibrate=method,
                          simulator=functools.partial(simulate, engine=engine),
                          progress=progress, core_limits=limits)
    if target in LOIHI_TARGETS:  # refuse in seconds what the Loihi passes would refuse
        check_feasible(graph, calib_x, neuron, limits)
    pipeline = tuple(pipeline)
    if decode == "spikes":
        pipeline = (SPIKE_OUTPUT, *pipeline)
    tried: list[dict[str, Any]] = []
    note = ""
    if spec.method == "auto" or method == "auto":  # chosen on the float network
        # netx holds one threshold per layer (lava-dl's CUBA neurons)
        options, tried, note = _tune(graph, pipeline, options, per_channel=target != "netx")
    pipeline += TARGET_PASSES.get(target, ())  # lava/loihi: synapses, quantization
    snn = run_pipeline(graph, pipeline, options, dump)
    settings: dict[str, Any] = {
        "timesteps": int(timesteps), "preset": preset, "norm": str(options.norm),
        "shift": shift, "neuron": neuron, "calibrate": options.calibrate, "decode": decode,
        "engine": engine,
        "pipeline": list(pipeline),
        "source": Path(model).name if not isinstance(model, Graph) else graph.meta.get("name"),
    }
    if tried:
        settings["tuned"] = tried  # chosen for this T on the calibration data
    if note:
        settings["tuning_note"] = note  # what the compute budget changed
    return CompiledNetwork(snn, target, settings)


def _tune(graph: Graph, pipeline: tuple[str, ...], options: PassOptions,
          per_channel: bool = True) -> tuple[PassOptions, list[dict[str, Any]], str]:
    """Resolve --norm auto / --calibrate auto by simulating the candidates (compiler.tuning)."""
    auto_norm = options.norm.method == "auto"
    if options.calib is None or len(options.calib) == 0:
        if auto_norm and _needs_data(graph):
            raise DataError("--norm auto chooses thresholds on calibration data: pass --calib "
                            "CALIB.npz (or train with Clip activations)")
        fallback = NormSpec() if auto_norm else options.norm
        return replace(options, norm=fallback, calibrate="none"), [], ""
    recognised = recognise_activations(graph)  # QCFS chains count as trained activations
    norms = norm_candidates(_needs_data(recognised), _has_trained(recognised), per_channel)
    choice = choose(graph, options, lambda o: run_pipeline(graph, pipeline, o),
                    options.calib, int(options.timesteps), options.simulator, auto_norm,
                    options.calibrate == "auto", norms, options.progress)
    tried = [{"candidate": name, "agreement": s.agreement, "error": s.error}
             for name, s in choice.tried]
    return choice.options, tried, choice.note


def _has_trained(graph: Graph) -> bool:
    return any(n.op == "qclip" or (n.op == "clip" and n.attrs.get("max") is not None)
               for n in graph.nodes)


def _needs_data(graph: Graph) -> bool:
    return any(n.op == "relu" or (n.op == "clip" and n.attrs.get("max") is None)
               for n in graph.nodes)


__all__ = ["TARGETS", "compile", "load"]
