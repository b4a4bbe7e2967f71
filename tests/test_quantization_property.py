"""Property test of the Loihi 2 formats (compiler/loihi/quantize_weights.py) over random small
CNNs (tests/netgen.py): quantize -> dequantize is off by at most half a quantization step for
every value of every population and synapse layer, except values the format clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from netgen import random_cnn
from test_properties import _inputs, nets

import snnc
from snnc.compiler.errors import SnncError
from snnc.compiler.ir.graph import Graph
from snnc.compiler.loihi.formats import BIAS_MANT_MAX, INPUT_BIAS_EXP
from snnc.compiler.loihi.populations import (
    Population,
    input_currents,
    populations,
    spike_theta,
    threshold_gain,
)
from snnc.compiler.loihi.synapses import matrix
from snnc.frontends.onnx import import_model, prepare

REL_TOL = 1e-9  # float64 round-off of the dequantization itself, relative to a step


def _full(a: object, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, np.float64), shape).reshape(-1)


def _assert_half_step(what: str, deq: np.ndarray, ref: np.ndarray, step: float | np.ndarray,
                      keep: np.ndarray | None = None) -> None:
    err = np.abs(deq - ref)
    bound = 0.5 * np.asarray(step, np.float64) * (1 + REL_TOL) + 1e-12
    bad = err > bound
    if keep is not None:
        bad &= keep
    assert not bad.any(), (f"{what}: {int(bad.sum())} values beyond half a step, worst "
                           f"{float(np.max(err - bound, where=bad, initial=0)):.3g} over")


def _check_weights(graph: Graph, pop: Population, gain: np.ndarray, alpha: float) -> int:
    """Every synapse matrix of `pop`; returns how many weights the 8-bit mantissa clipped."""
    clipped = 0
    for syn in pop.synapses:
        src = graph.node(syn.source)
        theta_src = _full(spike_theta(graph, syn.source), src.shape)
        in_shape = graph.node(syn.node.inputs[0]).shape
        weight = matrix(syn.node, in_shape).toarray()
        folded = weight * theta_src[None, :] * gain[:, None]
        # the matrix's sign mode fixes the mantissa range and step (mixed-sign: even values)
        if np.all(folded >= 0):
            lo, hi, step = 0, 255, 1
        elif np.all(folded <= 0):
            lo, hi, step = -255, 0, 1
        else:
            lo, hi, step = -256, 254, 2
        assert syn.node.params["q_weight"].shape == syn.node.params["weight"].shape
        q = matrix(syn.node, in_shape, "q_weight").toarray()
        assert q.shape == folded.shape and np.all((q >= lo) & (q <= hi)), syn.node.name
        if step == 2:
            assert np.all(q % 2 == 0), f"{syn.node.name}: odd mixed-sign mantissa"
        scaled = alpha * folded
        # beyond the mantissa range a weight is clipped on purpose (the clip percentile that
        # minimises the total squared error): its error is not bounded by half a step
        # (with round-off slack: alpha = 254 / max|W'| puts the largest at 254.00000000000003)
        inside = (scaled >= lo - 1e-6) & (scaled <= hi + 1e-6)
        clipped += int((~inside).sum())
        _assert_half_step(f"{syn.node.name} weight", q / alpha, folded, step / alpha, inside)
    return clipped


def _check_population(graph: Graph, pop: Population, avoidable_bias_clip: bool = True) -> int:
    """Every parameter of `pop`; returns how many weights the 8-bit mantissa clipped.
    `avoidable_bias_clip=False`: a bias may only be clipped at weight exponent 0, where no
    smaller scale could have held it."""
    node = pop.node
    if pop.pool_of is not None:
        assert not any(k.startswith("q_") for k in node.params), "max pooling has no params"
        return 0
    gain = threshold_gain(node)
    clipped, exp = 0, 0  # input-fed: S = 2048 / max(theta) is fixed
    if pop.synapses:
        syn0 = pop.synapses[0].node
        exp = int(syn0.attrs["q_weight_exp"])
        assert all(s.node.attrs["q_weight_exp"] == exp for s in pop.synapses)
        scale = float((syn0 if pop.readout else node).attrs["q_scale"])
        alpha = scale / 2**exp  # S = alpha * 2**e, exact in floating point
        clipped = _check_weights(graph, pop, gain, alpha)
        if node.meta["quant"]["clip_percentile"] == 100.0:
            assert clipped == 0, f"{node.name}: clip at the maximum but {clipped} clipped"
        if pop.readout:
            return clipped  # the readout keeps its float bias, added by the host
        bias = pop.bias
    else:
        scale = float(node.attrs["q_scale"])
        bias = np.zeros(pop.size)  # the input's static current arrives with the input
    n = pop.size
    if "i_shift" in node.params:
        bias = bias + _full(node.params["i_shift"], node.shape)
    bias = bias * gain

    theta = _full(node.params["theta"], node.shape)
    if pop.reset_zero:  # one threshold: theta * threshold_gain = max(theta) everywhere
        theta = np.full(n, theta.max())
    vth = node.params["q_vth"].astype(np.float64)
    _assert_half_step(f"{node.name} threshold", vth / scale, theta, 1 / scale)

    v0 = _full(node.params["v0"], node.shape) * gain
    q_v0 = node.params["q_v0"].astype(np.float64)
    # stock LIF: v0 enters as whole weight units (<< 6), a coarser step of 1 / S
    v0_step = 1 / scale if pop.reset_zero else 1 / (64 * scale)
    if pop.reset_zero:
        assert np.all(q_v0 % 64 == 0), node.name
    _assert_half_step(f"{node.name} v0", q_v0 / (64 * scale), v0, v0_step)

    mant = node.params["q_bias_mant"].astype(np.float64)
    bexp = int(node.attrs["q_bias_exp"])
    assert np.all(np.abs(mant) <= BIAS_MANT_MAX) and 0 <= bexp <= 7, node.name
    b_step = 2**bexp / (64 * scale)
    # a bias beyond 13 bits at the largest exponent (7) is clipped to +-4095 mantissas (the
    # format's limit); whether a smaller weight exponent should have avoided it: see the
    # the test at the end
    inside = np.abs(64 * scale * bias) / 2**bexp <= BIAS_MANT_MAX
    assert bexp == 7 or inside.all(), f"{node.name}: bias clipped below exponent 7"
    assert avoidable_bias_clip or exp == 0 or inside.all(), (
        f"{node.name}: {int((~inside).sum())} biases clipped at weight exponent {exp}")
    _assert_half_step(f"{node.name} bias", mant * 2**bexp / (64 * scale), bias, b_step, inside)
    return clipped


def _check_input_currents(graph: Graph, x: np.ndarray) -> None:
    """The direct-encoded input (a bias of exponent 6: weight units, step 1 / S)."""
    fixed, exact = input_currents(graph, x, fixed=True), input_currents(graph, x, fixed=False)
    assert fixed.keys() == exact.keys() and fixed
    for name, mant in fixed.items():
        scale = float(graph.node(name).attrs["q_input_scale"])
        step = 2**INPUT_BIAS_EXP / (64 * scale)
        # a current beyond +-4095 mantissas (two thresholds) is clipped: rate-coded input
        # cannot exceed one spike per step anyway
        inside = np.abs(exact[name] * scale) <= BIAS_MANT_MAX
        _assert_half_step(f"{name} input current", mant * step, exact[name], step, inside)


SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _compile_or_refuse(spec: dict, outcomes: list[bool], **options: object
                       ) -> snnc.runtime.CompiledNetwork | None:
    """The loihi network, or None (recorded) where snnc refuses it, e.g. a layer outside
    Loihi's ranges: refused, not wrong; the tests assert that most examples compile."""
    graph = import_model(prepare(random_cnn(**spec)))
    try:
        net = snnc.compile(graph, calib=_inputs(spec), target="loihi", preset="rate-p99.99",
                           timesteps=4, **options)
    except SnncError:
        outcomes.append(False)
        return None
    outcomes.append(True)
    return net


