"""Behaviour of the compiler passes: every rewrite is checked against the reference executor
(the graph is run before and after the pass), and thresholds are recomputed independently from
the activations that `run_all` returns."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import max_rel_error
from onnx import numpy_helper
from onnx.parser import parse_model

from snnc.compiler.errors import (
    DataError,
    InternalError,
    ModelError,
    PassError,
    SnncError,
    UsageError,
)
from snnc.compiler.executor import run, run_all
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.printer import to_text
from snnc.compiler.ir.verify import verify
from snnc.compiler.passes import (
    PASSES,
    DumpSpec,
    NormSpec,
    PassOptions,
    convert,
    fold_batchnorm,
    normalize_thresholds,
    run_pipeline,
    shift_bias,
)
from snnc.compiler.passes.normalize_thresholds import LAYER_BINS
from snnc.compiler.passes.recognise_activations import recognise_activations
from snnc.frontends.onnx import import_model, prepare

F32 = np.float32
CONV = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}


def rng_for(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def conv_params(rng: np.random.Generator, out_c: int, in_c: int, k: int = 3) -> dict:
    return {"weight": rng.normal(0, 0.5, (out_c, in_c, k, k)),
            "bias": rng.normal(0, 0.2, out_c)}


def linear_params(rng: np.random.Generator, out_f: int, in_f: int) -> dict:
    return {"weight": rng.normal(0, 0.5, (out_f, in_f)), "bias": rng.normal(0, 0.2, out_f)}


def bn_params(rng: np.random.Generator, c: int) -> dict:
    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)  # negative gammas too
    return {"gamma": gamma, "beta": rng.normal(0, 1, c), "mean": rng.normal(0, 1, c),
            "var": rng.uniform(0.1, 3.0, c)}


def bn(b: GraphBuilder, name: str, inp: str, rng: np.random.Generator) -> str:
    c = b.shape(inp)[0]
    return b.add(name, "batchnorm", [inp], {"epsilon": 1e-3}, **bn_params(rng, c))


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def snapshot(graph: Graph) -> dict[str, dict[str, np.ndarray]]:
    return {n.name: {k: v.copy() for k, v in n.params.items()} for n in graph.nodes}


def assert_untouched(graph: Graph, before: dict[str, dict[str, np.ndarray]]) -> None:
    """Passes build new nodes: the input graph's arrays must be exactly as they were."""
    for n in graph.nodes:
        for k, v in n.params.items():
            np.testing.assert_array_equal(v, before[n.name][k])


def onnx_graph(text: str, **consts: np.ndarray) -> Graph:
    model = parse_model(text)
    model.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(v, F32), k) for k, v in consts.items())
    return import_model(prepare(model))


# ---------------------------------------------------------------------------- fold-batchnorm


def test_conv_bn_folds_into_the_conv() -> None:
    rng = rng_for(1)
    b = GraphBuilder((2, 6, 6))
    bn(b, "bn1", b.add("conv1", "conv", ["x"], CONV, **conv_params(rng, 4, 2)), rng)
    b.add("relu1", "relu", ["bn1"])
    g = b.graph()
    x = rng.normal(size=(8, 2, 6, 6)).astype(F32)
    before, params = run(g, x), snapshot(g)

    folded = fold_batchnorm(g)
    verify(folded)
    assert "batchnorm" not in ops(folded) and "affine" not in ops(folded)
    assert folded.node("relu1").inputs == ("conv1",)
    assert max_rel_error(run(folded, x), before) <= 1e-5
    assert not np.allclose(folded.node("conv1").params["weight"], params["conv1"]["weight"])
    assert_untouched(g, params)


def test_linear_bn_folds_into_the_linear() -> None:
    rng = rng_for(2)
    b = GraphBuilder((7,))
    bn(b, "bn1", b.add("fc1", "linear", ["x"], **linear_params(rng, 5, 7)), rng)
    g = b.graph()  # the BN is the graph output: the output must move to the linear
    x = rng.normal(size=(16, 7)).astype(F32)
    before = run(g, x)

    folded = fold_batchnorm(g)
    verify(folded)
    assert ops(folded) == ["input", "linear"]
    assert folded.output == "fc1"
    assert max_rel_error(run(folded, x), before) <= 1e-5


