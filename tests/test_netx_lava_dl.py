"""netx SDNN export (`--target netx --neuron sigma-delta`) read by lava-dl's own netx reader:
`netx.hdf5.Network(net_config=..., skip_layers=1)` builds the file into Lava's Sigma /
SigmaDelta processes, runs in Lava's CPU simulation (fixed_pt) between RingBuffer source and
sink, and reproduces snnc's sigma-delta simulation on a few samples of the digits CNN and of a
32x32 VGG-like net whose max pools the lower-maxpool pass turned into ReLU layers.

Not bit-exact (backends/netx/sdnn.py says why: netx's messages drop 6 bits per layer, its
biases are on before a layer's input arrives); measured against snnc's float simulation:
relative L2 error 0.055 on both nets (4 samples each), the same class on every sample."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import snnc
from snnc.backends.netx import write_netx
from snnc.backends.numpy.simulator import simulate
from snnc.compiler.errors import ModelError
from snnc.compiler.passes.manager import FOLD_BATCHNORM, LOWER_MAXPOOL, SIGMA_DELTA_PIPELINE
from snnc.runtime.netx_lava_dl import lava_dl_available, run_sdnn

h5py = pytest.importorskip("h5py")
needs_lava_dl = pytest.mark.skipif(
    not lava_dl_available(), reason="lava-dl 0.6.0 is not installed (pip install --no-deps "
    "--ignore-requires-python lava-dl==0.6.0, or make install)")
MAX_REL_ERROR = 0.1  # measured 0.055 on both nets
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


def _agreement(net: snnc.runtime.CompiledNetwork, path: Path, x: np.ndarray) -> float:
    lava = run_sdnn(path, x)
    ref = simulate(net.graph, x, [8]).outputs[-1].astype(np.float64)
    assert lava.shape == ref.shape
    assert np.array_equal(lava.argmax(1), ref.argmax(1))
    return float(np.linalg.norm(lava - ref) / np.linalg.norm(ref))


@needs_lava_dl
def test_lava_dl_runs_the_digits_sdnn_file(digits, digits_test_arrays) -> None:
    net, path = digits
    x = digits_test_arrays[0][:4]
    assert _agreement(net, path, x) < MAX_REL_ERROR


@needs_lava_dl
def test_lava_dl_runs_a_vgg_with_max_pooling_as_relu_layers(vgg, tmp_path: Path) -> None:
    model, calib = vgg
    net = snnc.compile(model, calib=calib, neuron="sigma-delta", pipeline=WITH_LOWERING)
    assert "maxpool" not in {n.op for n in net.graph.nodes}
    path = tmp_path / "vgg.net"
    write_netx(net.graph, path)
    kinds = [layer["type"] for layer in _layers(path)]
    assert kinds.count("conv") == 9 and kinds[-2:] == ["flatten", "dense"]  # 3 + 2 per pool
    x = np.random.default_rng(2).normal(0, 1, (4, 1, 32, 32)).astype(np.float32)
    assert _agreement(net, path, x) < MAX_REL_ERROR


def test_a_leftover_max_pool_is_refused_by_name(vgg, tmp_path: Path) -> None:
    model, calib = vgg
    net = snnc.compile(model, calib=calib, neuron="sigma-delta", maxpool="spiking")
    pools = [n for n in net.graph.nodes if n.op == "maxpool"]
    assert pools
    with pytest.raises(ModelError, match=re.escape(pools[0].origin) + r"[\s\S]*max pooling"
                       r"[\s\S]*lower-maxpool"):
        write_netx(net.graph, tmp_path / "vgg.net")
    assert not (tmp_path / "vgg.net").exists()
