"""Choose conversion settings for one T on the calibration data (`--norm auto`,
`--calibrate auto`).

Which threshold works best depends on T and on the model: at T = 1 a neuron can fire once, and a
threshold near the 90th percentile of its channel's activations keeps more information than the
max or the quantization-optimal one; at T = 32 the 99.99th percentile wins. Layer-wise
calibration helps some networks at some T and hurts others. So, like a compiler's autotuner,
snnc compiles the candidates, simulates each on (part of) the calibration set at the requested T,
and keeps the one whose outputs agree best with the ANN's: first the share of samples with the
same class, then the output error relative to the ANN's logits. Labels are not needed.

Spike bits (`--max-spike-bits M` above `--spike-bits B`): graded neurons with more bits always
quantize more finely, so the output error alone would always pick M. B is chosen first, as the
fewest bits whose agreement is as high as any candidate's: one candidate per B in B..M, each
with the percentile that tuning picks most often at the same resolution (T * (2^B - 1) steps;
the norm as given where it is not auto). The thresholds are then tuned at that B as above, so
a search over M - B + 1 bit widths adds M - B + 1 candidates, not a factor.

Cost (issue "low latency on deep networks"): the candidates share what does not depend on them.
The passes before normalize-thresholds run once; one streaming pass over the calibration data
collects every activation's histogram, from which each candidate reads its percentile
(normalize_thresholds.ActivationStats); the ANN's outputs are computed once. Candidates are
scored in blocks of samples (8, 16, 32, 64, ...), raced: every candidate is scored on the
first block, the one ahead is scored on all samples, and every other one is stopped as soon as
it cannot win any more: when, even agreeing with the ANN on every remaining sample, it would
agree less often than the best so far, or as often but with a larger output error (the error
only grows with more samples). A stopped candidate could not have been chosen, so the choice
is the one scoring every candidate on every sample would make (up to float rounding: a
simulation's float32 sums may round differently in another batch). The winner's graph is kept,
so compiling it again is not needed, and layer-wise calibration hands over the calibrated
network's outputs on its samples (it replays recorded spike trains, calibrate.py), so that
scoring it simulates only the samples calibration did not use. A `TuningCache` carries this
work between compiles (`snnc eval` compiles once per T): the histograms, the ANN outputs, and
each candidate network's outputs, which are recorded at every T of the evaluation up to the one
simulated (one run of a network gives all shorter T as prefixes), so that a candidate whose
network does not depend on T is simulated once for all of them.

The simulator is handed in; the compiler does not import a backend.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import cost
from .cost import calibration_macs, macs, samples_within_budget
from .executor import run
from .ir.graph import Graph
from .ops.neuron import spike_levels
from .passes.calibrate import MIN_SAMPLES as CALIBRATION_MIN_SAMPLES
from .passes.calibrate import Simulator
from .passes.normalize_thresholds import ActivationStats, NormSpec

AUTO_PERCENTILES = (90.0, 95.0, 99.0, 99.9, 99.99)
SCORING_SAMPLES = 256
MIN_SCORING_SAMPLES = 32
# samples every candidate is scored on before any is stopped; the blocks then double (a
# block this small already stops the clearly worse candidates, which at T = 32 cost the most)
FIRST_BLOCK = 8
# below this many multiply-adds per candidate, scoring runs in one block (no racing): one
# simulation of a small network costs less than the time steps of several
RACE_MIN_MACS = 2e9


@dataclass(frozen=True)
class Score:
    agreement: float  # share of samples where SNN and ANN pick the same class
    error: float  # ||snn - ann|| / ||ann|| over the outputs
    samples: int = 0  # scored on this many samples (0: not recorded)
    stopped: bool = False  # scored on fewer than the others: it could not win any more

    def better_than(self, other: Score | None) -> bool:
        if other is None:
            return True
        if self.agreement != other.agreement:
            return self.agreement > other.agreement
        return self.error < other.error


def graph_digest(graph: Graph) -> str:
    """A digest of everything a simulation of the graph depends on (structure, attributes,
    parameters; not meta): equal digests, equal networks."""
    h = hashlib.blake2b(digest_size=16)
    h.update(graph.output.encode())
    for node in graph.nodes:
        h.update(json.dumps([node.name, node.op, list(node.inputs), list(node.shape),
                             dict(node.attrs)], sort_keys=True, default=str).encode())
        for key in sorted(node.params):
            value = np.ascontiguousarray(node.params[key])
            h.update(f"{key}:{value.dtype.str}:{value.shape}".encode())
            h.update(value.data if value.size else b"")
    return h.hexdigest()


class TuningCache:
    """Work shared by the tunings of one model on one calibration set: by the candidates of
    one compile and by the compiles of `snnc eval` for each T (see the module's docstring).
    Entries are keyed by the identity of the graph and data objects they were made from.
    `timesteps`: the Ts of the evaluation; every candidate simulation also records the
    outputs at those below the T it runs for. `seconds`: where the time went, per phase."""

    def __init__(self, timesteps: Sequence[int] = ()) -> None:
        self.timesteps = sorted({int(t) for t in timesteps})
        self.stats = ActivationStats()
        self.seconds: dict[str, float] = defaultdict(float)
        self._memo: list[tuple[tuple[Any, ...], Any]] = []
        # (network digest, id of calib) -> {T: outputs of its first samples at T}
        self._outputs: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        self._calib: list[np.ndarray] = []  # keeps the arrays whose ids key _outputs alive
        self._digests: weakref.WeakKeyDictionary[Graph, str] = weakref.WeakKeyDictionary()

    def memo(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """make(), once per key; objects in the key compare by identity, strings, numbers
        and tuples of them by value."""
        for known, value in self._memo:
            if len(known) == len(key) and all(_same(a, b) for a, b in zip(known, key,
                                                                          strict=True)):
                return value
        value = make()
        self._memo.append((key, value))
        return value

    def reference(self, graph: Graph, calib: np.ndarray) -> np.ndarray:
        """The ANN's outputs (flattened) on the first SCORING_SAMPLES calibration samples."""
        def make() -> np.ndarray:
            start = time.perf_counter()
            x = calib[:SCORING_SAMPLES]
            out = ann_logits(graph, x).reshape(len(x), -1)
            self.seconds["reference"] += time.perf_counter() - start
            return out

        return self.memo(("reference", graph, calib), make)

    def _runs(self, snn: Graph, calib: np.ndarray) -> dict[int, np.ndarray]:
        if snn not in self._digests:  # weakly: candidate networks come and go
            self._digests[snn] = graph_digest(snn)
        digest = self._digests[snn]
        if not any(c is calib for c in self._calib):
            self._calib.append(calib)
        return self._outputs.setdefault((digest, id(calib)), {})

    def record_outputs(self, snn: Graph, calib: np.ndarray, samples: int, timesteps: int,
                       outputs: np.ndarray) -> None:
        """The network's outputs after `timesteps` steps on calib[:samples], simulated
        elsewhere (layer-wise calibration replaying its recorded trains)."""
        runs = self._runs(snn, calib)
        if len(runs.get(timesteps, ())) < samples:
            runs[int(timesteps)] = np.asarray(outputs).reshape(samples, -1)

    def outputs(self, snn: Graph, calib: np.ndarray, stop: int, timesteps: int,
                simulate: Simulator) -> np.ndarray:
        """The network's flattened outputs after `timesteps` steps on calib[:stop],
        simulating only the samples not simulated for it before."""
        runs = self._runs(snn, calib)
        have = len(runs.get(timesteps, ()))
        if have < stop:
            ts = [t for t in self.timesteps
                  if t < timesteps and len(runs.get(t, ())) == have] + [int(timesteps)]
            start = time.perf_counter()
            sim = simulate(snn, calib[have:stop], ts)
            self.seconds["scoring"] += time.perf_counter() - start
            for k, t in enumerate(ts):
                new = sim.outputs[k].reshape(stop - have, -1)
                runs[t] = new if have == 0 else np.concatenate([runs[t], new])
        return runs[timesteps][:stop]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (str, int, float, bool, type(None))) or isinstance(b, (str, int, float,
                                                                            bool)):
        return type(a) is type(b) and a == b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(p, q) for p, q in zip(a, b, strict=True))
    return a is b


