"""Run a named pipeline of passes, verifying the IR after each and dumping it on request
(like MLIR's --print-ir-after-all). Each pass declares a contract (compiler/contracts.py: the
facts it requires, forbids and produces); a pipeline is checked against them before its first
pass runs, so a pass out of order is one PassError naming it and what is missing. An error
raised inside a pass carries the pass's name (`pass_name`); a bug is reported with its name
and the passes that ran before it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contracts import Contract, facts, violation
from ..errors import InternalError, SnncError, UsageError
from ..fileio import atomic_write_text
from ..ir.graph import Graph
from ..ir.printer import EXTENSIONS, FORMATS
from ..ir.verify import verify
from ..loihi.lower_synapses import CONTRACT as LOWER_SYNAPSES_CONTRACT
from ..loihi.lower_synapses import NAME as LOWER_SYNAPSES
from ..loihi.lower_synapses import lower_synapses
from ..loihi.map_cores import CONTRACT as MAP_CORES_CONTRACT
from ..loihi.map_cores import NAME as MAP_CORES
from ..loihi.map_cores import CoreLimits, map_cores
from ..loihi.quantize_weights import CONTRACT as QUANTIZE_WEIGHTS_CONTRACT
from ..loihi.quantize_weights import NAME as QUANTIZE_WEIGHTS
from ..loihi.quantize_weights import quantize_weights
from ..targets import target as target_entry
from .calibrate import CONTRACT as CALIBRATE_CONTRACT
from .calibrate import NAME as CALIBRATE
from .calibrate import OutputsFn, Simulator, calibrate
from .convert import CONTRACT as CONVERT_CONTRACT
from .convert import NAME as CONVERT
from .convert import convert
from .delta_thresholds import CONTRACT as DELTA_THRESHOLDS_CONTRACT
from .delta_thresholds import NAME as DELTA_THRESHOLDS
from .delta_thresholds import delta_thresholds
from .fold_batchnorm import CONTRACT as FOLD_BATCHNORM_CONTRACT
from .fold_batchnorm import NAME as FOLD_BATCHNORM
from .fold_batchnorm import fold_batchnorm
from .lower_maxpool import CONTRACT as LOWER_MAXPOOL_CONTRACT
from .lower_maxpool import NAME as LOWER_MAXPOOL
from .lower_maxpool import lower_maxpool
from .normalize_thresholds import CONTRACT as NORMALIZE_THRESHOLDS_CONTRACT
from .normalize_thresholds import NAME as NORMALIZE_THRESHOLDS
from .normalize_thresholds import ActivationStats, NormSpec, normalize_thresholds
from .recognise_activations import CONTRACT as RECOGNISE_ACTIVATIONS_CONTRACT
from .recognise_activations import NAME as RECOGNISE_ACTIVATIONS
from .recognise_activations import recognise_activations
from .shift_bias import CONTRACT as SHIFT_BIAS_CONTRACT
from .shift_bias import NAME as SHIFT_BIAS
from .shift_bias import shift_bias
from .spike_output import CONTRACT as SPIKE_OUTPUT_CONTRACT
from .spike_output import NAME as SPIKE_OUTPUT
from .spike_output import spike_output
from .tree_thresholds import CONTRACT as TREE_THRESHOLDS_CONTRACT
from .tree_thresholds import NAME as TREE_THRESHOLDS
from .tree_thresholds import tree_thresholds


@dataclass(frozen=True)
class PassOptions:
    """Everything the passes may need besides the graph."""

    calib: np.ndarray | None = None
    norm: NormSpec = field(default_factory=NormSpec)
    shift: str = "v0"
    timesteps: int | None = None
    neuron: str = "if"
    spike_bits: int = 1  # graded spikes: counts up to 2^B - 1 per message (1: binary)
    calibrate: str = "none"
    simulator: Simulator | None = None
    progress: Callable[[int], None] | None = None
    core_limits: CoreLimits | None = None  # map-cores (lava, loihi)
    # activation histograms shared by the normalize-thresholds runs of tuning's candidates
    stats: ActivationStats | None = None
    # told the calibrated network's outputs on the calibration samples (tuning scores them)
    on_calibrated: OutputsFn | None = None


PassFn = Callable[[Graph, PassOptions], Graph]

PASSES: dict[str, PassFn] = {
    RECOGNISE_ACTIVATIONS: lambda g, o: recognise_activations(g),
    SPIKE_OUTPUT: lambda g, o: spike_output(g),
    FOLD_BATCHNORM: lambda g, o: fold_batchnorm(g),
    LOWER_MAXPOOL: lambda g, o: lower_maxpool(g),  # max pools as ReLU trees (before thresholds)
    NORMALIZE_THRESHOLDS: lambda g, o: normalize_thresholds(g, o.calib, o.norm,
                                                           timesteps=o.timesteps,
                                                           spike_bits=o.spike_bits,
                                                           stats=o.stats),
    TREE_THRESHOLDS: lambda g, o: tree_thresholds(g),  # rate-coded ReLU trees: exact units
    CONVERT: lambda g, o: convert(g, o.neuron, o.spike_bits),
    SHIFT_BIAS: lambda g, o: shift_bias(g, o.shift, o.timesteps),
    DELTA_THRESHOLDS: lambda g, o: delta_thresholds(g, o.calib),
    CALIBRATE: lambda g, o: calibrate(g, o.calib, o.timesteps, o.simulator, o.calibrate,
                                      progress=o.progress, on_outputs=o.on_calibrated),
    LOWER_SYNAPSES: lambda g, o: lower_synapses(g),
    QUANTIZE_WEIGHTS: lambda g, o: quantize_weights(g),
    MAP_CORES: lambda g, o: map_cores(g, o.core_limits),
}

# what each pass requires of its graph and leaves in it, as its module declares
CONTRACTS: dict[str, Contract] = {
    RECOGNISE_ACTIVATIONS: RECOGNISE_ACTIVATIONS_CONTRACT, SPIKE_OUTPUT: SPIKE_OUTPUT_CONTRACT,
    FOLD_BATCHNORM: FOLD_BATCHNORM_CONTRACT, LOWER_MAXPOOL: LOWER_MAXPOOL_CONTRACT,
    NORMALIZE_THRESHOLDS: NORMALIZE_THRESHOLDS_CONTRACT, CONVERT: CONVERT_CONTRACT,
    TREE_THRESHOLDS: TREE_THRESHOLDS_CONTRACT,
    SHIFT_BIAS: SHIFT_BIAS_CONTRACT, DELTA_THRESHOLDS: DELTA_THRESHOLDS_CONTRACT,
    CALIBRATE: CALIBRATE_CONTRACT, LOWER_SYNAPSES: LOWER_SYNAPSES_CONTRACT,
    QUANTIZE_WEIGHTS: QUANTIZE_WEIGHTS_CONTRACT, MAP_CORES: MAP_CORES_CONTRACT,
}

DEFAULT_PIPELINE = (RECOGNISE_ACTIVATIONS, FOLD_BATCHNORM, NORMALIZE_THRESHOLDS, CONVERT,
                    SHIFT_BIAS, CALIBRATE)
# sigma-delta networks: no half-step shift or calibration for T (they settle to the ANN with a
# dead zone); their delta thresholds are chosen instead
SIGMA_DELTA_PIPELINE = (RECOGNISE_ACTIVATIONS, FOLD_BATCHNORM, NORMALIZE_THRESHOLDS, CONVERT,
                        DELTA_THRESHOLDS)
# passes that read no options: every tuning candidate gets the same graph out of them
OPTION_FREE = frozenset({RECOGNISE_ACTIVATIONS, SPIKE_OUTPUT, FOLD_BATCHNORM, LOWER_MAXPOOL})


def split_pipeline(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The pipeline's longest head of option-free passes, and the rest."""
    names = tuple(names)
    k = 0
    while k < len(names) and names[k] in OPTION_FREE:
        k += 1
    return names[:k], names[k:]