def test_bn_chain_and_per_channel_affine_fold_together() -> None:
    rng = rng_for(3)
    b = GraphBuilder((3, 5, 5))
    conv = b.add("conv1", "conv", ["x"], CONV, **conv_params(rng, 4, 3))
    first = bn(b, "bn1", conv, rng)
    b.add("aff1", "affine", [first], scale=rng.uniform(0.5, 2, (4, 1, 1)), shift=F32(0.3))
    b.add("relu1", "relu", ["aff1"])
    g = b.graph()
    x = rng.normal(size=(4, 3, 5, 5)).astype(F32)
    before = run(g, x)

    folded = fold_batchnorm(g)
    assert ops(folded) == ["input", "conv", "relu"]
    assert max_rel_error(run(folded, x), before) <= 1e-5


def test_bn_after_a_shared_conv_becomes_affine() -> None:
    rng = rng_for(4)
    b = GraphBuilder((2, 5, 5))
    conv = b.add("conv1", "conv", ["x"], CONV, **conv_params(rng, 3, 2))
    bn(b, "bn1", conv, rng)
    b.add("sum", "add", ["bn1", "conv1"])  # the conv output is also used unnormalized
    g = b.graph()
    x = rng.normal(size=(5, 2, 5, 5)).astype(F32)
    before, params = run(g, x), snapshot(g)

    folded = fold_batchnorm(g)
    verify(folded)
    assert folded.node("bn1").op == "affine"
    np.testing.assert_array_equal(folded.node("conv1").params["weight"],
                                  params["conv1"]["weight"])
    np.testing.assert_array_equal(folded.node("conv1").params["bias"], params["conv1"]["bias"])
    assert max_rel_error(run(folded, x), before) <= 1e-5


@pytest.mark.parametrize("after_relu", [False, True])
def test_standalone_bn_becomes_affine(after_relu: bool) -> None:
    rng = rng_for(5)
    b = GraphBuilder((3, 4, 4))
    src = b.add("relu0", "relu", ["x"]) if after_relu else "x"
    bn(b, "bn1", src, rng)
    b.add("conv1", "conv", ["bn1"], CONV, **conv_params(rng, 2, 3))
    g = b.graph()
    x = rng.normal(size=(6, 3, 4, 4)).astype(F32)
    before = run(g, x)

    folded = fold_batchnorm(g)
    verify(folded)
    assert folded.node("bn1").op == "affine"
    assert "batchnorm" not in ops(folded)
    assert max_rel_error(run(folded, x), before) <= 1e-5


def test_matmul_add_from_onnx_folds_into_the_bias() -> None:
    rng = rng_for(6)
    g = onnx_graph("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 5] x) => (float[N, 3] y) {
          h = MatMul(x, W)
          a = Add(h, B)
          y = Relu(a)
        }""", W=rng.normal(size=(5, 3)), B=rng.normal(size=3))
    assert "affine" in ops(g)
    x = rng.normal(size=(10, 5)).astype(F32)
    before = run(g, x)

    folded = fold_batchnorm(g)
    assert ops(folded) == ["input", "linear", "relu"]
    assert max_rel_error(run(folded, x), before) <= 1e-5


def test_conv_mul_add_constants_from_onnx_fold_into_the_conv() -> None:
    rng = rng_for(7)
    g = onnx_graph("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2, 5, 5] x) => (float[N, 3, 5, 5] y) {
          h = Conv <pads=[1,1,1,1]> (x, W)
          s = Mul(h, S)
          y = Add(s, B)
        }""", W=rng.normal(size=(3, 2, 3, 3)), S=rng.normal(size=(3, 1, 1)),
        B=rng.normal(size=(3, 1, 1)))
    assert ops(g).count("affine") == 2
    x = rng.normal(size=(4, 2, 5, 5)).astype(F32)
    before = run(g, x)

    folded = fold_batchnorm(g)
    assert ops(folded) == ["input", "conv"]
    assert max_rel_error(run(folded, x), before) <= 1e-5


