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
    return snnc.compile(digits_model, calib=digits_calib)


def test_round_trip_keeps_every_layer(tmp_path: Path, digits_snn) -> None:
    path = tmp_path / "digits.nir"
    write_nir(digits_snn.graph, path)
    graph = nir.read(path)
    g = digits_snn.graph
    for node in g.nodes[1:]:
        loaded = graph.nodes[node.name]
        if node.op == "conv":
            np.testing.assert_array_equal(loaded.weight, node.params["weight"])
            np.testing.assert_array_equal(loaded.bias, node.params["bias"])
        if node.op == "if":
            assert type(loaded).__name__ == "IF"
            assert loaded.metadata["reset"] == "subtract"
            np.testing.assert_allclose(loaded.v_threshold,
                                       np.broadcast_to(node.params["theta"], node.shape))
            np.testing.assert_allclose(graph.nodes[f"{node.name}_amplitude"].scale,
                                       np.broadcast_to(node.params["theta"], node.shape))
            np.testing.assert_allclose(loaded.metadata["v_initial"],
                                       np.broadcast_to(node.params["v0"], node.shape))
    edges = {tuple(e) for e in graph.edges}
    assert ("input", "conv1") in edges and ("relu1", "relu1_amplitude") in edges
    assert ("relu1_amplitude", "conv2") in edges and (g.output, "output") in edges


def test_layers_nir_cannot_hold_are_listed(digits_calib: Path, test_data: Path) -> None:
    net = snnc.compile(test_data / "digits_vgg_maxpool.onnx", calib=digits_calib)
    with pytest.raises(ModelError, match="maxpool"):
        to_nir(net.graph)


def test_failed_export_leaves_no_file(tmp_path: Path, digits_calib: Path,
                                      test_data: Path) -> None:
    net = snnc.compile(test_data / "digits_vgg_maxpool.onnx", calib=digits_calib)
    with pytest.raises(ModelError):
        write_nir(net.graph, tmp_path / "x.nir")
    assert list(tmp_path.iterdir()) == []
