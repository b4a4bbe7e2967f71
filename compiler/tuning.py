"""Choose conversion settings for one T on the calibration data (`--norm auto`,
`--calibrate auto`).

Which threshold works best depends on T and on the model: at T = 1 a neuron can fire once, and a
threshold near the 90th percentile of its channel's activations keeps more information than the
max or the quantization-optimal one; at T = 32 the 99.99th percentile wins. Layer-wise
calibration helps some networks at some T and hurts others. So, like a compiler's autotuner,
snnc compiles the candidates, simulates each on (part of) the calibration set at the requested T,
and keeps the one whose outputs agree best with the ANN's: first the share of samples with the
same class, then the output error relative to the ANN's logits. Labels are not needed.

The simulator is handed in; the compiler does not import a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .executor import run
from .ir.graph import Graph
from .passes.calibrate import Simulator
from .passes.normalize_thresholds import NormSpec

AUTO_PERCENTILES = (90.0, 95.0, 99.0, 99.9, 99.99)
SCORING_SAMPLES = 256


@dataclass(frozen=True)
class Score:
    agreement: float  # share of samples where SNN and ANN pick the same class
    error: float  # ||snn - ann|| / ||ann|| over the outputs

    def better_than(self, other: Score | None) -> bool:
        if other is None:
            return True
        if self.agreement != other.agreement:
            return self.agreement > other.agreement
        return self.error < other.error


def ann_logits(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The ANN's outputs before a final softmax (the SNN decodes those)."""
    out = graph.output_node
    if out.op == "softmax":
        graph = graph.replace(output=out.inputs[0])
    return run(graph, x)


def score(snn: Graph, x: np.ndarray, reference: np.ndarray, timesteps: int,
          simulate: Simulator) -> Score:
    out = simulate(snn, x, [timesteps]).outputs[0].reshape(len(x), -1)
    ref = reference.reshape(len(x), -1)
    agreement = float((out.argmax(1) == ref.argmax(1)).mean())
    error = float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))
    return Score(agreement, error)


def norm_candidates(data_based: bool, trained: bool, per_channel: bool = True
                    ) -> list[NormSpec]:
    """Percentiles (per channel unless the target needs one threshold per layer) for the
    layers without a trained threshold; where the model has trained thresholds, those as they
    are and, as alternatives, replaced by percentiles too."""
    keep = [NormSpec("percentile", p, per_channel) for p in AUTO_PERCENTILES]
    if not data_based:
        keep = keep[-1:]  # every threshold is trained: the percentile plays no part
    override = [NormSpec("percentile", p, per_channel, override_trained=True)
                for p in AUTO_PERCENTILES] if trained else []
    return keep + override


@dataclass(frozen=True)
class Choice:
    options: object  # the PassOptions that won
    score: Score
    tried: list[tuple[str, Score]]


def choose(graph: Graph, options: object, compile_with: Callable[[object], Graph],
           calib: np.ndarray, timesteps: int, simulate: Simulator, auto_norm: bool,
           auto_calibration: bool, norms: Sequence[NormSpec] = ()) -> Choice:
    """The best of the candidate settings; `compile_with(options)` runs the pipeline."""
    x = calib[:SCORING_SAMPLES]
    reference = ann_logits(graph, x)
    tried: list[tuple[str, Score]] = []
    best, best_score = None, None
    # an explicit --calibrate applies to every candidate; `auto` is tried on the winner below
    fixed = "none" if auto_calibration else options.calibrate
    candidates = [replace(options, norm=n, calibrate=fixed) for n in norms] if auto_norm \
        else [replace(options, calibrate=fixed)]
    for candidate in candidates:
        s = score(compile_with(candidate), x, reference, timesteps, simulate)
        tried.append((f"norm {candidate.norm}", s))
        if s.better_than(best_score):
            best, best_score = candidate, s
    if auto_calibration:
        calibrated = replace(best, calibrate="bias+potential")
        s = score(compile_with(calibrated), x, reference, timesteps, simulate)
        tried.append((f"norm {best.norm} + calibration", s))
        if s.better_than(best_score):
            best, best_score = calibrated, s
    return Choice(best, best_score, tried)
