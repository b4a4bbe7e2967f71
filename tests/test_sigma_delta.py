"""Sigma-delta networks (--neuron sigma-delta) on the NumPy simulator: the IR op's dynamics, the
settled network's meaning, the choice of delta thresholds and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import make_model, ort_run

import snnc
from snnc.backends.numpy.simulator import simulate
from snnc.cli import main
from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.executor import run
from snnc.compiler.passes.delta_thresholds import _with_vth, synapse_depth

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    test = np.load(DIGITS / "test.npz")
    return np.load(DIGITS / "calib.npz")["x"], test["x"], test["y"]


@pytest.fixture(scope="module")
def sd_net(digits: tuple[np.ndarray, np.ndarray, np.ndarray]) -> snnc.CompiledNetwork:
    return snnc.compile(DIGITS / "model.onnx", calib=digits[0], neuron="sigma-delta")


def _step_by_step(graph, x: np.ndarray, steps: int) -> list[np.ndarray]:
    """The op's docstring, literally: one state per sd node, every node each step."""
    state = {n.name: [np.zeros((len(x), *n.shape), np.float32) for _ in range(3)]
             for n in graph.nodes if n.op == "sd"}
    outs = []
    for _ in range(steps):
        env = {graph.input.name: x}
        for node in graph.nodes[1:]:
            inputs = [env[i] for i in node.inputs]
            if node.op == "sd":
                act, residue, recon = state[node.name]
                a = np.maximum(inputs[0], 0)
                delta = a - act + residue
                msg = np.where(np.abs(delta) >= node.params["vth"], delta, 0)
                state[node.name] = [a, delta - msg, recon + msg]
                env[node.name] = recon + msg
            else:
                env[node.name] = snnc.compiler.ops.opdef(node.op).evaluate(node, inputs)
        outs.append(env[graph.output])
    return outs


def test_simulator_follows_the_op_and_settles_at_the_first_step(sd_net, digits) -> None:
    x = digits[1][:40]
    res = simulate(sd_net.graph, x, [1, 2, 5])
    literal = _step_by_step(sd_net.graph, x, 5)
    for k, t in enumerate([1, 2, 5]):
        np.testing.assert_allclose(res.outputs[k], literal[t - 1], rtol=1e-5, atol=1e-5)
    # a static sample: final after step 1, nothing sent afterwards, = the op's ANN meaning
    np.testing.assert_allclose(res.outputs[0], run(sd_net.graph, x), rtol=1e-5, atol=1e-5)
    assert np.all(res.settled == 1)
    for name, sent in res.spikes.items():
        assert np.array_equal(sent[0], sent[-1]), name
        assert sent[0].sum() > 0, name


def test_zero_thresholds_are_the_ann(sd_net, digits) -> None:
    import onnx

    g = sd_net.graph
    exact = _with_vth(g, {n.name: 0.0 for n in g.nodes if n.op == "sd"})
    x = digits[1][:64]
    ann = ort_run(onnx.load(DIGITS / "model.onnx"), x)
    out = simulate(exact, x, 3).outputs[0]
    np.testing.assert_allclose(out, ann.reshape(out.shape), rtol=1e-3, atol=1e-3)


def test_chosen_thresholds_keep_the_ann_accuracy_with_fewer_messages(sd_net, digits) -> None:
    _, x, y = digits
    chosen = sd_net.graph.meta["delta_thresholds"]
    assert chosen["within_tolerance"] and chosen["ratio"] > 2.0 ** -10
    sd = simulate(sd_net.graph, x, 1)
    ann = run(_with_vth(sd_net.graph, {n.name: 0.0 for n in sd_net.graph.nodes
                                       if n.op == "sd"}), x)
    acc_sd = float(np.mean(sd.outputs[0].argmax(1) == y))
    acc_ann = float(np.mean(ann.argmax(1) == y))
    assert acc_sd >= acc_ann - 0.005
    binary = snnc.compile(DIGITS / "model.onnx", calib=digits[0], timesteps=8, neuron="if",
                          preset="rate-p99.99")
    assert sd.spikes_per_sample()[0] < simulate(binary.graph, x, 8).spikes_per_sample()[0]


def test_coarser_thresholds_send_fewer_messages(sd_net, digits) -> None:
    g, x = sd_net.graph, digits[1][:100]
    sent = []
    for ratio in (1 / 256, 1 / 32, 1 / 4):
        vth = {n.name: ratio * float(n.params["scale"]) for n in g.nodes if n.op == "sd"}
        sent.append(simulate(_with_vth(g, vth), x, 1).spikes_per_sample()[0])
    assert sent[0] > sent[1] > sent[2]


def test_depth_counts_synapse_layers(sd_net) -> None:
    layers = sum(1 for n in sd_net.graph.nodes if n.op == "sd")
    assert synapse_depth(sd_net.graph) == layers + 1  # a chain: every sd layer + the output


def test_clip_is_refused_naming_the_node(tmp_path: Path) -> None:
    model = make_model("h = MatMul (x, w)\n y = Clip (h, lo, hi)", (1, 4),
                       consts={"w": np.eye(4, dtype=np.float32),
                               "lo": np.array(0.0, np.float32),
                               "hi": np.array(6.0, np.float32)})
    path = tmp_path / "clip.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="Clip.*sigma-delta|sigma-delta.*ReLU only"):
        snnc.compile(path, calib=np.random.default_rng(0).random((8, 4), np.float32),
                     neuron="sigma-delta")


def test_spike_bits_and_calibration_are_refused() -> None:
    with pytest.raises(UsageError, match="sigma-delta"):
        snnc.compile(DIGITS / "model.onnx", neuron="sigma-delta", spike_bits=3)
    with pytest.raises(UsageError, match="sigma-delta"):
        snnc.compile(DIGITS / "model.onnx", neuron="sigma-delta", calibrate="bias")


def test_cli_reports_the_settling(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sd.snn"
    assert main([str(DIGITS / "model.onnx"), "--calib", str(DIGITS / "calib.npz"),
                 "--neuron", "sigma-delta", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "settles at T=1" in text and "delta thresholds" in text
    assert main(["run", str(out), "--data", str(DIGITS / "test.npz"), "--timesteps", "1"]) == 0