def target_passes(target: str) -> tuple[str, ...]:
    """What `target` appends to the pipeline."""
    return _known(target, target_entry(target).passes)


def writer_passes(target: str) -> tuple[str, ...]:
    """What `target`'s writer applies to a converted network that has not had it."""
    return _known(target, target_entry(target).writer_passes)


def _known(target: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` (compiler/targets.py names passes, importing none), checked here."""
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise InternalError(f"compiler/targets.py: --target {target} names unknown pass(es) "
                            f"{unknown}")
    return names


def check_pipeline(graph: Graph, names: Sequence[str]) -> None:
    """Refuse, before anything runs, a pipeline with a pass whose contract the facts of
    `graph` and of the passes before it do not meet (one PassError naming that pass)."""
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise UsageError(f"unknown pass(es) {unknown}; known: {', '.join(PASSES)}")
    have = facts(graph)
    for name in names:
        error = violation(name, CONTRACTS[name], have)
        if error is not None:
            raise error
        have |= CONTRACTS[name].produces


@dataclass(frozen=True)
class DumpSpec:
    """Which IR snapshots to write: `after` is 'after-all' or a set of pass names
    ('import' names the graph straight from the frontend)."""

    directory: Path
    after: frozenset[str] | str = "after-all"
    format: str = "text"

    @classmethod
    def parse(cls, spec: str, directory: str | Path, fmt: str = "text") -> DumpSpec:
        if fmt not in FORMATS:
            raise UsageError(f"--dump-format '{fmt}' is not one of: {', '.join(FORMATS)}")
        if spec == "after-all":
            return cls(Path(directory), "after-all", fmt)
        names = frozenset(s.strip() for s in spec.split(",") if s.strip())
        unknown = sorted(names - set(PASSES) - {"import"})
        if unknown or not names:
            raise UsageError(f"--dump-ir: unknown pass name(s) {unknown or [spec]}; use "
                             f"after-all or a comma list of: import, {', '.join(PASSES)}")
        return cls(Path(directory), names, fmt)

    def wants(self, name: str) -> bool:
        return self.after == "after-all" or name in self.after

    def write(self, index: int, name: str, graph: Graph) -> Path:
        path = self.directory / f"{index:02d}-{name}.{EXTENSIONS[self.format]}"
        atomic_write_text(path, FORMATS[self.format](graph))
        return path


def run_pipeline(graph: Graph, names: Sequence[str] = DEFAULT_PIPELINE,
                 options: PassOptions | None = None, dump: DumpSpec | None = None) -> Graph:
    options = options or PassOptions()
    check_pipeline(graph, names)
    if dump is not None and dump.wants("import"):
        dump.write(0, "import", graph)
    done: list[str] = []
    for index, name in enumerate(names, start=1):
        try:
            graph = PASSES[name](graph, options)
            verify(graph)
        except SnncError as exc:  # the user's message (it names the node); the pass besides
            if exc.pass_name is None:
                exc.pass_name = name
                exc.add_note(f"in pass '{name}' (after: {', '.join(done) or 'nothing'})")
            raise
        except Exception as exc:  # a bug in a pass: name it and what ran before
            error = InternalError(
                f"pass '{name}' failed (after: {', '.join(done) or 'nothing'}): "
                f"{type(exc).__name__}: {exc}"
            )
            error.pass_name = name
            raise error from exc
        left = CONTRACTS[name].produces - facts(graph)
        if left:  # the contract promised more: a bug in the pass, not in the user's model
            raise InternalError(f"pass '{name}' did not produce {sorted(left)}, as its "
                                "contract says (compiler/contracts.py)")
        done.append(name)
        if dump is not None and dump.wants(name):
            dump.write(index, name, graph)
    return graph
