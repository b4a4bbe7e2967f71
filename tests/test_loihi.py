"""Loihi 2 lowering without Lava: lower-synapses, quantize-weights, the NumPy bit-exact `loihi`
mode and the plain-data Lava plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.backends.lava.plan import build_plan
from snnc.backends.numpy import simulate
from snnc.backends.numpy.loihi import simulate_loihi
from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.passes.lower_synapses import lower_synapses
from snnc.compiler.passes.quantize_weights import VTH_MAX, mantissa, quantize_weights
from snnc.compiler.populations import populations

DATA = Path(__file__).parent / "data"


def tiny_chain(w2: float = 0.5) -> object:
    """input(4) -> linear -> IF -> linear -> IF -> linear (readout)."""
    b = GraphBuilder((4,))
    b.add("fc1", "linear", ["x"], weight=np.eye(4) * 0.8, bias=np.zeros(4))
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=np.full((3, 4), w2), bias=[0.1, -0.2, 0.0])
    b.neuron("if2", "fc2", theta=2.0, v0=1.0)
    b.add("fc3", "linear", ["if2"], weight=[[1.0, -1.0, 0.5], [0.2, 0.3, -0.4]],
          bias=[0.0, 0.1])
    return b.graph(stage="snn")


def test_mantissa_follows_lava_sign_modes() -> None:
    assert mantissa(np.array([0.4, 7.0, 300.0])).tolist() == [0, 7, 255]
    assert mantissa(np.array([-7.0, -300.0, 0.0])).tolist() == [-7, -255, 0]
    mixed = mantissa(np.array([7.0, -7.2, 300.0, -300.0]))
    assert mixed.tolist() == [8, -8, 254, -256]  # even: Lava drops the lowest bit of mixed
    assert np.all(mixed % 2 == 0)


def test_lower_synapses_keeps_the_float_network() -> None:
    g = tiny_chain()
    lowered = lower_synapses(g)
    x = np.random.default_rng(0).uniform(0, 1.5, (16, 4)).astype(np.float32)
    a, b = simulate(g, x, [8, 20]), simulate(lowered, x, [8, 20])
    np.testing.assert_allclose(a.outputs, b.outputs, rtol=1e-5, atol=1e-6)
    pops = populations(lowered)
    assert [(p.name, p.depth, p.readout) for p in pops] == [
        ("if1", 1, False), ("if2", 2, False), (lowered.output, 3, True)]


def _pool_net(pool_after_conv: bool) -> object:
    conv = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1}
    b = GraphBuilder((1, 4, 4))
    b.add("c1", "conv", ["x"], conv, weight=np.ones((2, 1, 1, 1)), bias=[0, 0])
    b.neuron("if1", "c1", theta=1.0)
    src = b.add("c2", "conv", ["if1"], conv, weight=np.ones((2, 2, 1, 1)), bias=[0, 0]) \
        if pool_after_conv else "if1"
    b.add("mp", "maxpool", [src], {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4,
                                   "dilations": [1, 1], "ceil_mode": 0})
    b.add("fl", "flatten", ["mp"])
    b.add("fc", "linear", ["fl"], weight=np.ones((2, 8)), bias=[0, 0])
    return b.graph(stage="snn")


def test_maxpool_of_spikes_is_a_population_others_are_refused() -> None:
    with pytest.raises(ModelError, match="max pooling must read a spiking layer"):
        lower_synapses(_pool_net(pool_after_conv=True))
    g = lower_synapses(_pool_net(pool_after_conv=False))
    pops = populations(g)
    assert [(p.name, p.pool_of, p.depth) for p in pops[:2]] == [("if1", None, 1), ("mp", "if1", 1)]
    assert pops[-1].synapses[0].source == "mp" and pops[-1].synapses[0].delay == 1
    x = np.random.default_rng(3).uniform(0, 1, (6, 1, 4, 4)).astype(np.float32)
    fl = simulate(g, x, [16])
    lo = simulate_loihi(quantize_weights(g), x, [16])
    np.testing.assert_allclose(lo.outputs[0], fl.outputs[0], atol=0.05)


def test_quantize_weights_formats_and_reports_errors() -> None:
    q = quantize_weights(lower_synapses(tiny_chain(w2=0.37)))
    if2 = q.node("if2")
    assert 1 <= if2.params["q_vth"].min() and if2.params["q_vth"].max() <= VTH_MAX
    assert abs(int(if2.params["q_bias_mant"][0])) <= 4095
    quant = if2.meta["quant"]
    assert 0 <= quant["weight_rel_err"] < 0.01 and quant["theta_rel_err"] < 1e-3
    syn = next(n for n in q.nodes if "q_weight" in n.params and n.meta.get("synapse_from"))
    # weight normalisation: theta of the source (1.0) folded in; scale S = vth / theta
    s = float(if2.attrs["q_scale"])
    deq = syn.params["q_weight"] * 2.0 ** syn.attrs["q_weight_exp"] / s  # (m << e) / S
    np.testing.assert_allclose(deq, 0.37, rtol=0.01)
    assert q.meta["quantized"] == "loihi2"


def test_loihi_mode_matches_a_hand_computed_raster() -> None:
    """One input-fed IF population: S = 2048/theta, input 0.3*theta -> mantissa 614 << 6."""
    b = GraphBuilder((1,))
    b.add("fc1", "linear", ["x"], weight=[[1.0]], bias=[0.0])
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=[[1.0]], bias=[0.0])
    q = quantize_weights(lower_synapses(b.graph(stage="snn")))
    r = simulate_loihi(q, np.array([[0.3]], np.float32), [10])
    vth, v, spikes = 2048 * 64, 1024 * 64, []
    for _ in range(10):
        v += 614 * 64
        spikes.append(v >= vth)
        v -= vth * spikes[-1]
    assert r.rasters["if1"][0, :, 0].tolist() == spikes
    assert r.spikes["if1"][0, 0] == sum(spikes) == 3


def test_loihi_mode_lines_up_with_the_float_simulator() -> None:
    g = lower_synapses(tiny_chain())
    x = np.random.default_rng(1).uniform(0, 1.2, (32, 4)).astype(np.float32)
    fl = simulate(g, x, [16])
    lo = simulate_loihi(quantize_weights(g), x, [16])
    for name in ("if1", "if2"):  # same clock despite Lava's delays: counts nearly equal
        assert np.abs(lo.spikes[name][0] - fl.spikes[name][0]).max() <= 1
    np.testing.assert_allclose(lo.outputs[0], fl.outputs[0], atol=0.15)


@pytest.mark.parametrize("model", ["examples/digits/model.onnx", "digits_cnn_seed1.onnx"])
def test_quantized_accuracy_within_one_point_of_float(model: str, digits_calib: Path,
                                                      digits_test_arrays: tuple) -> None:
    path = DATA / model if "/" not in model else Path(__file__).parents[1] / model
    x, y = digits_test_arrays
    fl = snnc.compile(path, calib=digits_calib, target="numpy", preset="rate-p99.99").run(x, 32)
    lo = snnc.compile(path, calib=digits_calib, target="loihi", preset="rate-p99.99").run(x, 32)
    assert abs(lo.accuracy(y) - fl.accuracy(y)) <= 0.01
    assert lo.accuracy(y) > 0.95


def test_plan_is_plain_data() -> None:
    q = quantize_weights(lower_synapses(tiny_chain()))
    plan = build_plan(q, "fixed")
    kinds = [(p.name, p.kind) for p in plan.procs]
    assert kinds[0] == ("if1", "if") and ("if2", "if") in kinds
    assert [p.kind for p in plan.procs].count("dense") == 2
    assert plan.input_pops == ("if1",) and plan.lag == 2
    assert all(np.issubdtype(np.asarray(p.params.get("weights", 0)).dtype, np.integer)
               for p in plan.procs if p.kind == "dense")
    fplan = build_plan(lower_synapses(tiny_chain()), "float")
    dense = next(p for p in fplan.procs if p.kind == "dense")
    np.testing.assert_allclose(dense.params["weights"], 0.5 * 1.0)  # theta_src folded in
    with pytest.raises(UsageError, match="--target loihi"):
        build_plan(lower_synapses(tiny_chain()), "fixed")


def test_lava_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import snnc.backends.lava as lava_backend

    monkeypatch.setattr(lava_backend, "lava_available", lambda: False)
    with pytest.raises(UsageError, match="pip install .*lava-nc==0.10.0"):
        lava_backend.require_lava()


@pytest.mark.parametrize("name", ["digits_vgg_maxpool.onnx", "digits_resnet.onnx"])
def test_quantized_accuracy_maxpool_and_residual(name: str, digits_calib: Path,
                                                 digits_test_arrays: tuple) -> None:
    x, y = digits_test_arrays
    fl = snnc.compile(DATA / name, calib=digits_calib, preset="rate-p99.99").run(x, 32)
    lo = snnc.compile(DATA / name, calib=digits_calib, target="loihi",
                      preset="rate-p99.99").run(x, 32)
    assert abs(lo.accuracy(y) - fl.accuracy(y)) <= 0.01 and lo.accuracy(y) > 0.95


def test_skip_connections_get_delays_and_restart_at_their_depth() -> None:
    """if1 -> if2 -> if3 plus a skip if1 -> if3: the skip needs delay 2 to line up."""
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], weight=np.eye(3), bias=np.zeros(3))
    b.neuron("if1", "fc1", theta=1.0)
    b.add("fc2", "linear", ["if1"], weight=np.eye(3) * 0.5, bias=np.zeros(3))
    b.neuron("if2", "fc2", theta=1.0)
    b.add("fc3", "linear", ["if2"], weight=np.eye(3), bias=np.zeros(3))
    b.add("sum", "add", ["fc3", "if1"])
    b.neuron("if3", "sum", theta=2.0)
    b.add("fc4", "linear", ["if3"], weight=np.ones((2, 3)), bias=np.zeros(2))
    g = lower_synapses(b.graph(stage="snn"))
    pops = {p.name: p for p in populations(g)}
    assert {s.source: s.delay for s in pops["if3"].synapses} == {"if2": 1, "if1": 2}
    plan = build_plan(g, "float")
    assert [plan.proc(f"if{k}").depth for k in (1, 2, 3)] == [1, 2, 3]  # restart steps
    assert sorted(p.params["delay"] for p in plan.procs if p.kind == "dense") == [1, 1, 1, 2]
    x = np.random.default_rng(2).uniform(0, 1, (8, 3)).astype(np.float32)
    lo = simulate_loihi(quantize_weights(g), x, [20])
    fl = simulate(g, x, [20])
    assert np.abs(lo.spikes["if3"][0] - fl.spikes["if3"][0]).max() <= 2


def test_cli_backend_lava_without_lava_says_what_to_install(
        tmp_path: Path, digits_model: Path, digits_calib: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import snnc.backends.lava as lava_backend
    from snnc.cli import main

    out = tmp_path / "net.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--target",
                 "lava", "-o", str(out)]) == 0
    monkeypatch.setattr(lava_backend, "lava_available", lambda: False)
    assert main(["run", str(out), "--data", str(digits_calib), "--backend", "lava"]) == 2
    assert "lava-nc==0.10.0" in capsys.readouterr().err
    assert main(["run", str(out), "--data", str(digits_calib), "--timesteps", "4"]) == 0


def reset_zero(graph: object) -> object:
    """The same SNN with every IF neuron reset to zero (what --neuron lif produces)."""
    return graph.replace([n.with_attrs(reset="zero") if n.op == "if" else n
                          for n in graph.nodes])


def test_reset_to_zero_matches_a_hand_computed_raster() -> None:
    """Input 0.3 theta, v0 = 0.5 theta, vth = 2048: subtraction keeps the residue, the stock
    LIF (spike on v > vth, v = 0) drops it and fires every 4th step after the first."""
    b = GraphBuilder((1,))
    b.add("fc1", "linear", ["x"], weight=[[1.0]], bias=[0.0])
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=[[1.0]], bias=[0.0])
    x = np.array([[0.3]], np.float32)
    sub = simulate_loihi(quantize_weights(lower_synapses(b.graph(stage="snn"))), x, [10])
    zero_graph = quantize_weights(lower_synapses(reset_zero(b.graph(stage="snn"))))
    zero = simulate_loihi(zero_graph, x, [10])
    assert zero_graph.node("if1").params["q_v0"][0] == 1024 * 64  # whole weight units
    # v (in units of 64): 1638, 2252 -> spike, 0 + 614 ... subtract: residue 204 carries on
    assert np.flatnonzero(sub.rasters["if1"][0, :, 0]).tolist() == [1, 5, 8]
    assert np.flatnonzero(zero.rasters["if1"][0, :, 0]).tolist() == [1, 5, 9]
    v, spikes = 0, []
    for t in range(10):
        v += 614 * 64 + (1024 * 64 if t == 0 else 0)
        spikes.append(v > 2048 * 64)
        v = 0 if spikes[-1] else v
    assert zero.rasters["if1"][0, :, 0].tolist() == spikes


def test_reset_to_zero_gets_one_threshold_per_population() -> None:
    """Per-channel thresholds: the stock LIF has one vth, so weights, bias and v0 of each
    neuron are scaled by max(theta) / theta; the network stays close to the float one."""
    conv = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    rng = np.random.default_rng(5)
    b = GraphBuilder((1, 4, 4))
    b.add("c1", "conv", ["x"], conv, weight=rng.uniform(0, 1, (2, 1, 3, 3)), bias=[0, 0.1])
    b.neuron("if1", "c1", theta=np.array([1.0, 2.0]).reshape(2, 1, 1), v0=0.5)
    b.add("c2", "conv", ["if1"], conv, weight=rng.normal(0, 0.5, (3, 2, 3, 3)),
          bias=[0.05, 0, -0.05])
    b.neuron("if2", "c2", theta=np.array([1.5, 0.5, 1.0]).reshape(3, 1, 1), v0=0.25)
    b.add("fl", "flatten", ["if2"])
    b.add("fc", "linear", ["fl"], weight=rng.normal(0, 0.3, (2, 48)), bias=[0, 0])
    g = lower_synapses(reset_zero(b.graph(stage="snn")))
    q = quantize_weights(g)
    for name in ("if1", "if2"):
        assert len(set(q.node(name).params["q_vth"].tolist())) == 1
        assert np.all(q.node(name).params["q_v0"] % 64 == 0)
    x = rng.uniform(0, 1, (16, 1, 4, 4)).astype(np.float32)
    fl, lo = simulate(g, x, [64]), simulate_loihi(q, x, [64])
    for name in ("if1", "if2"):
        assert abs(lo.spikes[name].sum() / fl.spikes[name].sum() - 1) < 0.03, name
    np.testing.assert_allclose(lo.outputs[0], fl.outputs[0], atol=0.15)


def test_signed_neurons_are_refused_for_loihi() -> None:
    g = tiny_chain()
    g = g.replace([n.with_attrs(signed=True) if n.name == "if2" else n for n in g.nodes])
    with pytest.raises(ModelError, match="if2.*--neuron if or lif"):
        quantize_weights(lower_synapses(g))


def test_conv_windows_compose_and_are_verified(digits_model: Path,
                                               digits_calib: Path) -> None:
    """conv -> one 3x3 window; avgpool 2x2/2 then conv 3x3 -> one 6x6 window, stride 2, pad 2;
    the readout (flatten + linear) is no window. kernel_of accepts only exact convolutions."""
    from snnc.compiler.conv_window import kernel_of

    q = snnc.compile(digits_model, calib=digits_calib, target="loihi", preset="rate-p99.99").graph
    syns = [n for n in q.nodes if "synapse_from" in n.meta]
    windows = [n.meta.get("window") for n in syns]
    assert [w and (w["kernel"], w["strides"], w["pads"]) for w in windows] == [
        ([3, 3], [1, 1], [1, 1]), ([6, 6], [2, 2], [2, 2]), None]
    for syn, w in zip(syns[:2], windows[:2], strict=True):
        kernel = kernel_of(syn.params["q_weight"], w)
        assert kernel is not None and kernel.shape[2:] == tuple(w["kernel"])
        broken = syn.params["q_weight"].copy()
        broken[0, -1] += 2  # one synapse that no kernel explains
        assert kernel_of(broken, w) is None
    kinds = {c: [p.kind for p in build_plan(q, "fixed", conv=c).procs
                 if p.kind in ("dense", "conv")] for c in ("lava", "dense")}
    assert kinds == {"lava": ["conv", "conv", "dense"], "dense": ["dense"] * 3}
    conv = next(p for p in build_plan(q, "fixed").procs if p.kind == "conv")
    assert conv.params["weight"].shape == (32, 3, 3, 16)  # Lava: (C_out, kW, kH, C_in)
