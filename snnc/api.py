"""The Python API: `snnc.compile(...)` and `snnc.load(...)`.

    net = snnc.compile("model.onnx", calib=x_calib, timesteps=32)
    result = net.run(x_test)           # RunResult: outputs, predictions, spikes
    net.save("model.snn"); net = snnc.load("model.snn")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snnc.compiler.errors import UsageError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.passes import DEFAULT_PIPELINE, DumpSpec, NormSpec, PassOptions, run_pipeline
from snnc.compiler.passes.manager import TARGET_PASSES
from snnc.frontends.onnx import load_onnx
from snnc.runtime import CompiledNetwork, load, load_data

TARGETS = ("numpy", "lava", "loihi", "nir")
# targets written as a file of another tool's format, not as an .snn artifact
EXPORT_SUFFIX = {"nir": ".nir"}
_LATER: dict[str, str] = {}  # targets announced but not built yet (lava/loihi: issue #3)


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
    norm: str | NormSpec = "percentile:99.99",
    per_channel: bool = False,
    shift: str = "v0",
    input_shape: Sequence[int] | None = None,
    pipeline: Sequence[str] = DEFAULT_PIPELINE,
    dump_ir: str | None = None,
    dump_dir: str | os.PathLike[str] | None = None,
    dump_format: str = "text",
) -> CompiledNetwork:
    """Compile an ONNX model (or an imported IR graph) into a spiking network."""
    check_target(target)
    if int(timesteps) < 1:
        raise UsageError(f"--timesteps must be a positive integer, got {timesteps}")
    spec = norm if isinstance(norm, NormSpec) else NormSpec.parse(norm, per_channel)
    dump = None
    if dump_ir:
        if dump_dir is None:
            raise UsageError("--dump-ir needs --dump-dir DIR (where to write the dumps)")
        dump = DumpSpec.parse(dump_ir, dump_dir, dump_format)
    graph = model if isinstance(model, Graph) else load_onnx(
        model, tuple(input_shape) if input_shape else None)
    options = PassOptions(calib=_calib_array(calib), norm=spec, shift=shift,
                          timesteps=int(timesteps))
    pipeline = tuple(pipeline) + TARGET_PASSES.get(target, ())  # lava/loihi: synapses, quantization
    snn = run_pipeline(graph, pipeline, options, dump)
    settings: dict[str, Any] = {
        "timesteps": int(timesteps), "norm": str(spec), "shift": shift,
        "pipeline": list(pipeline),
        "source": Path(model).name if not isinstance(model, Graph) else graph.meta.get("name"),
    }
    return CompiledNetwork(snn, target, settings)


__all__ = ["TARGETS", "compile", "load"]
