"""netx export: the digits CNN is written as lava-dl's netx HDF5 (input -> conv -> conv ->
flatten -> dense) and read back: the conv layers are the loihi pipeline's conv synapses
(geometry and kernel as lower-synapses composed them), their kernels reproduce its integer
synapse matrices exactly, and Lava's LIF equations run on the file classify the digits. Where
lava-dl is installed, its own reader runs the file in Lava and gives, integer for integer, the
readout of the NumPy model of those equations used here (which then checks the accuracy on
more samples than Lava could run in a test); without lava-dl, the NumPy model alone. Networks
netx cannot hold are refused with the offending layers named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import snnc
from snnc.cli import main
from snnc.compiler.errors import ModelError
from snnc.compiler.loihi.populations import populations
from snnc.compiler.loihi.synapses import matrix
from snnc.compiler.passes import run_pipeline
from snnc.runtime.netx_lava_dl import cuba_readout, lava_dl_available

h5py = pytest.importorskip("h5py")
from snnc.backends.netx import input_bias, write_netx  # noqa: E402


@pytest.fixture(scope="module")
def digits_snn(digits_model: Path, digits_calib: Path) -> snnc.runtime.CompiledNetwork:
    return snnc.compile(digits_model, calib=digits_calib, shift="none", preset="rate-p99.99")


@pytest.fixture(scope="module")
def netx_file(tmp_path_factory: pytest.TempPathFactory, digits_snn) -> Path:
    path = tmp_path_factory.mktemp("netx") / "digits.net"
    write_netx(digits_snn.graph, path)
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    """The layers as netx's NetDict sees them: datasets only, `type` a 1-element bytes array."""
    layers = []
    with h5py.File(path, "r") as f:
        for i in range(len(f["layer"])):
            group = f["layer"][str(i)]
            layer = {k: group[k][()] for k in group if k != "neuron"}
            layer["type"] = layer["type"][0].decode("ascii")
            if "neuron" in group:
                layer["neuron"] = {k: group["neuron"][k][()] for k in group["neuron"]}
                layer["neuron"]["type"] = layer["neuron"]["type"][0].decode("ascii")
            layers.append(layer)
    return layers


