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

from . import cost
from .cost import calibration_macs, macs, samples_within_budget
from .executor import run
from .ir.graph import Graph
from .passes.calibrate import MIN_SAMPLES as CALIBRATION_MIN_SAMPLES
from .passes.calibrate import Simulator
from .passes.normalize_thresholds import NormSpec

AUTO_PERCENTILES = (90.0, 95.0, 99.0, 99.9, 99.99)
SCORING_SAMPLES = 256
MIN_SCORING_SAMPLES = 32


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
    score: Score | None  # None: nothing was simulated (see note)
    tried: list[tuple[str, Score]]
    note: str = ""  # what the compute budget changed, for the user


def untuned_percentile(timesteps: int) -> float:
    """The percentile chosen without simulating: the one tuning picks most often at this T on
    the digits nets (lower thresholds keep more information when a neuron fires few times)."""
    return 95.0 if timesteps <= 2 else 99.0 if timesteps <= 4 else 99.9 if timesteps <= 16 \
        else 99.99


def choose(graph: Graph, options: object, compile_with: Callable[[object], Graph],
           calib: np.ndarray, timesteps: int, simulate: Simulator, auto_norm: bool,
           auto_calibration: bool, norms: Sequence[NormSpec] = (),
           progress: Callable[[int], None] | None = None) -> Choice:
    """The best of the candidate settings; `compile_with(options)` runs the pipeline and
    `progress(1)` hears of every candidate scored. On large models it scores on fewer samples
    (compiler/cost.py's budget) and, where even MIN_SCORING_SAMPLES would cost more than
    HARD_LIMIT_MACS, simulates nothing and says so."""
    # an explicit --calibrate applies to every candidate; `auto` is tried on the winner below
    fixed = "none" if auto_calibration else options.calibrate
    candidates = [replace(options, norm=n, calibrate=fixed) for n in norms] if auto_norm \
        else [replace(options, calibrate=fixed)]
    per_sample = macs(graph) * timesteps * len(candidates)
    if per_sample * MIN_SCORING_SAMPLES > cost.HARD_LIMIT_MACS:
        spec = NormSpec("percentile", untuned_percentile(timesteps),
                        norms[0].per_channel if norms else True)
        untuned = replace(options, norm=spec if auto_norm else options.norm, calibrate=fixed)
        return Choice(untuned, None, [], (
            f"not tuned: scoring {len(candidates)} candidates on {MIN_SCORING_SAMPLES} samples "
            f"at T={timesteps} would simulate {per_sample * MIN_SCORING_SAMPLES / 1e12:.0f} "
            f"TMAC (limit {cost.HARD_LIMIT_MACS / 1e12:.0f}); took norm {untuned.norm}"
            + (", no calibration" if auto_calibration else "")))
    samples = samples_within_budget(per_sample, MIN_SCORING_SAMPLES, SCORING_SAMPLES)
    note = (f"scored on {samples} calibration samples (compute budget)"
            if samples < min(SCORING_SAMPLES, len(calib)) else "")
    x = calib[:samples]
    reference = ann_logits(graph, x)
    tried: list[tuple[str, Score]] = []
    best, best_score, best_snn = None, None, None

    def trial(candidate: object, label: str) -> None:
        nonlocal best, best_score, best_snn
        snn = compile_with(candidate)
        s = score(snn, x, reference, timesteps, simulate)
        if progress is not None:
            progress(1)
        tried.append((label, s))
        if s.better_than(best_score):
            best, best_score, best_snn = candidate, s, snn

    for candidate in candidates:
        trial(candidate, f"norm {candidate.norm}")
    if auto_calibration:
        # on at least calibrate.MIN_SAMPLES samples
        per_sample = calibration_macs(best_snn, timesteps)
        if per_sample * CALIBRATION_MIN_SAMPLES > cost.HARD_LIMIT_MACS:
            skipped = (f"calibration not tried: it would simulate "
                       f"{per_sample * CALIBRATION_MIN_SAMPLES / 1e12:.0f} TMAC")
            return Choice(best, best_score, tried, "; ".join(filter(None, [note, skipped])))
        trial(replace(best, calibrate="bias+potential"), f"norm {best.norm} + calibration")
    return Choice(best, best_score, tried, note)