@pytest.mark.parametrize("which", ["scale", "shift"])
def test_spatially_varying_affine_does_not_fold(which: str) -> None:
    rng = rng_for(8)
    b = GraphBuilder((2, 4, 4))
    b.add("conv1", "conv", ["x"], CONV, **conv_params(rng, 3, 2))
    varying = rng.uniform(0.5, 2.0, (3, 4, 4))
    consts = {"scale": F32(1.5), "shift": F32(0.25), which: varying}
    b.add("aff1", "affine", ["conv1"], **consts)
    b.add("relu1", "relu", ["aff1"])
    g = b.graph()
    x = rng.normal(size=(3, 2, 4, 4)).astype(F32)
    before, params = run(g, x), snapshot(g)

    folded = fold_batchnorm(g)
    assert ops(folded) == ["input", "conv", "affine", "relu"]
    np.testing.assert_array_equal(folded.node("conv1").params["weight"],
                                  params["conv1"]["weight"])
    np.testing.assert_allclose(run(folded, x), before, rtol=0, atol=0)


def test_affine_varying_along_the_wrong_axis_of_a_linear_does_not_fold() -> None:
    """A linear on (S, K) rows: a BN over axis 0 scales rows, which the weight cannot do."""
    rng = rng_for(9)
    b = GraphBuilder((4, 6))
    bn(b, "bn1", b.add("fc1", "linear", ["x"], **linear_params(rng, 3, 6)), rng)
    g = b.graph()
    x = rng.normal(size=(5, 4, 6)).astype(F32)
    before = run(g, x)

    folded = fold_batchnorm(g)
    assert ops(folded) == ["input", "linear", "affine"]
    assert max_rel_error(run(folded, x), before) <= 1e-5


# ---------------------------------------------------------------------- normalize-thresholds


def relu_net(seed: int = 10, source: bool = False) -> Graph:
    """conv -> relu -> conv -> relu -> flatten -> linear -> relu -> linear."""
    rng = rng_for(seed)
    b = GraphBuilder((2, 5, 5))
    b.add("conv1", "conv", ["x"], CONV, **conv_params(rng, 3, 2))
    b.add("relu1", "relu", ["conv1"], source=("MyFirstRelu", "Relu") if source else None)
    b.add("conv2", "conv", ["relu1"], CONV, **conv_params(rng, 4, 3))
    b.add("relu2", "relu", ["conv2"])
    b.add("flat", "flatten", ["relu2"])
    b.add("fc1", "linear", ["flat"], **linear_params(rng, 6, 100))
    b.add("relu3", "relu", ["fc1"])
    b.add("fc2", "linear", ["relu3"], **linear_params(rng, 3, 6))
    return b.graph()


RELUS = ("relu1", "relu2", "relu3")


def calib_data(n: int = 40, seed: int = 11) -> np.ndarray:
    return rng_for(seed).normal(size=(n, 2, 5, 5)).astype(F32)


def positive(values: np.ndarray) -> np.ndarray:
    return values[values > 0]


def test_max_norm_gives_the_max_positive_activation_per_layer() -> None:
    g, calib = relu_net(), calib_data()
    acts = run_all(g, calib)
    out = normalize_thresholds(g, calib, NormSpec.parse("max"), batch_size=7)
    verify(out)
    for name in RELUS:
        theta = out.node(name).params["theta"]
        assert theta.shape == ()
        assert float(theta) == pytest.approx(float(acts[name].max()), rel=1e-6)
    # the ANN is unchanged: a threshold is only a note on the activation
    np.testing.assert_array_equal(run(out, calib), run(g, calib))


