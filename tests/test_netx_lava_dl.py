"""netx SDNN export (`--target netx --neuron sigma-delta`) run two ways: by lava-dl's own netx
reader, `netx.hdf5.Network(net_config=..., skip_layers=1)`, in Lava's CPU simulation
(fixed_pt) between RingBuffer source and sink, and by snnc's NumPy model of that network
(backends/netx/fixed_point.py, runtime/netx_run.py). The two agree integer for integer on the
output Sigma (and so on the decoded outputs) on a few samples of the digits CNN and of a 32x32
VGG-like net whose max pools the lower-maxpool pass turned into ReLU layers.

Against snnc's float sigma-delta simulation the netx network differs by its fixed point
(messages drop 6 bits, vth and biases in steps of 2**12 state units, biases on from step 1):
measured relative L2 error 0.025 (digits, 32 samples), 0.05 (VGG); the same class on every
sample tried. The NumPy test runs without lava-dl."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import snnc
from snnc.backends.netx import write_netx
from snnc.backends.netx.fixed_point import decode
from snnc.backends.netx.reader import read_netx
from snnc.backends.numpy.simulator import simulate
from snnc.compiler.errors import InputFileError, ModelError, UsageError
from snnc.compiler.passes.manager import FOLD_BATCHNORM, LOWER_MAXPOOL, SIGMA_DELTA_PIPELINE
from snnc.runtime.netx_lava_dl import lava_dl_available, sdnn_sigma
from snnc.runtime.netx_run import run_netx, run_netx_numpy, simulate_netx_file

h5py = pytest.importorskip("h5py")
needs_lava_dl = pytest.mark.skipif(
    not lava_dl_available(), reason="lava-dl 0.6.0 is not installed (pip install --no-deps "
    "--ignore-requires-python lava-dl==0.6.0, or make install)")
MAX_REL_ERROR = 0.1  # against the float simulation; measured 0.025 (digits), 0.05 (VGG)
# max pools as ReLU layers, which netx holds
WITH_LOWERING = tuple(p for name in SIGMA_DELTA_PIPELINE
                      for p in ((name, LOWER_MAXPOOL) if name == FOLD_BATCHNORM else (name,)))


def _layers(path: Path) -> list[dict[str, Any]]:
    with h5py.File(path, "r") as f:
        out = []
        for i in range(len(f["layer"])):
            group = f["layer"][str(i)]
            layer = {k: group[k][()] for k in group if k != "neuron"}
            layer["type"] = layer["type"][0].decode("ascii")
            if "neuron" in group:
                layer["neuron"] = {k: group["neuron"][k][()] for k in group["neuron"]}
                layer["neuron"]["type"] = layer["neuron"]["type"][0].decode("ascii")
            out.append(layer)
    return out


@pytest.fixture(scope="module")
def digits(digits_model: Path, digits_calib: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[snnc.runtime.CompiledNetwork, Path]:
    net = snnc.compile(digits_model, calib=digits_calib, neuron="sigma-delta")
    path = tmp_path_factory.mktemp("sdnn") / "digits.net"
    write_netx(net.graph, path)
    return net, path


def _vgg_onnx(path: Path) -> Path:
    """32x32 VGG-like: three conv-BN-ReLU-maxpool(2x2) blocks and a linear head, random weights
    and BN statistics."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(16)

    def block(c_in: int, c_out: int) -> list[Any]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2)]

    model = nn.Sequential(*block(1, 4), *block(4, 6), *block(6, 8), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 5))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 1, 32, 32),), str(path), dynamo=False,
                          opset_version=13, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def vgg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("sdnn_vgg")
    calib = np.random.default_rng(1).normal(0, 1, (64, 1, 32, 32)).astype(np.float32)
    return _vgg_onnx(folder / "vgg.onnx"), calib


def test_digits_file_has_sdnn_layers(digits) -> None:
    net, path = digits
    layers = _layers(path)
    assert [layer["type"] for layer in layers] == ["input", "conv", "conv", "conv", "flatten",
                                                   "dense"]
    assert [tuple(layer["shape"]) for layer in layers] == [(1, 8, 8), (16, 8, 8), (32, 8, 8),
                                                          (32, 4, 4), (512,), (10,)]
    for layer in layers[1:4]:
        assert layer["neuron"]["type"] == "SDNN" and layer["neuron"]["vThMant"] >= 1
        assert layer["bias"].shape == (layer["shape"][0],)
    out = layers[-1]  # Lava's Sigma: the sum of the messages, no bias
    assert out["neuron"]["type"] == "SDNN" and "sigma_output" in out["neuron"]
    assert "bias" not in out
    for layer in layers:
        if "weight" in layer:
            assert np.issubdtype(layer["weight"].dtype, np.integer)
            assert np.abs(layer["weight"]).max() <= 254
    with h5py.File(path, "r") as f:
        assert f.attrs["snnc_settle_steps"] == 5 and f.attrs["snnc_input_unit"] > 0
        np.testing.assert_allclose(f.attrs["snnc_output_bias"],
                                   net.graph.node("linear1").params["bias"], rtol=1e-6)


def _rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def _float(net: snnc.runtime.CompiledNetwork, x: np.ndarray) -> np.ndarray:
    return simulate(net.graph, x, [8]).outputs[-1].astype(np.float64)