@dataclass(eq=False)
class _Entry:
    """A candidate being scored: its network and what it scored so far."""

    label: str
    snn: Graph
    agree: int = 0  # samples so far on which SNN and ANN pick the same class
    sq: float = 0.0  # squared output error so far
    done: int = 0  # samples scored
    final: Score | None = None  # once scored on every sample, or stopped


class _Scorer:
    """Scores candidates block by block on calib[:samples] against the ANN's outputs."""

    def __init__(self, cache: TuningCache, calib: np.ndarray, samples: int,
                 reference: np.ndarray, timesteps: int, simulate: Simulator,
                 race: bool) -> None:
        self.cache, self.calib, self.samples = cache, calib, samples
        self.reference = reference.astype(np.float64)
        self.labels = self.reference.argmax(1)
        self.norm = max(float(np.sqrt((self.reference ** 2).sum())), 1e-30)
        self.timesteps, self.simulate = timesteps, simulate
        bounds, b = [], FIRST_BLOCK
        while race and b < samples:  # 8, 16, 32, 64, ...
            bounds.append(b)
            b *= 2
        self.bounds = [*bounds, samples]

    def advance(self, entry: _Entry) -> None:
        """Score the entry on its next block of samples."""
        stop = next(b for b in self.bounds if b > entry.done)
        out = self.cache.outputs(entry.snn, self.calib, stop, self.timesteps, self.simulate)
        out = out[entry.done:stop].astype(np.float64)
        ref = self.reference[entry.done:stop]
        entry.agree += int((out.argmax(1) == self.labels[entry.done:stop]).sum())
        entry.sq += float(((out - ref) ** 2).sum())
        entry.done = stop
        if stop == self.samples:
            entry.final = Score(entry.agree / stop, float(np.sqrt(entry.sq)) / self.norm, stop)

    def cannot_win(self, entry: _Entry, best: _Entry) -> bool:
        """Even agreeing on every remaining sample, it would agree less often than `best`,
        or as often with a larger error (squared errors only add up)."""
        most = entry.agree + (self.samples - entry.done)
        return most < best.agree or (most <= best.agree and entry.sq > best.sq)

    def stop(self, entry: _Entry) -> None:
        norm = max(float(np.sqrt((self.reference[:entry.done] ** 2).sum())), 1e-30)
        entry.final = Score(entry.agree / entry.done, float(np.sqrt(entry.sq)) / norm,
                            entry.done, stopped=True)

    def complete(self, entry: _Entry, best: _Entry | None = None) -> None:
        """Score the entry on every sample, or until it cannot beat `best`."""
        while entry.final is None:
            if best is not None and entry.done and self.cannot_win(entry, best):
                self.stop(entry)
                return
            self.advance(entry)

    def race(self, entries: Sequence[_Entry]) -> _Entry:
        """The entry scoring every candidate on every sample would choose (the first, in
        the given order, of those with the best score), scoring fewer samples."""
        for entry in entries:
            if entry.final is None and entry.done == 0:
                self.advance(entry)
        # the one ahead first, so that the others are measured against a high bar
        ahead = sorted(entries, key=lambda e: (-e.agree / e.done, e.sq / e.done))
        best: _Entry | None = None
        for entry in ahead:
            self.complete(entry, best)
            if not entry.final.stopped and (best is None or _wins(entry, best, entries)):
                best = entry
        return best