@pytest.mark.parametrize("p", [50.0, 99.0, 99.9])
def test_percentile_norm_equals_numpy_percentile_of_positive_activations(p: float) -> None:
    g, calib = relu_net(), calib_data()
    acts = run_all(g, calib)
    out = normalize_thresholds(g, calib, NormSpec.parse(f"percentile:{p}"), batch_size=16)
    for name in RELUS:
        expected = np.percentile(positive(acts[name]), p)
        # streaming histograms: exact to one bin of a range below twice the max
        bin_width = 2 * float(acts[name].max()) / LAYER_BINS
        assert abs(float(out.node(name).params["theta"]) - expected) <= bin_width
    assert float(out.node("relu1").params["theta"]) <= float(acts["relu1"].max())


def test_per_channel_thresholds_have_one_theta_per_channel() -> None:
    g, calib = relu_net(), calib_data()
    acts = run_all(g, calib)
    out = normalize_thresholds(g, calib, NormSpec.parse("max", per_channel=True))
    for name in RELUS:
        node = out.node(name)
        theta = node.params["theta"]
        channels = node.shape[0]
        assert theta.size == channels
        assert np.broadcast_shapes(theta.shape, node.shape) == node.shape
        per_channel_max = [positive(acts[name][:, c]).max() for c in range(channels)]
        np.testing.assert_allclose(theta.reshape(-1), per_channel_max, rtol=1e-6)
    # the converted layer really is per channel: shapes survive convert and verify
    verify(convert(out))


def test_a_never_active_channel_gets_a_usable_threshold() -> None:
    rng = rng_for(12)
    params = conv_params(rng, 2, 2)
    params["bias"][1] = -1e3  # channel 1 never fires
    b = GraphBuilder((2, 4, 4))
    b.add("conv1", "conv", ["x"], CONV, **params)
    b.add("relu1", "relu", ["conv1"])
    g = b.graph()
    calib = rng.normal(size=(10, 2, 4, 4)).astype(F32)
    for spec in ("max", "percentile:99"):
        theta = normalize_thresholds(g, calib, NormSpec.parse(spec, per_channel=True)).node(
            "relu1").params["theta"]
        assert np.all(np.isfinite(theta)) and np.all(theta > 0)
    verify(convert(normalize_thresholds(g, calib, NormSpec.parse("max", True))))


def test_clip_takes_its_bound_as_theta_without_data() -> None:
    rng = rng_for(13)
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], **linear_params(rng, 4, 3))
    b.add("clip1", "clip", ["fc1"], {"min": 0.0, "max": 2.5})
    b.add("fc2", "linear", ["clip1"], **linear_params(rng, 2, 4))
    b.add("clip2", "clip", ["fc2"], {"min": 0.0, "max": 0.75})
    g = b.graph()
    out = normalize_thresholds(g, None, NormSpec.parse("max"))
    assert float(out.node("clip1").params["theta"]) == 2.5
    assert float(out.node("clip2").params["theta"]) == 0.75


def test_relu_without_calibration_data_is_a_data_error_naming_the_node() -> None:
    g = relu_net(source=True)
    with pytest.raises(DataError, match="MyFirstRelu"):
        normalize_thresholds(g, None)
    with pytest.raises(DataError, match="MyFirstRelu"):
        normalize_thresholds(g, np.zeros((0, 2, 5, 5), F32))


def test_calibration_data_of_the_wrong_shape_is_a_data_error() -> None:
    with pytest.raises(DataError, match="shape"):
        normalize_thresholds(relu_net(), np.zeros((4, 3, 5, 5), F32))


@pytest.mark.parametrize(("text", "method", "p"), [
    ("max", "max", 100.0),
    ("percentile", "percentile", 99.99),
    ("percentile:99.9", "percentile", 99.9),
    ("percentile:100", "percentile", 100.0),
])
def test_normspec_parse_accepts(text: str, method: str, p: float) -> None:
    spec = NormSpec.parse(text, per_channel=True)
    assert (spec.method, spec.percentile, spec.per_channel) == (method, p, True)
    assert NormSpec.parse(str(NormSpec.parse(text))) == NormSpec.parse(text)


