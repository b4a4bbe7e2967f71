"""Issue 19's decoder-style torch net: a 2x nearest upsample (ONNX Resize) and a strided,
grouped ConvTranspose2d with output_padding, trained briefly on the digits calibration set and
exported by both torch exporters. It compiles with the default preset; its SNN agrees with the
ANN on >= 99% of the test samples at T=64 (float) and runs with --target loihi in the NumPy
bit-exact mode, where the upsample and the transposed conv are sparse synapses; NIR, which has
neither node, refuses it naming them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import snnc
from snnc.backends.lava import lava_available
from snnc.compiler.errors import ModelError

torch = pytest.importorskip("torch")
nn = torch.nn
T = 64


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),                   # 4x4
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(8, 8, 3, padding=1),  # 8x8
        nn.ReLU(),
        nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1, groups=2),  # 16x16
        nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(8 * 16, 10))


@pytest.fixture(scope="module")
def trained(digits_calib: Path) -> nn.Module:
    torch.manual_seed(0)
    with np.load(digits_calib) as f:
        x, y = torch.tensor(f["x"]), torch.tensor(f["y"])
    net = _net()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(40):  # full batch: enough for clear class margins, a few seconds
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module", params=[False, True], ids=["torchscript", "dynamo"])
def exported(request: pytest.FixtureRequest, trained: nn.Module,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upnet") / "model.onnx"
    x = torch.zeros(1, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if request.param:
            torch.onnx.export(trained, (x,), str(path), dynamo=True, input_names=["input"],
                              dynamic_shapes=({0: torch.export.Dim("n")},), verbose=False)
        else:
            torch.onnx.export(trained, (x,), str(path), dynamo=False, input_names=["input"],
                              dynamic_axes={"input": {0: "n"}})
    return path


def _ann(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0].argmax(1)


def test_float_snn_agrees_with_the_ann(exported: Path, digits_calib: Path,
                                       digits_test_arrays: tuple, tmp_path: Path) -> None:
    x, _ = digits_test_arrays
    net = snnc.compile(exported, calib=digits_calib, timesteps=T)
    ops = [n.op for n in net.graph.nodes]
    assert "resize" in ops and "conv_transpose" in ops
    agree = float(np.mean(net.run(x, T).predictions == _ann(exported, x)))
    assert agree >= 0.99, agree
    net.save(tmp_path / "net.snn")  # the new ops' attributes round-trip through the artifact
    again = snnc.load(tmp_path / "net.snn")
    assert np.array_equal(again.run(x[:32], T).outputs, net.run(x[:32], T).outputs)


def test_loihi_target_runs_in_the_bit_exact_mode(exported: Path, digits_calib: Path,
                                                 digits_test_arrays: tuple) -> None:
    x, _ = digits_test_arrays
    net = snnc.compile(exported, calib=digits_calib, timesteps=T, target="loihi")
    synapses = [n.meta.get("synapse") for n in net.graph.nodes if "synapse" in n.meta]
    assert synapses.count("sparse") == 2  # pool+upsample+conv, and the transposed conv
    agree = float(np.mean(net.run(x, T).predictions == _ann(exported, x)))
    assert agree >= 0.98, agree


def test_nir_refuses_naming_the_nodes(exported: Path, digits_calib: Path) -> None:
    nir = pytest.importorskip("snnc.backends.nir")
    net = snnc.compile(exported, calib=digits_calib, timesteps=8, target="nir",
                       preset="rate-p99.99")
    with pytest.raises(ModelError, match=r"(?s)no NIR equivalent.*\(Resize\): resize.*"
                                         r"\(ConvTranspose\): conv_transpose"):
        nir.to_nir(net.graph)


@pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
def test_lava_fixed_point_equals_the_numpy_loihi_mode(exported: Path, digits_calib: Path,
                                                      digits_test_arrays: tuple) -> None:
    from snnc.runtime.lava_run import compare_with_numpy

    if "dynamo" in str(exported.parent):
        pytest.skip("one exporter is enough for the Lava run")
    x, _ = digits_test_arrays
    net = snnc.compile(exported, calib=digits_calib, timesteps=8, target="loihi",
                       preset="rate-p99.99")
    cmp = compare_with_numpy(net, x[:3], 8)
    assert cmp.agree, cmp.mismatches


def test_building_the_lava_plan_leaves_the_graph_as_it_was(exported: Path,
                                                           digits_calib: Path) -> None:
    """The plan drops the explicit zeros of sparse synapses (scipy's eliminate_zeros works in
    place): on the node's own arrays that rewrote the graph, so whatever ran after the plan
    (the NumPy loihi mode in --compare numpy) ran a corrupted network."""
    from snnc.backends.lava.plan import build_plan
    from snnc.compiler.tuning import graph_digest

    net = snnc.compile(exported, calib=digits_calib, timesteps=8, target="loihi",
                       preset="rate-p99.99")
    sparse = [n for n in net.graph.nodes if n.op == "sparse"]
    assert any((n.params["q_weight"] == 0).any() for n in sparse)  # what this is about
    before = graph_digest(net.graph)
    build_plan(net.graph, "fixed")
    assert graph_digest(net.graph) == before
