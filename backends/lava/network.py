"""Instantiate a Plan as Lava processes and run it in Lava's CPU simulation (Loihi2SimCfg).

A batch of N samples runs in one Lava runtime, one run of T + lag steps per sample (so a
progress bar can move per sample); every population restarts at the local step its input
starts to arrive (its depth), so each sample lines up with the delay-free reference simulator
(compiler/loihi/populations.py). Failures inside Lava's worker processes come back as
BackendError naming the process (runner.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from snnc.compiler.errors import SnncError

from . import require_lava
from .plan import SYNAPSES, Plan, ProcSpec
from .runner import BackendError, LavaSession, lava_errors

Progress = Callable[[int], None]
__all__ = ["BackendError", "LavaResult", "run_batch", "run_lava"]


@dataclass(frozen=True)
class LavaResult:
    acc: np.ndarray  # (N, n_out) readout accumulator over T steps
    counts: dict[str, np.ndarray]  # neuron process -> (N,) messages in the T-step window
    # neuron process -> (N, T, n) bool spikes, or int16 payloads n of graded / signed neurons
    # (if recorded)
    rasters: dict[str, np.ndarray]
    # graded / signed neuron process -> (N,) payload carried in the window (sum of |n|)
    payload: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Clock:
    steps: int  # Lava steps per sample
    window: int  # T
    samples: int


def _synapse(spec: ProcSpec) -> Any:
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode

    p = spec.params
    # graded / signed sources: s_in carries the payload (absent for binary spikes)
    graded = {"num_message_bits": p["num_message_bits"]} if "num_message_bits" in p else {}
    if spec.kind == "conv":
        c, h, w = p["in_chw"]
        return Conv(weight=p["weight"], input_shape=(w, h, c), padding=p["padding"],
                    stride=p["stride"], dilation=p["dilation"], groups=p["groups"],
                    name=spec.name, **graded)
    extra: dict[str, Any] = dict(graded)
    if "weight_exp" in p:  # fixed point: Lava's exponent, and the sign mode that keeps m
        extra.update(weight_exp=p["weight_exp"], num_weight_bits=8,
                     sign_mode=SignMode[p["sign_mode"].upper()])
    delay = int(p.get("delay", 1))
    if spec.kind == "sparse":
        weights = p["weights"]
        if delay > 1:  # one extra delay per synapse, on the weights' own pattern
            delays = sp.csr_matrix((np.full(weights.nnz, delay - 1, dtype=int),
                                    weights.indices, weights.indptr), shape=weights.shape)
            return DelaySparse(weights=weights, delays=delays, name=spec.name, **extra)
        return Sparse(weights=weights, name=spec.name, **extra)
    if delay > 1:
        return DelayDense(weights=p["weights"], delays=delay - 1, name=spec.name, **extra)
    return Dense(weights=p["weights"], name=spec.name, **extra)


def _neuron(spec: ProcSpec, clock: _Clock, inputs: np.ndarray | None, raster: bool,
            fixed: bool) -> tuple[Any, Any]:
    """(the process whose s_out carries the spikes, the one that records them)."""
    from lava.proc.lif.process import LIFReset

    from .procs.process import IFSub, LifIO

    p, n = spec.params, (spec.size,)
    timing = {"depth": spec.depth, "steps": clock.steps, "window": clock.window,
              "samples": clock.samples, "inputs": inputs, "raster": raster}
    if spec.kind == "if":
        payload = {k: p[k] for k in ("levels", "signed") if k in p}  # graded / signed
        proc = IFSub(shape=n, vth=p["vth"], v0=p["v"], bias_mant=p["bias_mant"],
                     bias_exp=p["bias_exp"], name=spec.name, **timing, **payload)
        return proc, proc
    # Lava's stock LIF: du=4095 (fixed) / 1 (float, a fraction) makes u this step's input
    # only, dv=0 no leak; LIFReset zeroes u and v at local step `depth` of every sample
    lif = LIFReset(shape=n, du=4095 if fixed else 1.0, dv=0, vth=p["vth"],
                   bias_mant=p["bias_mant"], bias_exp=p["bias_exp"],
                   reset_interval=clock.steps, reset_offset=spec.depth % clock.steps,
                   name=spec.name)
    io = LifIO(shape=n, v0=p["v"], name=f"{spec.name}_io", **timing)
    io.a_out.connect(lif.a_in)
    lif.s_out.connect(io.s_in)
    return lif, io


def _build(plan: Plan, clock: _Clock, currents: dict[str, np.ndarray], raster: bool
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    from .procs.process import MaxPoolSpike, Readout

    fixed = plan.mode == "fixed"
    procs: dict[str, Any] = {}
    probes: dict[str, Any] = {}
    for spec in plan.procs:
        if spec.kind in SYNAPSES:
            procs[spec.name] = _synapse(spec)
        elif spec.kind == "maxpool":
            procs[spec.name] = MaxPoolSpike(
                shape=(spec.size,), index=spec.params["index"], n_in=spec.params["n_in"],
                steps=clock.steps, depth=spec.depth, name=spec.name)
        elif spec.kind == "readout":
            procs[spec.name] = Readout(shape=(spec.size,), steps=clock.steps,
                                       depth=spec.depth, samples=clock.samples, name=spec.name)
        elif spec.kind in ("if", "lif"):
            inputs = currents[spec.name].T if spec.name in plan.input_pops else None
            procs[spec.name], probes[spec.name] = _neuron(spec, clock, inputs, raster, fixed)
        else:
            raise SnncError(f"process kind '{spec.kind}' is not supported by the lava backend")
    return procs, probes


def build_stock(plan: Plan, data: np.ndarray, buffer: int,
                neurons: dict[str, Callable[[ProcSpec], Any]], probe: bool, what: str
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(processes, probes) of a plan of Lava's stock processes only (lif_plan, sd_plan): a
    RingBuffer source sending `data`, a RingBuffer sink of `buffer` steps, the synapses, and
    the neurons `neurons[kind](spec)` makes, each recorded by a sink of its own if `probe`."""
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    procs: dict[str, Any] = {}
    probes: dict[str, Any] = {}
    for spec in plan.procs:
        if spec.kind in SYNAPSES:
            procs[spec.name] = _synapse(spec)
        elif spec.kind == "source":
            procs[spec.name] = Source(data=data)
        elif spec.kind == "sink":
            procs[spec.name] = Sink(shape=(spec.size,), buffer=buffer)
        elif spec.kind in neurons:
            procs[spec.name] = neurons[spec.kind](spec)
            if probe:
                probes[spec.name] = Sink(shape=(spec.size,), buffer=buffer)
                procs[spec.name].s_out.connect(probes[spec.name].a_in)
        else:
            raise SnncError(f"process kind '{spec.kind}' is not part of {what}")
    return procs, probes


