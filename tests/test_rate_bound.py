"""The rate-coding bound (compiler/rate_bound.py): exact where the SNN's input is constant,
and reported by `snnc eval --bound`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snnc
from snnc.cli import main
from snnc.compiler.executor import run
from snnc.compiler.rate_bound import rate_bound_graph


def _one_layer_model(path: Path) -> Path:
    """conv -> ReLU -> flatten -> gemm: the IF layer sees the same current every step."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w", rng.normal(0, 0.5, (4, 1, 3, 3))), ("b", rng.normal(0, 0.1, 4)),
        ("fw", rng.normal(0, 0.3, (5, 4 * 6 * 6))), ("fb", rng.normal(0, 0.1, 5)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("spike_bits", [1, 3])
@pytest.mark.parametrize("timesteps", [1, 4, 7])
def test_bound_equals_the_snn_where_the_current_is_constant(tmp_path: Path, timesteps: int,
                                                            spike_bits: int) -> None:
    model = _one_layer_model(tmp_path / "one.onnx")
    x = np.random.default_rng(0).uniform(0, 1, (64, 1, 8, 8)).astype(np.float32)
    net = snnc.compile(model, calib=x, timesteps=timesteps, norm="percentile:99",
                       calibrate="none", neuron="if", shift="v0", spike_bits=spike_bits)
    bound = rate_bound_graph(net.graph, timesteps)
    assert bound is not None and all(n.op != "if" for n in bound.nodes)
    expected = run(bound, x)
    got = net.simulate(x, [timesteps]).outputs[0].reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # not the ANN: at T=1 the staircase has one or a few steps
    ann = run(net.graph, x)
    assert timesteps > 1 or not np.allclose(ann, expected, atol=1e-3)


def test_bound_folds_the_bias_shift_into_the_current(tmp_path: Path) -> None:
    model = _one_layer_model(tmp_path / "one.onnx")
    x = np.random.default_rng(1).uniform(0, 1, (32, 1, 8, 8)).astype(np.float32)
    net = snnc.compile(model, calib=x, timesteps=4, norm="percentile:99", calibrate="bias",
                       neuron="if", shift="v0")
    assert any("i_shift" in n.params for n in net.graph.nodes if n.op == "if")
    bound = rate_bound_graph(net.graph, 4)
    expected = run(bound, x)
    got = net.simulate(x, [4]).outputs[0].reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_reset_to_zero_has_no_closed_form(digits_model: Path, digits_calib: Path) -> None:
    net = snnc.compile(digits_model, calib=digits_calib, timesteps=4, preset="rate-p99.99",
                       neuron="lif")
    assert rate_bound_graph(net.graph, 4) is None


def test_eval_bound_reports_the_bound_per_t(tmp_path: Path, digits_model: Path,
                                            digits_calib: Path, digits_test: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["eval", str(digits_model), "--data", str(digits_test), "--calib",
                 str(digits_calib), "--timesteps", "1,4", "--preset", "rate-p99.99",
                 "--bound", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["snn"]
    assert [r["timesteps"] for r in rows] == [1, 4]
    assert all(0 < r["bound_accuracy"] <= 1 for r in rows)
    # the staircase coarsens with fewer steps: far below the ANN at T=1, not at T=4
    assert rows[0]["bound_accuracy"] < rows[1]["bound_accuracy"]
    assert "bound" in capsys.readouterr().out
