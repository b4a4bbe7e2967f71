"""Run a sigma-delta plan (sd_plan.py) in Lava's CPU simulation with stock processes only.

State is per sample and stock SigmaDelta processes have no reset, so every sample runs in a
fresh Lava runtime of T + K steps (K: the sink's depth): exact, and simple; it costs a compile
and the workers' start (about a second for a small network) per sample. The source sends the
sample at step 1; the sink records every step's input and the host sums it all (the warm-up
steps before the input arrives included, as backends/numpy/loihi_sigma_delta.py explains).
With `raster`, each SigmaDelta's s_out also feeds a sink RingBuffer of its own, so that the
messages can be compared with the NumPy bit-exact model payload for payload (these recording
sinks are host processes that exist only in such runs; the plan does not list them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import require_lava
from .network import LavaResult, _connect, build_stock
from .plan import Plan, ProcSpec
from .runner import LavaSession, lava_errors

Progress = Callable[[int], None]


def _sigma_delta(spec: ProcSpec) -> Any:
    from lava.proc.sdn.process import ActivationMode, SigmaDelta

    p = spec.params
    return SigmaDelta(shape=(spec.size,), vth=p["vth"], bias=p["bias"],
                      act_mode=ActivationMode.RELU, cum_error=False, spike_exp=0,
                      state_exp=int(p["state_exp"]), name=spec.name)


def _run_sample(plan: Plan, sample: np.ndarray, timesteps: int, raster: bool
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the sink's sum (n_out,), each SigmaDelta's messages (steps, n)) of one sample."""
    steps = int(timesteps) + plan.lag
    with lava_errors("refused the network"):  # it checks shapes and parameters as it builds
        data = np.zeros((len(sample), steps), sample.dtype)
        data[:, 0] = sample  # the change of a static sample: all of it at step 1
        procs, probes = build_stock(plan, data, steps, {"sigma_delta": _sigma_delta},
                                    probe=raster, what="a sigma-delta plan")
        _connect(plan, procs)
    sink = procs[plan.readout]
    tag = "fixed_pt" if plan.mode == "fixed" else "floating_pt"
    with (lava_errors("failed while running the network"),
          LavaSession(sink, tag, sinks={plan.readout: sink, **probes}) as lava):
        lava.run(steps)
        data = lava.read(plan.readout)
        sent = {k: lava.read(k).T for k in probes}
    acc = data.sum(axis=1)
    return (np.rint(acc).astype(np.int64) if plan.mode == "fixed" else acc), sent


def run_sigma_delta(plan: Plan, inputs: np.ndarray, timesteps: int, raster: bool = False,
                    progress: Progress | None = None) -> LavaResult:
    """All samples, one fresh runtime each; inputs (N, n_in): what the source sends (the
    integers of compiler/loihi/quantize_sigma_delta.quantize_input for fixed point, the
    sample itself for float). counts / payload: messages (nonzero) and their
    sum |m| per SigmaDelta in Lava steps <= T + depth (reference steps <= T); rasters
    (N, T + depth, n) on Lava's timeline, int32 for fixed point."""
    require_lava("--backend lava")
    data = np.asarray(inputs, np.int64 if plan.mode == "fixed" else np.float64)
    neurons = [p for p in plan.procs if p.kind == "sigma_delta"]
    accs, counts, payload = [], {p.name: [] for p in neurons}, {p.name: [] for p in neurons}
    rasters: dict[str, list[np.ndarray]] = {p.name: [] for p in neurons}
    for sample in data:
        acc, sent = _run_sample(plan, sample, timesteps, raster)
        accs.append(acc)
        for spec in neurons:
            if spec.name not in sent:
                continue
            window = sent[spec.name][:int(timesteps) + spec.depth]
            if plan.mode == "fixed":
                window = np.rint(window).astype(np.int32)
            rasters[spec.name].append(window)
            counts[spec.name].append(int(np.count_nonzero(window)))
            payload[spec.name].append(np.abs(window).sum())
        if progress is not None:
            progress(1)
    if not raster:  # counts need the messages: only recorded runs have them
        return LavaResult(np.stack(accs), {}, {}, {})
    fixed = plan.mode == "fixed"
    return LavaResult(np.stack(accs),
                      {k: np.asarray(v, np.int64) for k, v in counts.items()},
                      {k: np.stack(v) for k, v in rasters.items()},
                      {k: np.asarray(v, np.int64 if fixed else np.float64)
                       for k, v in payload.items()} if fixed else {})
