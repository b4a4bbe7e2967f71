"""NIR export: the converted digits CNN round-trips through nir.write / nir.read with its
parameters, the subtract-reset metadata, and the theta spike amplitude intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.compiler.errors import ModelError

nir = pytest.importorskip("nir")
from snnc.backends.nir import to_nir, write_nir  # noqa: E402


@pytest.fixture(scope="module")
def digits_snn(digits_model: Path, digits_calib: Path) -> snnc.runtime.CompiledNetwork:
    return snnc.compile(digits_model, calib=digits_calib, preset="rate-p99.99")


def test_round_trip_keeps_every_layer(tmp_path: Path, digits_snn) -> None:
    path = tmp_path / "digits.nir"
    write_nir(digits_snn.graph, path)
    graph = nir.read(path)
    g = digits_snn.graph
    for node in g.nodes[1:]:
        loaded = graph.nodes[node.name]
        if node.op in ("conv", "linear"):
            np.testing.assert_array_equal(loaded.bias, node.params["bias"])
        if node.op == "if":
            assert type(loaded).__name__ == "IF"
            assert loaded.metadata["reset"] == "subtract"
            # relu1 gets the raw image current; later layers' thresholds absorb the pending
            # scale, so only their ratio to v_initial is fixed
            theta = np.broadcast_to(node.params["theta"], node.shape)
            v0 = np.broadcast_to(node.params["v0"], node.shape)
            np.testing.assert_allclose(loaded.metadata["v_initial"] / loaded.v_threshold,
                                       v0 / theta, rtol=1e-6)
    np.testing.assert_allclose(graph.nodes["relu1"].v_threshold,
                               np.broadcast_to(g.node("relu1").params["theta"], (16, 8, 8)))
    # conv2 reads spikes of amplitude theta1: folded into its weights
    np.testing.assert_array_equal(graph.nodes["conv1"].weight, g.node("conv1").params["weight"])
    theta1 = float(g.node("relu1").params["theta"])
    np.testing.assert_allclose(graph.nodes["conv2"].weight,
                               g.node("conv2").params["weight"] * theta1, rtol=1e-6)
    edges = {tuple(e) for e in graph.edges}
    assert {("input", "conv1"), ("conv1", "relu1"), ("relu1", "conv2"),
            (g.output, "output")} <= edges
    assert not any(type(n).__name__ == "Scale" for n in graph.nodes.values())


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


def test_an_independent_consumer_reproduces_the_network(digits_model: Path, digits_calib: Path,
                                                        digits_test_arrays) -> None:
    """Sinabs (SynSense) loads the file with its own importer; its IAF neurons subtract too.
    They may emit several spikes per step and clamp the potential at -theta, so outputs
    differ a little; predictions must agree."""
    sinabs = pytest.importorskip("sinabs")
    torch = pytest.importorskip("torch")
    net = snnc.compile(digits_model, calib=digits_calib, shift="none",
                       preset="rate-p99.99")  # NIR has no V(0)
    x = digits_test_arrays[0][:100]
    steps = 64
    model = sinabs.from_nir(to_nir(net.graph), batch_size=len(x))
    frames = torch.tensor(np.repeat(x[:, None], steps, axis=1)).reshape(-1, *x.shape[1:])
    with torch.no_grad():
        out = model(frames)
    out = (out[0] if isinstance(out, tuple) else out).reshape(len(x), steps, -1).mean(1)
    ours = net.run(x, steps).outputs
    agree = float((out.numpy().argmax(1) == ours.argmax(1)).mean())
    assert agree >= 0.97
    assert np.corrcoef(out.numpy().ravel(), ours.ravel())[0, 1] > 0.99