def _wins(entry: _Entry, best: _Entry, order: Sequence[_Entry]) -> bool:
    """Whether `entry` would be kept over `best` by an in-order scan keeping the better."""
    if entry.final.better_than(best.final):
        return True
    if best.final.better_than(entry.final):
        return False
    return list(order).index(entry) < list(order).index(best)  # a tie: the first one


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
    graph: Graph | None = None  # the winner, compiled (None: nothing was compiled)


def untuned_percentile(timesteps: int) -> float:
    """The percentile chosen without simulating: the one tuning picks most often at this T on
    the digits nets (lower thresholds keep more information when a neuron fires few times)."""
    return 95.0 if timesteps <= 2 else 99.0 if timesteps <= 4 else 99.9 if timesteps <= 16 \
        else 99.99


def _bits_candidates(options: object, max_spike_bits: int | None, timesteps: int,
                     auto_norm: bool, per_channel: bool, calibrate: str) -> list[object]:
    """One candidate per spike width B..M (none without a search), each with the percentile
    tuning picks most often at its resolution T * (2^B - 1) where the norm is auto."""
    low = options.spike_bits
    if not max_spike_bits or max_spike_bits <= low:
        return []
    out = []
    for bits in range(low, max_spike_bits + 1):
        norm = NormSpec("percentile", untuned_percentile(timesteps * spike_levels(bits)),
                        per_channel) if auto_norm else options.norm
        out.append(replace(options, spike_bits=bits, norm=norm, calibrate=calibrate))
    return out


def _label(candidate: object, searching_bits: bool) -> str:
    text = f"norm {candidate.norm}"
    return f"spike bits {candidate.spike_bits}, {text}" if searching_bits else text