@pytest.mark.parametrize("text", ["percentile:0", "percentile:-5", "percentile:100.5",
                                  "percentile:abc", "percentile:nan", "foo", "", "MAX"])
def test_normspec_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        NormSpec.parse(text)


# ---------------------------------------------------------------------------------- convert


def thresholded_net() -> tuple[Graph, np.ndarray]:
    g, calib = relu_net(), calib_data()
    return normalize_thresholds(g, calib, NormSpec.parse("max")), calib


def test_convert_turns_activations_into_if_neurons() -> None:
    g, calib = thresholded_net()
    snn = convert(g)
    verify(snn)
    assert snn.meta["stage"] == "snn"
    assert snn.meta["output_softmax"] is False
    assert [n.name for n in snn.nodes] == [n.name for n in g.nodes]
    for name in RELUS:
        node = snn.node(name)
        assert node.op == "if"
        assert node.attrs["reset"] == "subtract"
        np.testing.assert_array_equal(node.params["theta"], g.node(name).params["theta"])
        np.testing.assert_array_equal(node.params["v0"], np.zeros_like(node.params["theta"]))
    # with max-norm, no calibration activation exceeds theta: the IF rate limit
    # clip(z, 0, theta) equals the ReLU on the calibration data
    np.testing.assert_allclose(run(snn, calib), run(g, calib), rtol=1e-6, atol=1e-6)


def test_converted_if_means_clip_to_theta() -> None:
    g, calib = thresholded_net()
    lowered = g.replace([n.with_params(theta=n.params["theta"] / 2) if n.op == "relu" else n
                         for n in g.nodes])
    snn = convert(lowered)
    clipped = g.replace([
        Node(n.name, "clip", n.inputs, {"min": 0.0, "max": float(n.params["theta"]) / 2},
             shape=n.shape) if n.op == "relu" else n for n in g.nodes])
    np.testing.assert_allclose(run(snn, calib), run(clipped, calib), rtol=1e-6, atol=1e-6)


def test_convert_clip_keeps_the_network_function() -> None:
    rng = rng_for(14)
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], **linear_params(rng, 4, 3))
    b.add("clip1", "clip", ["fc1"], {"min": 0.0, "max": 0.5})
    b.add("fc2", "linear", ["clip1"], **linear_params(rng, 2, 4))
    g = normalize_thresholds(b.graph(), None)
    snn = convert(g)
    assert snn.node("clip1").op == "if"
    assert float(snn.node("clip1").params["theta"]) == 0.5
    x = rng.normal(0, 3, (20, 3)).astype(F32)
    np.testing.assert_allclose(run(snn, x), run(g, x), rtol=1e-6)


@pytest.mark.parametrize("lo", [-1.0, 0.5, None])
def test_clip_with_nonzero_min_is_a_model_error_naming_the_node(lo: float | None) -> None:
    rng = rng_for(15)
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], **linear_params(rng, 4, 3))
    b.add("clip1", "clip", ["fc1"], {"min": lo, "max": 1.0}, source=("Hardtanh_7", "Clip"))
    g = normalize_thresholds(b.graph(), None)
    with pytest.raises(ModelError, match="Hardtanh_7"):
        convert(g)


def test_activation_without_theta_is_refused() -> None:
    with pytest.raises(ModelError, match="relu1"):
        convert(relu_net())


@pytest.mark.parametrize("log", [False, True])
def test_final_softmax_is_removed(log: bool) -> None:
    g, calib = thresholded_net()
    nodes = [*g.nodes, Node("sm", "softmax", ("fc2",), {"axes": [0], "log": log},
                            shape=g.output_node.shape)]
    with_softmax = Graph(tuple(nodes), "sm", dict(g.meta))
    verify(with_softmax)
    snn = convert(with_softmax)
    verify(snn)
    assert "softmax" not in ops(snn)
    assert snn.output == "fc2"
    assert snn.meta["output_softmax"] is True
    assert snn.meta["stage"] == "snn"
    # what is left is the logits, which softmax does not reorder
    logits = run(snn, calib)
    np.testing.assert_allclose(logits, run(g, calib), rtol=1e-6, atol=1e-6)
    assert np.array_equal(logits.argmax(1), run(with_softmax, calib).argmax(1))