def _conv(x: np.ndarray, layer: dict[str, Any]) -> np.ndarray:
    """Cross-correlation in torch's convention (netx flips kernels for Lava's Conv), written
    out with a window view: independent of snnc's own conv."""
    w = layer["weight"].astype(np.float64)
    (sh, sw), (ph, pw), (dh, dw) = layer["stride"], layer["padding"], layer["dilation"]
    groups, (o, cg, kh, kw) = int(layer["groups"]), w.shape
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, Ho, Wo, kh, kw)
    n, _, ho, wo = win.shape[:4]
    win = win.reshape(n, groups, cg, ho, wo, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, w.reshape(groups, o // groups, cg, kh, kw),
                    optimize=True)
    return out.reshape(n, -1)


def _synapse(layer: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """What a layer's synapses deliver for spikes x (N, *input shape)."""
    if layer["type"] == "conv":
        return _conv(x.astype(np.float64), layer)
    return x.reshape(len(x), -1) @ layer["weight"].T.astype(np.float64)


def test_layers_types_shapes_and_neurons(netx_file: Path) -> None:
    layers = _read(netx_file)
    assert [layer["type"] for layer in layers] == ["input", "conv", "conv", "flatten", "dense"]
    assert [tuple(layer["shape"]) for layer in layers] == [(16, 8, 8), (32, 8, 8), (32, 4, 4),
                                                          (512,), (10,)]
    # average pooling + 3x3 conv became one strided 6x6 conv
    assert layers[2]["weight"].shape == (32, 32, 6, 6)
    assert list(layers[2]["stride"]) == [2, 2] and list(layers[2]["padding"]) == [2, 2]
    for layer in layers:
        if "weight" in layer:
            assert np.issubdtype(layer["weight"].dtype, np.integer)
            assert layer["weight"].min() >= -256 and layer["weight"].max() <= 255
        if layer["type"] != "flatten":
            neuron = layer["neuron"]
            assert neuron["type"] == "CUBA" and neuron["iDecay"] == 4096
            assert 1 <= neuron["vThMant"] <= 2**17 - 1
    assert [layer["neuron"]["vDecay"] for layer in layers if "neuron" in layer] == [0, 0, 0,
                                                                                   4096]
    with h5py.File(netx_file, "r") as f:
        assert f.attrs["snnc_reset"].startswith("subtract")
        assert f["layer/4"].attrs["snnc_readout_scale"] > 0


@pytest.fixture(scope="module")
def lowered(digits_snn):
    return run_pipeline(digits_snn.graph, ("lower-synapses", "quantize-weights"))


def test_conv_layers_are_the_conv_synapses(netx_file: Path, lowered) -> None:
    """Each conv layer is its population's conv synapse node, geometry and kernel unchanged:
    no second window implementation in the exporter."""
    pops = populations(lowered)[1:]
    layers = [layer for layer in _read(netx_file) if layer["type"] in ("conv", "dense")]
    kinds = [pop.synapses[0].kind for pop in pops]
    assert kinds == [layer["type"] for layer in layers] == ["conv", "conv", "dense"]
    for layer, pop in zip(layers, pops, strict=True):
        node = pop.synapses[0].node
        if node.op != "conv":
            continue
        a = node.attrs
        np.testing.assert_array_equal(layer["weight"], node.params["q_weight"])
        assert list(layer["kernelSize"]) == list(node.params["q_weight"].shape[2:])
        assert list(layer["stride"]) == list(a["strides"])
        assert list(layer["padding"]) == list(a["pads"][:2]) == list(a["pads"][2:])
        assert list(layer["dilation"]) == list(a["dilations"])
        assert int(layer["groups"]) == int(a["groups"])
        assert tuple(layer["shape"]) == tuple(node.shape)


def test_kernels_reproduce_the_quantized_synapse_matrices(netx_file: Path, lowered) -> None:
    """Random spike patterns through the file's layers give exactly the integer currents of
    the loihi pipeline's synapse matrices."""
    pops = populations(lowered)[1:]
    layers = [layer for layer in _read(netx_file) if layer["type"] in ("conv", "dense")]
    assert len(layers) == len(pops)
    shape = tuple(lowered.node(pops[0].synapses[0].source).shape)
    rng = np.random.default_rng(0)
    for layer, pop in zip(layers, pops, strict=True):
        syn = pop.synapses[0]
        spikes = (rng.random((64, *shape)) < 0.3).astype(np.float64)
        m = matrix(syn.node, tuple(lowered.node(syn.node.inputs[0]).shape), "q_weight")
        expected = (m @ spikes.reshape(64, -1).T).T
        np.testing.assert_array_equal(_synapse(layer, spikes), expected)
        shape = tuple(layer["shape"])
        if not pop.readout:  # the weight exponent moved into the threshold
            exp = int(syn.node.attrs["q_weight_exp"])
            vth = np.rint(pop.node.params["q_vth"] / 2**exp)
            assert np.all(vth == layer["neuron"]["vThMant"])


def _simulate(layers: list[dict[str, Any]], bias0: np.ndarray, steps: int) -> np.ndarray:
    """Lava's fixed-point LIF as netx configures it (du = iDecay - 1 = 4095, dv = vDecay,
    bias exponent 6, spike if v > vThMant << 6, reset to zero), one step of delay per
    synapse layer; returns the readout's v summed over the steps."""
    neurons = [layer for layer in layers if "neuron" in layer]
    v = [np.zeros((len(bias0), int(np.prod(layer["shape"])))) for layer in neurons]
    spikes = [np.zeros_like(a, dtype=bool) for a in v]
    total = np.zeros_like(v[-1])
    for _ in range(steps):
        # each synapse delivers the spikes its source emitted one step earlier
        current = [np.zeros_like(v[0])] + [
            _synapse(layer, spikes[k].reshape(len(bias0), *neurons[k]["shape"]))
            for k, layer in enumerate(neurons[1:])]
        for k, layer in enumerate(neurons):
            n = layer["neuron"]
            assert n["iDecay"] == 4096 and n["vDecay"] in (0, 4096)
            bias = bias0 if k == 0 else np.repeat(layer["bias"], v[k].shape[1] //
                                                  len(layer["bias"]))
            keep = v[k] if n["vDecay"] == 0 else 0
            v[k] = np.clip(keep + 64 * (current[k] + bias), -(2**23) + 1, 2**23 - 1)
            spikes[k] = v[k] > 64 * int(n["vThMant"])
            v[k][spikes[k]] = 0
        total += v[-1]
    return total


def test_lava_lif_dynamics_on_the_file_classify_digits(netx_file: Path, digits_snn,
                                                      digits_test_arrays) -> None:
    """Reset to zero costs accuracy (README: netx); the network must still work."""
    x, y = (a[:64] for a in digits_test_arrays)
    bias0 = input_bias(digits_snn.graph, x)
    assert bias0.shape == (64, 8, 8, 16)  # Lava's (W, H, C)
    bias0 = bias0.transpose(0, 3, 2, 1).reshape(64, -1)
    out = _simulate(_read(netx_file), bias0, 64 + 3)  # 3 layers of synaptic delay
    accuracy = float((out.argmax(1) == y).mean())
    assert accuracy > 0.75, accuracy


@pytest.mark.skipif(not lava_dl_available(), reason="lava-dl 0.6.0 is not installed (pip "
                    "install --no-deps --ignore-requires-python lava-dl==0.6.0, or make "
                    "install); the NumPy model of Lava's LIF stands in for it")
def test_lava_dl_runs_the_file_as_the_numpy_lif_model(netx_file: Path, digits_snn,
                                                      digits_test_arrays) -> None:
    """lava-dl's reader builds the file into Lava's LIF, Conv and Dense, and Lava's fixed_pt
    run gives the NumPy model's readout exactly (3 samples, T = 16 after 3 steps of delay)."""
    x = digits_test_arrays[0][:3]
    bias0 = input_bias(digits_snn.graph, x)
    lava = cuba_readout(netx_file, bias0, 16 + 3)
    numpy_model = _simulate(_read(netx_file), bias0.transpose(0, 3, 2, 1).reshape(3, -1),
                            16 + 3)
    assert np.abs(lava).max() > 0
    np.testing.assert_array_equal(lava, numpy_model)


def test_residual_adds_are_refused_by_name(tmp_path: Path, digits_calib: Path,
                                           test_data: Path) -> None:
    net = snnc.compile(test_data / "digits_resnet.onnx", calib=digits_calib, preset="rate-p99.99")
    out = tmp_path / "resnet.net"
    with pytest.raises(ModelError, match=r"2 layer\(s\)[\s\S]*'/3/Add' \(Add\)[\s\S]*"
                       r"'/8/Add' \(Add\)[\s\S]*chain"):
        write_netx(net.graph, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_max_pooling_is_refused(digits_calib: Path, test_data: Path) -> None:
    net = snnc.compile(test_data / "digits_vgg_maxpool.onnx", calib=digits_calib,
                       preset="rate-p99.99")
    with pytest.raises(ModelError, match="max pooling"):
        write_netx(net.graph, Path("never-written.net"))


def _tiny_cnn(path: Path, middle: list[tuple[str, dict[str, Any]]]) -> Path:
    """input (1, 8, 8) -> 3x3 conv -> ReLU 'relu1' -> `middle` ops (op, attrs; a Conv gets a
    4 -> 4 channel 3x3 kernel, a Slice its starts/ends/axes as inputs) -> ReLU 'relu2' ->
    Flatten -> Gemm (3 classes)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = []

    def const(name: str, value: np.ndarray, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    nodes = [helper.make_node("Conv", ["x", const("w1", rng.normal(0, 0.5, (4, 1, 3, 3))),
                                       const("b1", np.full(4, 0.1))], ["c1"], name="conv1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    last = "r1"
    for k, (op, attrs) in enumerate(middle):
        out = f"m{k}"
        if op == "Conv":
            inputs = [last, const(f"wm{k}", rng.normal(0, 0.3, (4, 4, 3, 3))),
                      const(f"bm{k}", np.full(4, 0.1))]
            nodes.append(helper.make_node(op, inputs, [out], name=f"conv_m{k}",
                                          kernel_shape=[3, 3], **attrs))
        else:  # Slice: attrs are its index inputs
            inputs = [last] + [const(f"{key}{k}", v, np.int64) for key, v in attrs.items()]
            nodes.append(helper.make_node(op, inputs, [out], name=f"slice_m{k}"))
        last = out
    nodes.append(helper.make_node("Relu", [last], ["r2"], name="relu2"))
    nodes.append(helper.make_node("Flatten", ["r2"], ["f"], name="flatten"))

    def make(outputs: list[Any]) -> Any:
        return helper.make_model(helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
            "x", TensorProto.FLOAT, [1, 1, 8, 8])], outputs, inits),
            opset_imports=[helper.make_opsetid("", 13)])

    inferred = onnx.shape_inference.infer_shapes(make([helper.make_tensor_value_info(
        "f", TensorProto.FLOAT, None)]))
    dims = next(v.type.tensor_type.shape.dim for v in inferred.graph.output if v.name == "f")
    n_in = int(dims[1].dim_value)
    nodes.append(helper.make_node("Gemm", ["f", const("wg", rng.normal(0, 0.1, (3, n_in))),
                                           const("bg", np.zeros(3))], ["y"], name="gemm",
                                  transB=1))
    onnx.save(make([helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]), path)
    return path


def _tiny_snn(tmp_path: Path, middle: list[tuple[str, dict[str, Any]]]
              ) -> snnc.runtime.CompiledNetwork:
    model = _tiny_cnn(tmp_path / "tiny.onnx", middle)
    calib = np.random.default_rng(1).random((16, 1, 8, 8)).astype(np.float32)
    return snnc.compile(model, calib=calib, shift="none", preset="rate-p99.99")


def test_a_plain_strided_conv_is_a_netx_conv(tmp_path: Path) -> None:
    net = _tiny_snn(tmp_path, [("Conv", {"strides": [2, 2], "pads": [1, 1, 1, 1]})])
    write_netx(net.graph, tmp_path / "tiny.net")
    layers = _read(tmp_path / "tiny.net")
    assert [layer["type"] for layer in layers] == ["input", "conv", "flatten", "dense"]
    assert tuple(layers[1]["shape"]) == (4, 4, 4)
    assert list(layers[1]["stride"]) == [2, 2] and list(layers[1]["padding"]) == [1, 1]


def test_asymmetric_padding_is_refused_by_name(tmp_path: Path) -> None:
    """pads (0, 0, 1, 1) at stride 2: no symmetric padding gives the same 4x4 output."""
    net = _tiny_snn(tmp_path, [("Conv", {"strides": [2, 2], "pads": [0, 0, 1, 1]})])
    with pytest.raises(ModelError, match=r"'relu2' \(Relu\)[\s\S]*asymmetric padding "
                       r"\[0, 0, 1, 1\]"):
        write_netx(net.graph, tmp_path / "tiny.net")
    assert not (tmp_path / "tiny.net").exists()


def test_small_sparse_synapses_are_dense_layers_large_ones_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crop before a conv: lower-synapses holds that stretch as a sparse matrix."""
    from snnc.backends.netx import export
    from snnc.compiler.loihi.populations import populations
    from snnc.compiler.loihi.synapses import matrix

    crop = {"starts": [1, 1], "ends": [7, 7], "axes": [2, 3]}
    net = _tiny_snn(tmp_path, [("Slice", crop), ("Conv", {"pads": [1, 1, 1, 1]})])
    write_netx(net.graph, tmp_path / "tiny.net")
    layers = _read(tmp_path / "tiny.net")
    assert [layer["type"] for layer in layers] == ["input", "flatten", "dense", "dense"]
    lowered = export._lowered(net.graph)
    syn = next(p for p in populations(lowered) if p.name == "relu2").synapses[0]
    assert syn.kind == "sparse"
    want = matrix(syn.node, lowered.node(syn.node.inputs[0]).shape, "q_weight").toarray()
    np.testing.assert_array_equal(layers[2]["weight"], want)
    monkeypatch.setattr(export, "DENSE_LIMIT", 0)
    with pytest.raises(ModelError, match=r"'relu2' \(Relu\)[\s\S]*neither a convolution "
                       r"nor a dense layer"):
        write_netx(net.graph, tmp_path / "big.net")
    assert not (tmp_path / "big.net").exists()


def test_cli_target_netx(tmp_path: Path, digits_model: Path, digits_calib: Path,
                         capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "digits.onnx"
    model.write_bytes(digits_model.read_bytes())
    assert main(["compile", str(model), "--target", "netx", "--calib", str(digits_calib)]) == 0
    assert (tmp_path / "digits.net").is_file()  # the default suffix
    captured = capsys.readouterr()
    assert "digits.net" in captured.out
    assert "reset to zero" in captured.err
