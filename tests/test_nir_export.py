"""NIR export: files that mean what they say under plain NIR semantics (thresholds 1, spikes 1,
no Scale node, dense convolutions), that nir.read loads, and that snnc reads back to the same
network (frontends/nir). Depthwise and grouped convolutions and a per-channel BN after pooling
(a diagonal 1x1 convolution) are covered (issues 17, 20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.compiler.errors import ModelError
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.ir.graph import Graph
from snnc.runtime import CompiledNetwork

nir = pytest.importorskip("nir")
from snnc.backends.nir import nir_notes, to_nir, write_nir  # noqa: E402
from snnc.backends.nir.export import dense_weight  # noqa: E402
from snnc.frontends.nir import from_nir  # noqa: E402

CONV = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]}
POOL = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1],
        "ceil_mode": 0, "count_include_pad": 1}


@pytest.fixture(scope="module")
def digits_snn(digits_model: Path, digits_calib: Path) -> CompiledNetwork:
    return snnc.compile(digits_model, calib=digits_calib, preset="rate-p99.99", target="nir")


def grouped_net(seed: int = 0) -> Graph:
    """Conv -> ReLU -> AvgPool -> BN (stays: nothing to fold it into) -> depthwise conv ->
    ReLU -> grouped conv (2 groups) -> ReLU -> global pool -> linear: a MobileNet-style block."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder((3, 8, 8))
    b.add("conv1", "conv", ["x"], {**CONV, "groups": 1},
          weight=rng.normal(0, 0.5, (8, 3, 3, 3)), bias=rng.normal(0, 0.1, 8))
    b.add("relu1", "relu", ["conv1"])
    b.add("pool1", "avgpool", ["relu1"], POOL)
    b.add("bn1", "batchnorm", ["pool1"], {"epsilon": 1e-3}, gamma=rng.uniform(0.5, 2, 8),
          beta=rng.normal(0, 0.3, 8), mean=rng.normal(0, 0.3, 8), var=rng.uniform(0.5, 2, 8))
    b.add("dw", "conv", ["bn1"], {**CONV, "groups": 8},
          weight=rng.normal(0, 0.7, (8, 1, 3, 3)), bias=rng.normal(0, 0.1, 8))
    b.add("relu2", "relu", ["dw"])
    b.add("gconv", "conv", ["relu2"], {**CONV, "groups": 2},
          weight=rng.normal(0, 0.5, (8, 4, 3, 3)), bias=rng.normal(0, 0.1, 8))
    b.add("relu3", "relu", ["gconv"])
    b.add("gap", "global_avgpool", ["relu3"])
    b.add("flat", "flatten", ["gap"])
    b.add("fc", "linear", ["flat"], weight=rng.normal(0, 0.5, (5, 8)), bias=np.zeros(5))
    return b.graph(name="grouped")


def round_trip(net: CompiledNetwork, **kw: object) -> CompiledNetwork:
    return CompiledNetwork(from_nir(to_nir(net.graph), **kw))


def test_file_is_plain_nir(tmp_path: Path, digits_snn: CompiledNetwork) -> None:
    path = tmp_path / "digits.nir"
    write_nir(digits_snn.graph, path)
    graph = nir.read(path)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert kinds == {"Input", "Output", "Conv2d", "IF", "SumPool2d"}  # no Scale, no Flatten
    for node in digits_snn.graph.nodes:
        if node.op == "if":
            loaded = graph.nodes[node.name]
            np.testing.assert_array_equal(loaded.v_threshold, 1)
            np.testing.assert_array_equal(loaded.r, 1)
            assert loaded.metadata["reset"] == "subtract"
            theta = np.broadcast_to(node.params["theta"], node.shape)
            np.testing.assert_allclose(loaded.metadata["v_initial"],
                                       np.broadcast_to(node.params["v0"], node.shape) / theta,
                                       rtol=1e-6)
    g = digits_snn.graph
    theta1 = float(g.node("relu1").params["theta"])
    # conv1 feeds a threshold-1 neuron: divided by theta1; conv2 reads spikes of 1, not theta1
    np.testing.assert_allclose(graph.nodes["conv1"].weight,
                               g.node("conv1").params["weight"] / theta1, rtol=1e-6)
    theta2 = float(g.node("relu2").params["theta"])
    np.testing.assert_allclose(graph.nodes["conv2"].weight,
                               g.node("conv2").params["weight"] * theta1 / theta2, rtol=1e-5)
    # the classifier reads the pooled map directly: a conv as large as the map
    assert graph.nodes["linear1"].weight.shape == (10, 32, 2, 2)
    assert {("input", "conv1"), ("conv1", "relu1"), ("relu1", "conv2")} <= {
        tuple(e) for e in graph.edges}