# ------------------------------------------------------------------------------- shift-bias


def converted_net(per_channel: bool = False) -> tuple[Graph, np.ndarray]:
    g, calib = relu_net(), calib_data()
    return convert(normalize_thresholds(g, calib, NormSpec.parse("max", per_channel))), calib


@pytest.mark.parametrize("per_channel", [False, True])
def test_shift_v0_starts_membranes_at_half_theta(per_channel: bool) -> None:
    snn, calib = converted_net(per_channel)
    shifted = shift_bias(snn, "v0")
    verify(shifted)
    assert shifted.meta["shift"] == "v0"
    for name in RELUS:
        before, after = snn.node(name).params, shifted.node(name).params
        np.testing.assert_array_equal(after["theta"], before["theta"])
        np.testing.assert_allclose(after["v0"], before["theta"] / 2, rtol=1e-7)
        assert after["v0"].shape == before["theta"].shape
        assert "i_shift" not in after
    np.testing.assert_array_equal(run(shifted, calib), run(snn, calib))


def test_shift_input_adds_half_theta_over_t_per_step() -> None:
    snn, calib = converted_net(per_channel=True)
    shifted = shift_bias(snn, "input", timesteps=20)
    verify(shifted)
    assert shifted.meta["shift"] == "input"
    assert shifted.meta["timesteps"] == 20
    for name in RELUS:
        p = shifted.node(name).params
        np.testing.assert_allclose(p["i_shift"], snn.node(name).params["theta"] / 40, rtol=1e-6)
        np.testing.assert_array_equal(p["v0"], 0)
    np.testing.assert_array_equal(run(shifted, calib), run(snn, calib))


@pytest.mark.parametrize("timesteps", [None, 0])
def test_shift_input_needs_timesteps(timesteps: int | None) -> None:
    with pytest.raises(UsageError, match="time"):
        shift_bias(converted_net()[0], "input", timesteps)


@pytest.mark.parametrize(("first", "second"), [("v0", "v0"), ("v0", "input"),
                                               ("input", "v0"), ("input", "input")])
def test_a_second_shift_is_refused(first: str, second: str) -> None:
    once = shift_bias(converted_net()[0], first, 16)
    with pytest.raises(PassError):
        shift_bias(once, second, 16)


def test_shift_none_changes_nothing_and_unknown_mode_is_refused() -> None:
    snn = converted_net()[0]
    assert to_text(shift_bias(snn, "none")) == to_text(snn)
    with pytest.raises(UsageError, match="bogus"):
        shift_bias(snn, "bogus")


def test_shift_before_convert_is_refused() -> None:
    """Before convert there is no IF neuron to shift: recording a shift would be a lie that
    also blocks the real one later."""
    g, _ = thresholded_net()
    with pytest.raises(PassError, match="convert"):
        shift_bias(g, "v0")
    with pytest.raises(PassError, match="convert"):
        run_pipeline(g, ["shift-bias", "convert"], PassOptions())
    assert shift_bias(g, "none") is g


# ----------------------------------------------------------------------------- run_pipeline


def bn_net() -> Graph:
    rng = rng_for(16)
    b = GraphBuilder((1, 6, 6))
    bn(b, "bn1", b.add("conv1", "conv", ["x"], CONV, **conv_params(rng, 3, 1)), rng)
    b.add("relu1", "relu", ["bn1"])
    b.add("flat", "flatten", ["relu1"])
    b.add("fc1", "linear", ["flat"], **linear_params(rng, 4, 108))
    return b.graph(stage="ann")


