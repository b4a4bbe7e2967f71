"""Hardtanh / symmetric Clip as ternary IF neurons (+theta at V >= theta, -theta at
V <= -theta, reset by subtraction; rate limit clip(z, -theta, theta)): a hand-computed raster,
a Hardtanh net within 1 point of the ANN at T=64 on --target numpy, and the refusal, with the
reason, on targets that cannot carry negative spikes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import snnc
from snnc.backends.numpy.simulator import simulate
from snnc.compiler.errors import ModelError
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ops import opdef

torch = pytest.importorskip("torch")
nn = torch.nn


def _one_neuron(theta: float) -> Graph:
    inp = Node("x", "input", attrs={"shape": [1]}, shape=(1,))
    t = np.float32([theta])
    neuron = Node("n", "if", ("x",), attrs={"reset": "subtract", "ternary": True},
                  params={"theta": t, "v0": np.zeros(1, np.float32),
                          "phi": np.zeros(1, np.float32)}, shape=(1,))
    return Graph((inp, neuron), "n", {"stage": "snn"})


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_ternary_neuron_matches_a_hand_raster(engine: str) -> None:
    """theta = 1, input 0.6 per step: V = .6, 1.2 -> +1 (.2), .8, 1.4 -> +1 (.4), 1.0 -> +1
    (0): 3 spikes in 5 steps; -0.6 is the mirror image; 2.0 saturates at one spike a step."""
    x = np.float32([[0.6], [-0.6], [2.0]])
    sim = simulate(_one_neuron(1.0), x, [5], engine=engine)
    # the output is the neuron's spikes averaged over the steps: n * theta / T
    np.testing.assert_allclose(sim.at(5)[:, 0] * 5, [3, -3, 5])
    assert list(sim.spikes["n"][0]) == [3, 3, 5]  # messages: either sign counts once
    rate = opdef("if").evaluate(_one_neuron(1.0).node("n"), [x])
    np.testing.assert_allclose(rate[:, 0], [0.6, -0.6, 1.0])


@pytest.fixture(scope="module")
def hardtanh_net(digits_calib: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    with np.load(digits_calib) as f:
        x, y = torch.tensor(f["x"]), torch.tensor(f["y"])
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Hardtanh(), nn.AvgPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.Hardtanh(), nn.Flatten(),
                        nn.Linear(16 * 16, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    path = tmp_path_factory.mktemp("hardtanh") / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (x[:1],), str(path), dynamo=False,
                          input_names=["input"], dynamic_axes={"input": {0: "n"}})
    return path


def test_hardtanh_net_converts_within_a_point(hardtanh_net: Path, digits_calib: Path,
                                              digits_test_arrays: tuple) -> None:
    x, y = digits_test_arrays
    session = ort.InferenceSession(str(hardtanh_net), providers=["CPUExecutionProvider"])
    ann = float(np.mean(session.run(None, {"input": x})[0].argmax(1) == y))
    net = snnc.compile(hardtanh_net, calib=digits_calib, timesteps=64)
    neurons = [n for n in net.graph.nodes if n.op == "if"]
    assert len(neurons) == 2 and all(n.attrs.get("ternary") for n in neurons)
    assert all(np.all(n.params["theta"] == 1) for n in neurons)  # Hardtanh's bound
    snn = float(net.run(x, 64).accuracy(y))
    assert abs(snn - ann) <= 0.01, (snn, ann)


@pytest.mark.parametrize("target, neuron", [("lava", None), ("loihi", None), ("nir", None),
                                            ("numpy", "if")])
def test_targets_without_negative_spikes_refuse(hardtanh_net: Path, digits_calib: Path,
                                                target: str, neuron: str | None) -> None:
    with pytest.raises(ModelError, match=r"\(Clip\).*Hardtanh.*negative spikes"):
        snnc.compile(hardtanh_net, calib=digits_calib, timesteps=8, target=target,
                     neuron=neuron)