def test_round_trip_reproduces_the_network(digits_snn: CompiledNetwork,
                                           digits_test_arrays) -> None:
    x = digits_test_arrays[0][:100]
    back = round_trip(digits_snn)
    assert back.graph.output_node.shape == (10,)
    np.testing.assert_allclose(back.run(x, 32).outputs, digits_snn.run(x, 32).outputs,
                               atol=1e-5)


def test_resnet_skips_have_no_scale_nodes(digits_calib: Path, test_data: Path,
                                          digits_test_arrays) -> None:
    net = snnc.compile(test_data / "digits_resnet.onnx", calib=digits_calib,
                       preset="rate-p99.99", target="nir")
    graph = to_nir(net.graph)
    assert not any(type(n).__name__ == "Scale" for n in graph.nodes.values())
    # the skip relu1 -> add1 -> relu3 goes through an identity synapse with theta1/theta3
    x = digits_test_arrays[0][:64]
    back = round_trip(net)
    assert (back.run(x, 32).predictions == net.run(x, 32).predictions).all()


def test_nir_preset_needs_nothing_nir_cannot_state(digits_model: Path, digits_calib: Path,
                                                   digits_test_arrays) -> None:
    net = snnc.compile(digits_model, calib=digits_calib, preset="nir", target="nir",
                       timesteps=8)
    assert nir_notes(net.graph) == []
    graph = to_nir(net.graph)
    assert all(not n.metadata for n in graph.nodes.values() if type(n).__name__ == "IF")
    x = digits_test_arrays[0][:100]
    plain = round_trip(net, metadata=False)  # plain NIR: reset to zero, V(0) = 0
    np.testing.assert_allclose(plain.run(x, 8).outputs, net.run(x, 8).outputs, atol=1e-5)


def test_default_preset_reports_what_nir_cannot_state(digits_snn: CompiledNetwork) -> None:
    notes = nir_notes(digits_snn.graph)
    assert len(notes) == 2 and "subtraction" in notes[0] and "V(0)" in notes[1]


def test_dense_weight_of_a_grouped_conv_computes_the_same() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)
    x = torch.tensor(rng.normal(size=(1, 6, 5, 5)).astype(np.float32))
    grouped = torch.nn.functional.conv2d(x, torch.tensor(w), groups=3)
    dense = torch.nn.functional.conv2d(x, torch.tensor(dense_weight(w, 3)))
    np.testing.assert_allclose(dense.numpy(), grouped.numpy(), atol=1e-5)


@pytest.mark.parametrize("preset", ["rate-p99.99", "nir"])
def test_depthwise_grouped_and_bn_after_pool_export(tmp_path: Path, preset: str) -> None:
    """Issue 20: groups > 1 and a per-channel BN after pooling crashed nir's type check."""
    rng = np.random.default_rng(2)
    calib = rng.uniform(0, 1, (64, 3, 8, 8)).astype(np.float32)
    net = snnc.compile(grouped_net(), calib=calib, preset=preset, target="nir", timesteps=16)
    assert any(n.op == "affine" for n in net.graph.nodes)  # the BN after the pool
    path = tmp_path / "grouped.nir"
    write_nir(net.graph, path)
    graph = nir.read(path)  # nir's type check passes
    assert all(getattr(n, "groups", 1) == 1 for n in graph.nodes.values())
    back = snnc.load_nir(path)
    x = calib[:32]
    np.testing.assert_allclose(back.run(x, 16).outputs, net.run(x, 16).outputs, atol=1e-4)


def test_layers_nir_cannot_hold_are_listed(digits_calib: Path, test_data: Path) -> None:
    net = snnc.compile(test_data / "digits_vgg_maxpool.onnx", calib=digits_calib,
                       preset="rate-p99.99")
    with pytest.raises(ModelError, match="maxpool"):
        to_nir(net.graph)


def test_failed_export_leaves_no_file(tmp_path: Path, digits_calib: Path,
                                      test_data: Path) -> None:
    net = snnc.compile(test_data / "digits_vgg_maxpool.onnx", calib=digits_calib,
                       preset="rate-p99.99")
    with pytest.raises(ModelError):
        write_nir(net.graph, tmp_path / "x.nir")
    assert list(tmp_path.iterdir()) == []