PIPELINE_FILES = ["00-import", "01-recognise-activations", "02-fold-batchnorm",
                  "03-normalize-thresholds", "04-convert", "05-shift-bias", "06-calibrate"]


def pipeline_options() -> PassOptions:
    calib = rng_for(17).uniform(0, 1, (30, 1, 6, 6)).astype(F32)
    return PassOptions(calib=calib, norm=NormSpec.parse("percentile:99"), shift="v0",
                       timesteps=16)


def test_dump_after_all_writes_every_stage_in_order(tmp_path) -> None:
    g, options = bn_net(), pipeline_options()
    out = run_pipeline(g, options=options, dump=DumpSpec.parse("after-all", tmp_path / "ir"))
    files = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert files == [f"{stem}.txt" for stem in PIPELINE_FILES]

    # each dump is the IR text after that pass, computed here pass by pass
    stages = [g]
    stages.append(recognise_activations(stages[-1]))
    stages.append(fold_batchnorm(stages[-1]))
    stages.append(normalize_thresholds(stages[-1], options.calib, options.norm))
    stages.append(convert(stages[-1]))
    stages.append(shift_bias(stages[-1], "v0"))
    stages.append(stages[-1])  # calibrate: none without a simulator-backed method
    texts = [(tmp_path / "ir" / f"{stem}.txt").read_text() for stem in PIPELINE_FILES]
    assert texts == [to_text(s) for s in stages]
    assert to_text(out) == texts[-1]

    assert texts[1] == texts[0]  # no chain to recognise here
    assert "= batchnorm[" in texts[0] and "= batchnorm[" not in texts[2]
    assert "theta=" in texts[3] and "= relu[" in texts[3] and "= if[" not in texts[3]
    assert "= if[" in texts[4] and "= relu[" not in texts[4] and "v0=0," in texts[4]
    assert "v0=0," not in texts[5] and "# shift: v0" in texts[5]


def test_dump_selected_passes_only(tmp_path) -> None:
    spec = DumpSpec.parse("import, convert", tmp_path)
    run_pipeline(bn_net(), options=pipeline_options(), dump=spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00-import.txt", "04-convert.txt"]


def test_dump_json_and_dot_formats(tmp_path) -> None:
    g, options = bn_net(), pipeline_options()
    run_pipeline(g, options=options, dump=DumpSpec.parse("after-all", tmp_path / "j", "json"))
    run_pipeline(g, options=options, dump=DumpSpec.parse("after-all", tmp_path / "d", "dot"))
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == [
        f"{s}.json" for s in PIPELINE_FILES]
    converted = json.loads((tmp_path / "j" / "04-convert.json").read_text())
    assert converted["output"] == "fc1"
    assert [n["op"] for n in converted["nodes"]] == ["input", "conv", "if", "flatten", "linear"]
    imported = json.loads((tmp_path / "j" / "00-import.json").read_text())
    assert "batchnorm" in [n["op"] for n in imported["nodes"]]
    dot = (tmp_path / "d" / "04-convert.dot").read_text()
    assert dot.startswith("digraph") and '"conv1" -> "relu1"' in dot
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        f"{s}.dot" for s in PIPELINE_FILES]


def test_unknown_names_are_usage_errors(tmp_path) -> None:
    with pytest.raises(UsageError, match="nope"):
        run_pipeline(bn_net(), ["fold-batchnorm", "nope"], pipeline_options())
    with pytest.raises(UsageError, match="nope"):
        DumpSpec.parse("convert,nope", tmp_path)
    with pytest.raises(UsageError):
        DumpSpec.parse(",", tmp_path)
    with pytest.raises(UsageError, match="yaml"):
        DumpSpec.parse("after-all", tmp_path, "yaml")
    assert not any(tmp_path.iterdir())


