"""Instantiate a Plan as Lava processes and run it in Lava's CPU simulation (Loihi2SimCfg).

A batch of N samples runs as one Lava run of N * (T + lag) steps; the neuron processes reset
themselves between samples and switch each population's bias on at the step its input starts
to arrive (its depth), so every sample lines up with the delay-free reference simulator
(compiler/populations.py). Failures inside Lava's worker processes come back as BackendError
with Lava's message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnc.compiler.errors import SnncError

from . import require_lava
from .plan import Plan, ProcSpec

Progress = Callable[[int], None]


class BackendError(SnncError):
    """Lava failed while building or running the network."""

    exit_code = 70


@dataclass(frozen=True)
class LavaResult:
    acc: np.ndarray  # (N, n_out) readout accumulator over T steps
    counts: dict[str, np.ndarray]  # neuron process -> (N,) spikes in the T-step window
    rasters: dict[str, np.ndarray]  # neuron process -> (N, T, n) bool (if recorded)


def _make(spec: ProcSpec, plan: Plan, steps: int, window: int,
          currents: dict[str, np.ndarray], raster: bool) -> Any:
    from lava.proc.dense.process import DelayDense, Dense

    from .procs.process import IFSub, MaxPoolSpike, Readout

    p = spec.params
    n_samples = len(next(iter(currents.values())))
    if spec.kind == "dense":
        extra = {"weight_exp": p["weight_exp"]} if "weight_exp" in p else {}
        if p.get("delay", 1) > 1:
            return DelayDense(weights=p["weights"], delays=int(p["delay"]) - 1,
                              name=spec.name, **extra)
        return Dense(weights=p["weights"], name=spec.name, **extra)
    if spec.kind == "maxpool":
        return MaxPoolSpike(shape=(spec.size,), index=p["index"], n_in=p["n_in"],
                            steps=steps, quiet=p["quiet"], name=spec.name)
    if spec.kind == "readout":
        return Readout(shape=(spec.size,), steps=steps, samples=n_samples, name=spec.name)
    if spec.kind == "if":
        inputs = currents[spec.name].T if spec.name in plan.input_pops else None
        return IFSub(shape=(spec.size,), vth=p["vth"], v0=p["v"], bias_mant=p["bias_mant"],
                     bias_exp=p["bias_exp"], depth=spec.depth, steps=steps, window=window,
                     samples=n_samples, inputs=inputs, raster=raster, quiet=p["quiet"],
                     name=spec.name)
    raise SnncError(f"neuron kind '{spec.kind}' is not supported by the lava backend yet")


def _unpack(words: np.ndarray, n_samples: int, window: int) -> np.ndarray:
    from .procs.process import WORD_BITS

    per = -(-window // WORD_BITS)
    w = words.astype(np.int64).reshape(words.shape[0], n_samples, per)  # (n, N, words)
    bits = np.arange(window)
    r = (w[:, :, bits // WORD_BITS] >> (bits % WORD_BITS)) & 1  # (n, N, T)
    return r.transpose(1, 2, 0).astype(bool)


def run_batch(plan: Plan, currents: dict[str, np.ndarray], timesteps: int,
              raster: bool = False) -> LavaResult:
    """Run N samples (currents: input-fed population -> (N, n)) in one Lava run."""
    require_lava("--backend lava")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    n_samples = len(next(iter(currents.values())))
    steps = int(timesteps) + plan.lag
    procs = {s.name: _make(s, plan, steps, int(timesteps), currents, raster)
             for s in plan.procs}
    for src, dst in plan.connections:
        out = procs[src].a_out if plan.proc(src).kind == "dense" else procs[src].s_out
        inp = procs[dst].s_in if plan.proc(dst).kind in ("dense", "maxpool") else \
            procs[dst].a_in
        out.connect(inp)
    root = procs[plan.readout]
    tag = "fixed_pt" if plan.mode == "fixed" else "floating_pt"
    started = False
    try:
        root.run(condition=RunSteps(n_samples * steps), run_cfg=Loihi2SimCfg(select_tag=tag))
        started = True
        acc = np.asarray(root.acc.get(), np.float64).T
        counts = {s.name: np.asarray(procs[s.name].counts.get()).astype(np.int64)
                  for s in plan.neurons}
        rasters = {s.name: _unpack(np.asarray(procs[s.name].raster.get()), n_samples,
                                   int(timesteps)) for s in plan.neurons} if raster else {}
    except SnncError:
        raise
    except Exception as exc:  # Lava wraps worker failures; pass its message on
        raise BackendError(f"Lava failed while running the network: "
                           f"{type(exc).__name__}: {exc}") from exc
    finally:
        if started or getattr(root, "_runtime", None) is not None:
            with contextlib.suppress(Exception):
                root.stop()
    return LavaResult(acc, counts, rasters)


def run_lava(plan: Plan, currents: dict[str, np.ndarray], timesteps: int,
             raster: bool = False, batch: int = 32,
             progress: Progress | None = None) -> LavaResult:
    """All samples, `batch` per Lava run (each run costs a compile of about 0.3 s)."""
    n = len(next(iter(currents.values())))
    parts = []
    for start in range(0, n, batch):
        chunk = {k: v[start:start + batch] for k, v in currents.items()}
        parts.append(run_batch(plan, chunk, timesteps, raster))
        if progress is not None:
            progress(len(next(iter(chunk.values()))))
    return LavaResult(np.concatenate([p.acc for p in parts]),
                      {k: np.concatenate([p.counts[k] for p in parts]) for k in parts[0].counts},
                      {k: np.concatenate([p.rasters[k] for p in parts])
                       for k in parts[0].rasters})
