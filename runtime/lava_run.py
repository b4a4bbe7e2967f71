"""Run a compiled network in Lava (float for --target lava, fixed point for --target loihi), and
compare it with the NumPy simulator spike for spike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from snnc.compiler.errors import UsageError
from snnc.compiler.executor import check_input
from snnc.compiler.loihi.populations import input_currents
from snnc.compiler.targets import TARGETS
from snnc.compiler.targets import target as target_entry

from .results import RunResult

if TYPE_CHECKING:  # the network calls this module to run in Lava: no import at run time
    from .network import CompiledNetwork


def _mode(net: CompiledNetwork) -> str:
    """The plan mode, "float" or "fixed" (compiler/targets.py: the target's `lava`)."""
    mode = target_entry(net.target).lava
    if mode is None:
        lava = [f"--target {name} ({'fixed point' if t.fixed_point else 'float'})"
                for name, t in TARGETS.items() if t.lava]
        raise UsageError(f"this artifact was compiled for --target {net.target}; compile "
                         f"with {' or '.join(lava)} to run in Lava")
    return mode


def lava_trace(net: CompiledNetwork, x: np.ndarray, timesteps: int, raster: bool = False,
               progress: Any = None, conv: str = "lava") -> tuple[RunResult, Any]:
    """The RunResult of a Lava run and Lava's raw result (accumulators, counts, rasters).
    conv='lava' runs conv synapses as Lava's Conv where Lava can hold them (else Sparse);
    'sparse' runs every conv synapse as Sparse, 'dense' as Dense up to a size
    (backends/lava/plan.py)."""
    from snnc.backends.lava.lif_network import run_lif
    from snnc.backends.lava.lif_plan import is_stock
    from snnc.backends.lava.network import run_lava
    from snnc.backends.lava.sd_plan import build_any_plan as build_plan

    mode = _mode(net)
    x = check_input(net.graph, x)
    plan = build_plan(net.graph, mode, conv)
    if plan.decode == "sum":  # sigma-delta: the sink's sum of messages, not a rate
        raw = _sigma_delta(net, plan, x, timesteps, progress)
        outputs = raw.acc / plan.readout_scale + plan.readout_bias[None, :]
        outputs = outputs.reshape(len(x), *net.graph.output_node.shape).astype(np.float32)
        return RunResult(timesteps, outputs, dict(raw.counts), dict(raw.payload)), raw
    run = run_lif if is_stock(plan) else run_lava  # stock LIFs: io RingBuffers at the edge
    raw = run(plan, input_currents(net.graph, x, mode == "fixed"), timesteps,
              raster=raster, progress=progress)
    outputs = raw.acc / (plan.readout_scale * timesteps) + plan.readout_bias[None, :]
    outputs = outputs.reshape(len(x), *net.graph.output_node.shape).astype(np.float32)
    return RunResult(timesteps, outputs, dict(raw.counts), dict(raw.payload)), raw


def _sigma_delta(net: CompiledNetwork, plan: Any, x: np.ndarray, timesteps: int,
                 progress: Any) -> Any:
    """Stock processes, one fresh runtime per sample (backends/lava/sd_network.py); the
    messages are always recorded, since stock SigmaDelta processes count nothing."""
    from snnc.backends.lava.sd_network import run_sigma_delta
    from snnc.compiler.loihi.quantize_sigma_delta import quantize_input

    inputs = quantize_input(net.graph, x) if plan.mode == "fixed" else x.reshape(len(x), -1)
    return run_sigma_delta(plan, inputs, timesteps, raster=True, progress=progress)


def run_in_lava(net: CompiledNetwork, x: np.ndarray, timesteps: int,
                progress: Any = None, conv: str = "lava") -> RunResult:
    return lava_trace(net, x, timesteps, False, progress, conv)[0]


@dataclass(frozen=True)
class Comparison:
    agree: bool
    mismatches: dict[str, int]  # population -> spikes that differ (or 'output' entries)
    max_output_diff: float
    lava: RunResult


def compare_with_numpy(net: CompiledNetwork, x: np.ndarray, timesteps: int,
                       progress: Any = None, conv: str = "lava") -> Comparison:
    """Lava vs NumPy: fixed point (loihi) must agree bit for bit in every layer at every step
    (the payload n of every message of graded and signed layers, not only whether one was
    sent) and in the readout; float (lava) must give the same message counts, payloads and
    outputs within 1e-5 relative. Graded layers' payload totals count as `<layer>:payload`."""
    from snnc.backends.numpy import simulate
    from snnc.backends.numpy.loihi import simulate_loihi

    exact = target_entry(net.target).fixed_point
    result, raw = lava_trace(net, x, timesteps, raster=exact, progress=progress, conv=conv)
    if exact:
        ref = simulate_loihi(net.graph, x, [timesteps], rasters=True)
        mism = {k: int((raw.rasters[k] != ref.rasters[k]).sum()) for k in ref.rasters}
        mism.update(_payload_mismatches(result, {k: v[0] for k, v in ref.spikes.items()},
                                        {k: v[0] for k, v in ref.payload.items()}))
        mism["output"] = int((raw.acc != ref.acc).sum())
        diff = float(np.abs(raw.acc - ref.acc).max(initial=0))
        return Comparison(not any(mism.values()), mism, diff, result)
    sim = simulate(net.graph, x, [timesteps])  # the reference engine
    mism = {k: int((result.spikes[k] != v[0]).sum()) for k, v in sim.spikes.items()}
    mism.update(_payload_mismatches(result, {k: v[0] for k, v in sim.spikes.items()},
                                    {k: v[0] for k, v in sim.payload.items()}))
    scale = float(np.abs(sim.outputs[0]).max(initial=0)) or 1.0
    diff = float(np.abs(result.outputs - sim.outputs[0]).max(initial=0)) / scale
    mism["output"] = int(diff > 1e-5) + int(
        (result.predictions != sim.outputs[0].reshape(len(x), -1).argmax(1)).sum())
    return Comparison(not any(mism.values()), mism, diff, result)


def _payload_mismatches(lava: RunResult, spikes: dict[str, np.ndarray],
                        payload: dict[str, np.ndarray]) -> dict[str, int]:
    """Samples whose payload total (sum |n|) differs, per layer that either side reports
    payloads for (graded or signed); a layer without them carries its message count."""
    return {f"{k}:payload": int((lava.payload.get(k, lava.spikes[k])
                                 != payload.get(k, spikes[k])).sum())
            for k in sorted(set(lava.payload) | set(payload))}