def test_a_crashing_pass_is_an_internal_error_naming_it(monkeypatch) -> None:
    def broken(graph: Graph, options: PassOptions) -> Graph:
        raise ZeroDivisionError("oops")

    monkeypatch.setitem(PASSES, "convert", broken)
    with pytest.raises(InternalError) as info:
        run_pipeline(bn_net(), options=pipeline_options())
    message = str(info.value)
    assert "'convert'" in message and "ZeroDivisionError" in message and "oops" in message
    assert "recognise-activations, fold-batchnorm, normalize-thresholds" in message
    assert isinstance(info.value.__cause__, ZeroDivisionError)

    monkeypatch.setitem(PASSES, "recognise-activations", broken)
    with pytest.raises(InternalError, match=r"'recognise-activations'.*after: nothing"):
        run_pipeline(bn_net(), options=pipeline_options())


def test_snnc_errors_from_a_pass_pass_through_unchanged() -> None:
    with pytest.raises(DataError) as info:
        run_pipeline(bn_net(), options=PassOptions())  # no calibration data
    assert not isinstance(info.value, InternalError)


def test_a_pass_producing_an_invalid_graph_is_caught(monkeypatch) -> None:
    def dangling(graph: Graph, options: PassOptions) -> Graph:
        last = graph.output_node.replace(inputs=("ghost",))
        return Graph((*graph.nodes[:-1], last), graph.output, graph.meta)

    monkeypatch.setitem(PASSES, "shift-bias", dangling)
    with pytest.raises(SnncError, match="ghost"):
        run_pipeline(bn_net(), options=pipeline_options())


def test_pipeline_output_tracks_the_ann() -> None:
    g, options = bn_net(), pipeline_options()
    snn = run_pipeline(g, options=options)
    assert snn.meta["stage"] == "snn" and snn.meta["shift"] == "v0"
    assert ops(snn) == ["input", "conv", "if", "flatten", "linear"]
    # as an ANN (IF = clip to theta) it stays close to the source on the calibration data
    assert max_rel_error(run(snn, options.calib), run(g, options.calib)) < 0.05


def test_onnx_model_compiles_end_to_end_with_a_clip_network() -> None:
    rng = rng_for(18)
    g = onnx_graph("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 4] x) => (float[N, 3] y) {
          lo = Constant <value = float {0.0}> ()
          hi = Constant <value = float {1.5}> ()
          h = Gemm <transB=1> (x, W, B)
          a = Clip(h, lo, hi)
          z = Gemm <transB=1> (a, W2, B2)
          y = Softmax(z)
        }""", W=rng.normal(size=(6, 4)), B=rng.normal(size=6), W2=rng.normal(size=(3, 6)),
        B2=rng.normal(size=3))
    snn = run_pipeline(g, options=PassOptions(shift="v0"))  # no data needed: Clip bound
    assert snn.meta["output_softmax"] is True
    theta = [float(n.params["theta"]) for n in snn.nodes if n.op == "if"]
    assert theta == [1.5]
    x = rng.normal(size=(12, 4)).astype(F32)
    assert np.array_equal(run(snn, x).argmax(1), run(g, x).argmax(1))



def test_in_place_kernels_never_clobber_a_shared_view() -> None:
    """relu may overwrite its input only when no other live value shares that memory:
    here a reshape (a view of conv's output) is still needed after the relu."""
    b = GraphBuilder((2, 3, 3))
    b.add("conv", "conv", ["x"], {"strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1],
                                  "groups": 1}, weight=np.ones((2, 2, 1, 1)), bias=[-1.0, 0.5])
    b.add("flat", "flatten", ["conv"])
    b.add("relu", "relu", ["conv"])
    b.add("flat2", "flatten", ["relu"])
    b.add("sum", "add", ["flat", "flat2"])
    g = b.graph()
    x = np.random.default_rng(0).normal(size=(4, 2, 3, 3)).astype(F32)
    conv_out = x.sum(axis=1, keepdims=True) + np.array([-1.0, 0.5], F32).reshape(1, 2, 1, 1)
    expected = (conv_out + np.maximum(conv_out, 0)).reshape(4, -1)
    np.testing.assert_allclose(run(g, x), expected, rtol=1e-6)