def _assert_most_compiled(outcomes: list[bool]) -> None:
    assert outcomes and sum(outcomes) >= len(outcomes) / 2, (
        f"only {sum(outcomes)} of {len(outcomes)} examples compiled")


def test_dequantized_loihi_values_within_half_a_step() -> None:
    outcomes: list[bool] = []

    @SETTINGS
    @given(nets, st.sampled_from(["v0", "input"]), st.sampled_from([None, "lif"]))
    def check(spec: dict, shift: str, neuron: str | None) -> None:
        net = _compile_or_refuse(spec, outcomes, shift=shift, neuron=neuron)
        assume(net is not None)
        assert net is not None
        q = net.graph
        assert q.meta["quantized"] == "loihi2"
        pops = populations(q)
        assert pops[-1].readout
        for pop in pops:
            _check_population(q, pop)
        _check_input_currents(q, _inputs(spec))

    check()
    _assert_most_compiled(outcomes)


def test_digits_example_within_half_a_step(digits_model: Path, digits_calib: Path) -> None:
    """The trained digits CNN (its readout's clip level is the 99.9th percentile)."""
    with np.load(digits_calib, allow_pickle=False) as f:
        x = f["x"][:32]
    q = snnc.compile(digits_model, calib=digits_calib, target="loihi",
                     preset="rate-p99.99").graph
    pops = populations(q)
    assert any(p.synapses and p.node.meta["quant"]["clip_percentile"] < 100 for p in pops)
    for pop in pops:
        _check_population(q, pop, avoidable_bias_clip=False)
    _check_input_currents(q, x)


def test_biases_are_clipped_only_when_no_scale_holds_them() -> None:
    outcomes: list[bool] = []

    @SETTINGS
    @given(nets, st.sampled_from([None, "lif"]))
    def check(spec: dict, neuron: str | None) -> None:
        net = _compile_or_refuse(spec, outcomes, shift="input", neuron=neuron)
        assume(net is not None)
        assert net is not None
        for pop in populations(net.graph):
            _check_population(net.graph, pop, avoidable_bias_clip=False)

    check()
    _assert_most_compiled(outcomes)
