"""The conversion methods of issue 4 on hand-checkable networks: neuron kinds (hand-computed
spike rasters), the half-step shift's three forms, MMSE thresholds, layer-wise calibration,
spike-count decoding, and the per-layer report of `snnc eval`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snnc
from snnc.backends.numpy import simulate
from snnc.compiler.errors import PassError, UsageError
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.passes.shift_bias import shift_bias
from snnc.compiler.stats import PositiveHistogram
from snnc.evaluate import evaluate


def _two_layer(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> tuple[Path, Path]:
    """input(2) -> Gemm(identity) -> Clip(0, 1) -> Gemm(identity) -> output(2)."""
    eye = numpy_helper.from_array(np.eye(2, dtype=np.float32), "eye")
    zero = numpy_helper.from_array(np.zeros(2, np.float32), "zero")
    lo = numpy_helper.from_array(np.array(0.0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(1.0, np.float32), "hi")
    nodes = [helper.make_node("Gemm", ["x", "eye", "zero"], ["h"], transB=1),
             helper.make_node("Clip", ["h", "lo", "hi"], ["a"]),
             helper.make_node("Gemm", ["a", "eye", "zero"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", 2])], [eye, zero, lo, hi])
    model = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    data = tmp_path / "data.npz"
    np.savez(data, x=x.astype(np.float32), y=y)
    return model, data


def test_per_layer_report_on_a_hand_checked_two_layer_net(tmp_path: Path) -> None:
    # V(0) = 0.5, theta = 1. Input 0.3: V = .8, 1.1 (spike) .1, .4, .7 -> 1 spike in 4 steps.
    # Input 0.75: 1.25 (spike) .25, 1.0 (spike) 0, .75, 1.5 (spike) .5 -> 3 spikes.
    model, data = _two_layer(tmp_path, np.array([[0.3, 0.75]]), np.array([1]))
    report = evaluate(model, data, [1, 4], presets=["qcfs"], per_layer=True)
    rows = {r["timesteps"]: r for r in report["per_layer"]}
    ann_norm = np.hypot(0.3, 0.75)
    # T=4: SNN [0.25, 0.75] vs ANN [0.3, 0.75]; 4 spikes in 2 neurons x 4 steps
    assert rows[4]["error"] == pytest.approx(0.05 / ann_norm, rel=1e-5)
    assert rows[4]["rate"] == pytest.approx(0.5)
    assert rows[4]["saturated"] == 0 and rows[4]["silent"] == 0
    # T=1: 0.8 does not fire, 1.25 does: SNN [0, 1]
    assert rows[1]["error"] == pytest.approx(np.hypot(0.3, 0.25) / ann_norm, rel=1e-5)
    assert rows[1]["saturated"] == 0.5 and rows[1]["silent"] == 0.5
    snn = {r["timesteps"]: r for r in report["snn"]}
    assert snn[4]["spikes_per_sample"] == 4 and snn[1]["spikes_per_sample"] == 1
    # 2 spikes per neuron per sample reach the 4 synapses of the second layer
    assert snn[4]["sops_per_sample"] == pytest.approx(4 / 2 * 4)
    assert report["ann_macs_per_sample"] == 8
    # the report's plots and page are made from exactly these numbers
    from snnc.report import write_report

    page = write_report(report, tmp_path / "report")
    for plot in ("accuracy", "firing_rate", "conversion_error", "spikes_sops"):
        assert (tmp_path / "report" / f"{plot}.png").stat().st_size > 1000
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 4
    # the per-layer table holds the hand-computed values
    assert "<td>clip1</td><td>4</td><td>0.5</td><td>0.0619</td><td>0</td><td>0</td>" in html
    assert "<td>clip1</td><td>1</td><td>0.5</td><td>0.4834</td><td>0.5</td><td>0.5</td>" in html


def _counts(graph, name: str, x: float, steps: int) -> list[int]:
    """Net spike count of neuron `name` after each of 1..steps time steps."""
    got: list[int] = []
    simulate(graph, np.array([[x]], np.float32), list(range(1, steps + 1)), record=[name],
             observe=lambda k, t, chunk, net: got.append(int(net[name].sum())))
    return got


def _neuron_graph(v0: float, **attrs):
    b = GraphBuilder((1,))
    b.add("n", "if", ["x"], {"reset": "subtract", **attrs}, theta=1.0, v0=v0)
    return b.graph(stage="snn")


def test_neuron_kinds_against_hand_computed_potentials() -> None:
    # constant input 0.6 from V(0)=0.5, theta=1: V = 1.1 s .1, .7, 1.3 s .3, .9, 1.5 s .5, 1.1 s
    assert _counts(_neuron_graph(0.5), "n", 0.6, 6) == [1, 1, 2, 2, 3, 4]
    # reset to zero loses the residue: 1.1 s 0, .6, 1.2 s 0, .6, 1.2 s 0, .6
    assert _counts(_neuron_graph(0.5, reset="zero"), "n", 0.6, 6) == [1, 1, 2, 2, 3, 3]
    # with input 0.8 the two differ: subtract 1.3 s .3, 1.1 s .1, .9, 1.7 s .7 (3 in 4)
    assert _counts(_neuron_graph(0.5), "n", 0.8, 4) == [1, 2, 2, 3]
    # zero: 1.3 s 0, .8, 1.6 s 0, .8 (2 in 4)
    assert _counts(_neuron_graph(0.5, reset="zero"), "n", 0.8, 4) == [1, 1, 2, 2]


def test_signed_neuron_takes_back_an_early_spike() -> None:
    # V(0)=1.5, input -0.4: V 1.1 -> spike (+1), .1; -.3 < 0 with net 1 -> spike -1, V .7;
    # .3; -.1 < 0 but net 0 -> no spike
    assert _counts(_neuron_graph(1.5, signed=True), "n", -0.4, 4) == [1, 0, 0, 0]
    # an unsigned neuron keeps the early spike
    assert _counts(_neuron_graph(1.5), "n", -0.4, 4) == [1, 1, 1, 1]


def test_shift_forms_and_refusal_to_shift_twice() -> None:
    b = GraphBuilder((3,))
    lin = b.add("lin", "linear", ["x"], weight=np.eye(3), bias=np.zeros(3))
    n = b.neuron("n", lin, theta=2.0)
    graph = b.graph(stage="snn")
    v0 = shift_bias(graph, "v0")
    assert float(v0.node(n).params["v0"]) == 1.0
    inp = shift_bias(graph, "input", 4)
    assert float(inp.node(n).params["i_shift"]) == 0.25
    bias = shift_bias(graph, "bias", 4)
    np.testing.assert_allclose(bias.node(lin).params["bias"], 0.25)
    assert "i_shift" not in bias.node(n).params
    x = np.array([[0.3, 1.1, 1.9]], np.float32)
    same = [simulate(g, x, [4]).outputs[0] for g in (inp, bias)]
    np.testing.assert_allclose(same[0], same[1])
    with pytest.raises(PassError, match="already applied"):
        shift_bias(v0, "bias", 4)
    with pytest.raises(UsageError, match="time steps"):
        shift_bias(graph, "bias")


def test_mmse_threshold_minimises_the_t_step_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, size=(20000, 1)).astype(np.float32)
    hist = PositiveHistogram(1, 4096)
    hist.add(x)
    for t in (1, 4, 16):
        theta = float(hist.mmse_threshold(t)[0])

        def err(th: float, t: int = t) -> float:
            q = np.clip(np.floor(x * t / th + 0.5), 0, t) * th / t
            return float(((x - q) ** 2).mean())

        # no better threshold on a fine grid, within the histogram's resolution
        grid = np.linspace(0.05, float(x.max()), 400)
        assert err(theta) <= min(err(g) for g in grid) * 1.01
    # fewer steps want a lower threshold: saturating a few outliers costs less than coarse steps
    assert hist.mmse_threshold(1)[0] < hist.mmse_threshold(16)[0] < x.max()


def test_layer_wise_calibration_matches_each_layers_mean_to_the_ann(digits_model: Path,
                                                                     digits_calib: Path,
                                                                     digits_test: Path) -> None:
    """Calibration (bias, then per-neuron V(0)) makes every layer's time-averaged output match
    the ANN's on the calibration set on average, layer after layer; at T=1 that is worth
    accuracy on held-out data too."""
    from snnc.compiler.passes.calibrate import _ann_mean, _snn_mean
    from snnc.runtime import load_data

    calib = load_data(digits_calib)[0][:256]
    x, y = load_data(digits_test, need_labels=True)
    nets = {m: snnc.compile(digits_model, calib=calib, timesteps=1, preset="rate-p99.99",
                            calibrate=m) for m in ("none", "bias+potential")}
    totals = dict.fromkeys(nets, 0.0)
    for name in [n.name for n in nets["none"].graph.nodes if n.op == "if"]:
        gaps = {}
        for method, net in nets.items():
            upto = net.graph.replace(output=name)
            diff = (_ann_mean(upto, calib, name, 128)
                    - _snn_mean(upto, calib, upto.node(name), 1, simulate, 128))
            gaps[method] = float(np.abs(diff).mean())
            totals[method] += gaps[method]
        print(name, gaps)
        assert gaps["bias+potential"] < gaps["none"], name
    # at T=1 a neuron's output is a step function of its potential, so one correction per
    # layer cannot match the mean exactly; the deeper layers gain most
    assert totals["bias+potential"] < 0.6 * totals["none"]
    accs = {m: float((net.simulate(x, [1]).outputs[0].argmax(1) == y).mean())
            for m, net in nets.items()}
    assert accs["bias+potential"] > accs["none"]


def test_spike_count_decoding_makes_the_last_layer_spike(digits_model: Path,
                                                         digits_calib: Path) -> None:
    net = snnc.compile(digits_model, calib=digits_calib, timesteps=16, decode="spikes",
                       calibrate="none")
    assert net.graph.output_node.op == "if"
    assert net.options["decode"] == "spikes"


def test_signed_neurons_are_refused_on_netx(digits_model: Path, digits_calib: Path) -> None:
    """(lava and loihi carry them as signed payloads: tests/test_graded_lava.py)"""
    with pytest.raises(UsageError, match="signed"):
        snnc.compile(digits_model, calib=digits_calib, target="netx", neuron="signed")


def test_nir_export_refuses_signed_neurons(digits_model: Path, digits_calib: Path) -> None:
    from snnc.backends.nir.export import to_nir
    from snnc.compiler.errors import ModelError

    net = snnc.compile(digits_model, calib=digits_calib, timesteps=4, preset="rate-p99.99",
                       neuron="signed")
    with pytest.raises(ModelError, match="signed"):
        to_nir(net.graph)