def choose(graph: Graph, options: object, compile_with: Callable[[object], Graph],
           calib: np.ndarray, timesteps: int, simulate: Simulator, auto_norm: bool,
           auto_calibration: bool, norms: Sequence[NormSpec] = (),
           progress: Callable[[int], None] | None = None,
           max_spike_bits: int | None = None, cache: TuningCache | None = None) -> Choice:
    """The best of the candidate settings; `compile_with(options)` runs the pipeline and
    `progress(1)` hears of every candidate scored. On large models it scores on fewer samples
    (compiler/cost.py's budget) and, where even MIN_SCORING_SAMPLES would cost more than
    HARD_LIMIT_MACS, simulates nothing and says so. With `max_spike_bits` above
    options.spike_bits it first chooses the spike bits (see the module's docstring)."""
    # an explicit --calibrate applies to every candidate; `auto` is tried on the winner below
    fixed = "none" if auto_calibration else options.calibrate
    per_channel = norms[0].per_channel if norms else True
    widths = _bits_candidates(options, max_spike_bits, timesteps, auto_norm, per_channel, fixed)
    candidates = [replace(options, norm=n, calibrate=fixed) for n in norms] if auto_norm \
        else ([] if widths else [replace(options, calibrate=fixed)])
    per_sample = macs(graph) * timesteps * (len(candidates) + len(widths))
    budget = cost.simulator_budget(simulate)  # scaled to the engine's throughput
    if per_sample * MIN_SCORING_SAMPLES > budget.hard_limit:
        bits = max_spike_bits if widths else options.spike_bits  # the finest allowed
        spec = NormSpec("percentile", untuned_percentile(timesteps * spike_levels(bits)),
                        per_channel)
        untuned = replace(options, norm=spec if auto_norm else options.norm, calibrate=fixed,
                          spike_bits=bits)
        return Choice(untuned, None, [], (
            f"not tuned: scoring {len(candidates) + len(widths)} candidates on "
            f"{MIN_SCORING_SAMPLES} samples at T={timesteps} would simulate "
            f"{per_sample * MIN_SCORING_SAMPLES / 1e12:.0f} TMAC (limit "
            f"{budget.hard_limit / 1e12:.0f}); took norm {untuned.norm}"
            + (f", spike bits {bits}" if widths else "")
            + (", no calibration" if auto_calibration else "")))
    samples = samples_within_budget(per_sample, MIN_SCORING_SAMPLES, SCORING_SAMPLES, budget)
    note = (f"scored on {samples} calibration samples (compute budget)"
            if samples < min(SCORING_SAMPLES, len(calib)) else "")
    samples = min(samples, len(calib))
    cache = cache if cache is not None else TuningCache()
    reference = cache.reference(graph, calib)[:samples]
    race = macs(graph) * timesteps * samples >= RACE_MIN_MACS
    scorer = _Scorer(cache, calib, samples, reference, timesteps, simulate, race)
    tried: list[_Entry] = []
    entries: dict[tuple[str, int, str], _Entry] = {}

    def entry(candidate: object, label: str) -> _Entry:
        key = (str(candidate.norm), candidate.spike_bits, candidate.calibrate)
        if key not in entries:  # else the width search compiled it already
            start, hist = time.perf_counter(), cache.stats.seconds
            snn = compile_with(candidate)
            phase = "calibration" if candidate.calibrate != "none" else "candidates"
            cache.seconds[phase] += (time.perf_counter() - start
                                     - (cache.stats.seconds - hist))
            entries[key] = _Entry(label, snn)
            tried.append(entries[key])
        return entries[key]

    ticked: set[int] = set()

    def tick(e: _Entry) -> None:
        if progress is not None and id(e) not in ticked:
            progress(1)
        ticked.add(id(e))

    def scored(e: _Entry, best: _Entry | None = None) -> _Entry:
        scorer.complete(e, best)
        tick(e)
        return e

    options_of: dict[int, object] = {}
    if widths:
        width_entries = [entry(c, _label(c, True)) for c in widths]
        for c, e in zip(widths, width_entries, strict=True):
            options_of[id(e)] = c
        agreement = [scored(e).final.agreement for e in width_entries]
        # the fewest bits that agree with the ANN as often as any width does
        bits = widths[agreement.index(max(agreement))].spike_bits
        candidates = [replace(c, spike_bits=bits) for c in candidates] or \
            [next(c for c in widths if c.spike_bits == bits)]
    racing = []
    for candidate in candidates:
        e = entry(candidate, _label(candidate, bool(widths)))
        options_of.setdefault(id(e), candidate)
        if e not in racing:
            racing.append(e)
    best_entry = scorer.race(racing)
    for e in racing:
        tick(e)
    best = options_of[id(best_entry)]
    if auto_calibration:
        # on at least calibrate.MIN_SAMPLES samples
        per_sample = calibration_macs(best_entry.snn, timesteps)
        if per_sample * CALIBRATION_MIN_SAMPLES > budget.hard_limit:
            skipped = (f"calibration not tried: it would simulate "
                       f"{per_sample * CALIBRATION_MIN_SAMPLES / 1e12:.0f} TMAC")
            return _choice(best, best_entry, tried, "; ".join(filter(None, [note, skipped])))
        calibrated = replace(best, calibrate="bias+potential")
        challenger = scored(entry(calibrated, _label(calibrated, bool(widths))
                                  + " + calibration"), best_entry)
        if not challenger.final.stopped and challenger.final.better_than(best_entry.final):
            best, best_entry = calibrated, challenger
    return _choice(best, best_entry, tried, note)


def _choice(best: object, entry: _Entry, tried: list[_Entry], note: str) -> Choice:
    return Choice(best, entry.final, [(e.label, e.final) for e in tried if e.final], note,
                  entry.snn)
