"""Run a stock-LIF plan (lif_plan.py) in Lava's CPU simulation: a RingBuffer source, Lava's
Sparse / Conv / Dense, LIFReset and a RingBuffer sink, nothing of snnc's own.

A batch of samples runs in one runtime: one priming step, then `steps` = T + lag Lava steps
per sample (lif_plan.py's clock), so a progress bar moves per sample. The host reads the
sink after the run and sums each sample's T-step window (the readout accumulator). Stock
LIFs count nothing, so each LIF's s_out also feeds a recording sink of its own, for the
spike counts and rasters; these probes exist only in runs on this CPU simulation (the plan,
and so `inspect --placement`, does not list them). What the host keeps grows with
samples x steps x (source + neurons), so batches shrink to keep it under HOST_ENTRIES.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .lif_plan import lif_sizes, source_data, window
from .network import LavaResult, _connect, build_stock, run_lava
from .plan import Plan, ProcSpec
from .runner import LavaSession, lava_errors

Progress = Callable[[int], None]
HOST_ENTRIES = 1 << 22  # source data + sink + probe entries per runtime


def _lif(spec: ProcSpec, steps: int, fixed: bool) -> Any:
    from lava.proc.lif.process import LIFReset

    p = spec.params
    # du=4095 (fixed) / 1 (float, a fraction): u is this step's input only; dv=0: no leak;
    # the reset lands on local step `depth` (Lava step s * steps + depth + 1)
    return LIFReset(shape=(spec.size,), du=4095 if fixed else 1.0, dv=0, vth=p["vth"],
                    bias_mant=p["bias_mant"], bias_exp=p["bias_exp"],
                    reset_interval=steps, reset_offset=(spec.depth + 1) % steps,
                    name=spec.name)


def run_lif_batch(plan: Plan, currents: dict[str, np.ndarray], timesteps: int,
                  raster: bool = False, progress: Progress | None = None) -> LavaResult:
    """N samples (currents: input-fed population -> (N, n)) in one Lava runtime."""
    t = int(timesteps)
    steps = t + plan.lag
    n = len(next(iter(currents.values())))
    total = n * steps + 1  # the priming step
    with lava_errors("refused the network"):  # it checks shapes and parameters as it builds
        lif = {"lif": lambda spec: _lif(spec, steps, plan.mode == "fixed")}
        procs, probes = build_stock(plan, source_data(plan, currents, steps), total, lif,
                                    probe=True, what="a stock-LIF plan")
        _connect(plan, procs)
    sink = procs[plan.readout]
    tag = "fixed_pt" if plan.mode == "fixed" else "floating_pt"
    with (lava_errors("failed while running the network"),
          LavaSession(sink, tag, sinks={plan.readout: sink, **probes}) as lava):
        for s in range(n):
            lava.run(steps + (s == 0))
            if progress is not None:
                progress(1)
        out = lava.read(plan.readout)
        spikes = {k: lava.read(k) != 0 for k in probes}
    depth = plan.proc(plan.readout).depth
    acc = np.stack([out[:, window(depth, steps, t, s)].sum(axis=1) for s in range(n)])
    if plan.mode == "fixed":
        acc = np.rint(acc).astype(np.int64)
    rasters = {k: np.stack([v[:, window(plan.proc(k).depth, steps, t, s)].T
                            for s in range(n)]) for k, v in spikes.items()}
    counts = {k: r.sum(axis=(1, 2)).astype(np.int64) for k, r in rasters.items()}
    return LavaResult(acc, counts, rasters if raster else {}, {})


def batch_size(plan: Plan, timesteps: int, batch: int) -> int:
    """At most `batch` samples, fewer where their host-side buffers would pass HOST_ENTRIES."""
    per_sample = lif_sizes(plan) * (int(timesteps) + plan.lag)
    return max(1, min(int(batch), HOST_ENTRIES // per_sample))


def run_lif(plan: Plan, currents: dict[str, np.ndarray], timesteps: int, raster: bool = False,
            batch: int = 32, progress: Progress | None = None) -> LavaResult:
    """network.run_lava for a stock-LIF plan: its batches, sized for the host-side buffers."""
    return run_lava(plan, currents, timesteps, raster, batch_size(plan, timesteps, batch),
                    progress, runner=run_lif_batch)