@pytest.fixture(scope="module")
def vgg_net(vgg, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[snnc.runtime.CompiledNetwork, Path]:
    model, calib = vgg
    net = snnc.compile(model, calib=calib, neuron="sigma-delta", pipeline=WITH_LOWERING)
    assert "maxpool" not in {n.op for n in net.graph.nodes}
    path = tmp_path_factory.mktemp("sdnn_vgg_net") / "vgg.net"
    write_netx(net.graph, path)
    return net, path


def _vgg_x(n: int) -> np.ndarray:
    return np.random.default_rng(2).normal(0, 1, (n, 1, 32, 32)).astype(np.float32)


def test_numpy_netx_simulation_is_close_to_the_float_simulation(digits, digits_test_arrays,
                                                                 vgg_net) -> None:
    """The NumPy model of the netx network (no lava-dl needed): the float sigma-delta
    simulation's classes and outputs within the fixed point's error; settled after
    snnc_settle_steps (more steps change nothing)."""
    for (net, path), x in ((digits, digits_test_arrays[0][:32]), (vgg_net, _vgg_x(16))):
        out, run = simulate_netx_file(path, x)
        ref = _float(net, x)
        assert out.shape == ref.shape
        assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.9
        assert _rel_error(out, ref) < MAX_REL_ERROR
        np.testing.assert_array_equal(simulate_netx_file(path, x, steps=12)[1].sigma,
                                      run.sigma)
        assert all(int(m.sum()) > 0 for m in run.messages.values())
        np.testing.assert_array_equal(run_netx(path, x[:2]), out[:2])


@needs_lava_dl
def test_lava_dl_equals_the_numpy_netx_simulation_on_the_digits_cnn(
        digits, digits_test_arrays) -> None:
    net, path = digits
    x = digits_test_arrays[0][:3]
    lava = sdnn_sigma(path, x)  # one Lava run: its output Sigma's integers
    out, run = simulate_netx_file(path, x)
    np.testing.assert_array_equal(lava, run.sigma)  # integer for integer
    np.testing.assert_allclose(decode(read_netx(path), lava), out, rtol=1e-6, atol=1e-6)
    assert np.array_equal(out.argmax(1), _float(net, x).argmax(1))
    assert _rel_error(out, _float(net, x)) < MAX_REL_ERROR


@needs_lava_dl
def test_lava_dl_equals_the_numpy_netx_simulation_on_a_vgg_with_max_pooling(vgg_net) -> None:
    net, path = vgg_net
    kinds = [layer["type"] for layer in _layers(path)]
    assert kinds.count("conv") == 9 and kinds[-2:] == ["flatten", "dense"]  # 3 + 2 per pool
    x = _vgg_x(2)
    out, run = simulate_netx_file(path, x)
    np.testing.assert_array_equal(sdnn_sigma(path, x), run.sigma)
    assert np.array_equal(out.argmax(1), _float(net, x).argmax(1))


def test_running_a_file_snnc_cannot_run_says_why(digits, tmp_path: Path) -> None:
    _, path = digits
    with pytest.raises(InputFileError, match="no such file"):
        run_netx_numpy(tmp_path / "missing.net", np.zeros((1, 1, 8, 8)))
    with pytest.raises(UsageError, match="backend numpy or lava"):
        run_netx(path, np.zeros((1, 1, 8, 8)), backend="loihi")
    with pytest.raises(UsageError, match="reads 64 values per sample"):
        run_netx_numpy(path, np.zeros((1, 1, 9, 9)))
    cuba = tmp_path / "cuba.net"
    cuba.write_bytes(path.read_bytes())
    with h5py.File(cuba, "r+") as f:
        del f.attrs["snnc_neuron"]
    with pytest.raises(UsageError, match="not a netx SDNN file"):
        run_netx_numpy(cuba, np.zeros((1, 1, 8, 8)))


def test_a_leftover_max_pool_is_refused_by_name(vgg, tmp_path: Path) -> None:
    model, calib = vgg
    net = snnc.compile(model, calib=calib, neuron="sigma-delta", maxpool="spiking")
    pools = [n for n in net.graph.nodes if n.op == "maxpool"]
    assert pools
    with pytest.raises(ModelError, match=re.escape(pools[0].origin) + r"[\s\S]*max pooling"
                       r"[\s\S]*lower-maxpool"):
        write_netx(net.graph, tmp_path / "vgg.net")
    assert not (tmp_path / "vgg.net").exists()


def test_snnc_run_takes_a_netx_file(digits, digits_test_arrays, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    """`snnc run NET.net` runs the exported file (NumPy, bit-exact to lava-dl's reader): its
    predictions are the NumPy netx simulation's, and --compare is refused with a reason."""
    from snnc.cli import main

    _, path = digits
    x, y = digits_test_arrays
    data = tmp_path / "test.npz"
    np.savez(data, x=x[:20], y=y[:20])
    capsys.readouterr()
    assert main(["run", str(path), "--data", str(data), "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr()
    assert "20 samples, netx SDNN (numpy), accuracy" in printed.out
    report = json.loads((tmp_path / "r.json").read_text())
    out, run = simulate_netx_file(path, x[:20])
    wide = [name for name, peak in run.peak.items() if peak > 2**23 - 1]  # the chip's 24 bits
    assert ("beyond Loihi 2's 24-bit state" in printed.err) == bool(wide)
    assert all(f"{name} (" in printed.err for name in wide)
    assert report["predictions"] == out.argmax(1).tolist() and report["messages_per_sample"] > 0
    assert main(["run", str(path), "--data", str(data), "--compare", "numpy"]) == 2
    assert "--compare needs a .snn artifact" in capsys.readouterr().err