def _out_port(proc: Any, spec: ProcSpec) -> Any:
    """Spikes (neurons, pools) or current (synapses), as a flat (n,) vector in CHW order."""
    if spec.kind == "conv":  # Lava's (W, H, C) -> flat CHW
        return proc.a_out.transpose([2, 1, 0]).reshape((spec.size,))
    return proc.a_out if spec.kind in SYNAPSES else proc.s_out


def _connect(plan: Plan, procs: dict[str, Any]) -> None:
    for src, dst in plan.connections:
        out, spec, proc = _out_port(procs[src], plan.proc(src)), plan.proc(dst), procs[dst]
        if spec.kind == "conv":  # flat CHW -> Lava's (W, H, C)
            out = out.reshape(tuple(spec.params["in_chw"])).transpose([2, 1, 0])
        out.connect(proc.s_in if spec.kind in (*SYNAPSES, "maxpool") else proc.a_in)


def _unpack(words: np.ndarray, n_samples: int, window: int, spec: ProcSpec) -> np.ndarray:
    """A neuron's raster (N, T, n): bool spikes, or the int16 payloads of graded / signed
    neurons (stored as n + K for signed ones, `bits` bits per step; procs/models.py)."""
    from snnc.compiler.loihi.populations import payload_bits

    from .procs.process import WORD_BITS, raster_words

    levels, signed = int(spec.params.get("levels", 1)), bool(spec.params.get("signed"))
    bits = payload_bits(levels, signed)
    per = WORD_BITS // bits
    w = words.astype(np.int64).reshape(words.shape[0], n_samples,
                                       raster_words(window, bits))  # (n, N, words)
    steps = np.arange(window)
    r = (w[:, :, steps // per] >> ((steps % per) * bits)) & ((1 << bits) - 1)  # (n, N, T)
    r = r.transpose(1, 2, 0)
    if bits == 1:
        return r.astype(bool)
    return (r - (levels if signed else 0)).astype(np.int16)


def run_batch(plan: Plan, currents: dict[str, np.ndarray], timesteps: int,
              raster: bool = False, progress: Progress | None = None) -> LavaResult:
    """Run N samples (currents: input-fed population -> (N, n)) in one Lava runtime."""
    require_lava("--backend lava")
    clock = _Clock(int(timesteps) + plan.lag, int(timesteps),
                   len(next(iter(currents.values()))))
    with lava_errors("refused the network"):  # it checks shapes and parameters as it builds
        procs, probes = _build(plan, clock, currents, raster)
        _connect(plan, procs)
    root = procs[plan.readout]
    tag = "fixed_pt" if plan.mode == "fixed" else "floating_pt"
    with lava_errors("failed while running the network"), LavaSession(root, tag) as lava:
        for _ in range(clock.samples):
            lava.run(clock.steps)
            if progress is not None:
                progress(1)
        acc = np.asarray(root.acc.get(), np.float64).T
        counts = {k: np.asarray(p.counts.get()).astype(np.int64) for k, p in probes.items()}
        carried = {k: np.asarray(p.payload.get()).astype(np.int64)
                   for k, p in probes.items() if "levels" in plan.proc(k).params}
        rasters = {k: _unpack(np.asarray(p.raster.get()), clock.samples, clock.window,
                              plan.proc(k))
                   for k, p in probes.items()} if raster else {}
    return LavaResult(acc, counts, rasters, carried)


def run_lava(plan: Plan, currents: dict[str, np.ndarray], timesteps: int,
             raster: bool = False, batch: int = 32, progress: Progress | None = None,
             runner: Callable[..., LavaResult] = run_batch) -> LavaResult:
    """All samples, `batch` per Lava runtime (each costs a compile of about 0.3 s), each batch
    run by `runner` (lif_network.run_lif passes its own for stock-LIF plans)."""
    require_lava("--backend lava")
    n = len(next(iter(currents.values())))
    parts = []
    for start in range(0, n, batch):
        chunk = {k: v[start:start + batch] for k, v in currents.items()}
        parts.append(runner(plan, chunk, timesteps, raster, progress))
    return LavaResult(np.concatenate([p.acc for p in parts]),
                      {k: np.concatenate([p.counts[k] for p in parts]) for k in parts[0].counts},
                      {k: np.concatenate([p.rasters[k] for p in parts])
                       for k in parts[0].rasters},
                      {k: np.concatenate([p.payload[k] for p in parts])
                       for k in parts[0].payload})
