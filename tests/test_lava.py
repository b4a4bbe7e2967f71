"""Tests that start Lava for real (a handful: each Lava run costs about a second, and each
sample a fraction of one, so the spike-for-spike checks run a few samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.backends.lava import lava_available
from snnc.cli import main
from snnc.runtime.lava_run import compare_with_numpy

pytestmark = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
N = 8  # samples for the spike-for-spike acceptance checks (about 0.5 s each in fixed point)


def test_compat_shims_make_lava_importable() -> None:
    from snnc.backends.lava import require_lava

    require_lava()
    from lava.magma.compiler.var_model import LoihiAddress  # the 3.11 dataclass fix
    from lava.magma.core.process.ports.ports import ReshapePort

    assert LoihiAddress is not None
    port = ReshapePort(new_shape=(2, 3), old_shape=(6,))
    assert port.get_transform_func_fwd()(np.arange(6)).shape == (2, 3)  # numpy 2.4 fix
    assert port.get_transform_func_bwd()(np.zeros((2, 3))).shape == (6,)
    import multiprocessing

    from lava.proc.conv import utils

    from snnc.backends.lava.compat import fast_conv

    assert utils.conv is fast_conv  # Lava's Conv models call utils.conv at every step,
    assert multiprocessing.get_start_method() == "fork"  # in workers forked from here


def test_fast_conv_equals_lavas_scipy_conv() -> None:
    """The vectorized conv (compat.fast_conv) against Lava's own conv_scipy on random inputs:
    spikes (bool) and graded integers bit for bit, floats to rounding; strides, symmetric
    padding, dilation, groups and depthwise, kernels up to 4x4 and non-square."""
    from snnc.backends.lava import require_lava

    require_lava()
    from lava.proc.conv.utils import conv_scipy

    from snnc.backends.lava.compat import fast_conv

    rng = np.random.default_rng(0)
    seen = set()
    for trial in range(160):
        g = int(rng.choice([1, 1, 2, 3]))
        depthwise = trial % 5 == 0
        g = 4 if depthwise else g
        cig = 1 if depthwise else int(rng.integers(1, 4))
        co = g * (int(rng.integers(1, 3)) if depthwise else int(rng.integers(1, 4)))
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s, p, d = ((int(rng.integers(lo, hi)), int(rng.integers(lo, hi)))
                   for lo, hi in ((1, 4), (0, 3), (1, 3)))
        size = (int(rng.integers(1, 11)), int(rng.integers(1, 11)))
        if any(size[a] + 2 * p[a] < d[a] * (k[a] - 1) + 1 for a in range(2)):
            continue
        kind = trial % 3
        if kind == 0:  # spikes and Conv's fixed-point weights (m << e)
            x = rng.random((*size, g * cig)) < 0.3
            w = rng.integers(-256, 256, (co, *k, cig)).astype(np.int32) << int(rng.integers(8))
        elif kind == 1:  # graded spikes
            x = rng.integers(-100, 100, (*size, g * cig)).astype(np.int32)
            w = rng.integers(-256, 256, (co, *k, cig)).astype(np.int32)
        else:
            x = (rng.random((*size, g * cig)) < 0.5).astype(float)
            w = rng.normal(size=(co, *k, cig))
        geometry = (np.array(k, np.int8), np.array(s, np.int8), np.array(p, np.int8),
                    np.array(d, np.int8))
        want = conv_scipy(x, w, *geometry, g).astype(w.dtype)
        got = fast_conv(x, w, *geometry, np.int8(g))
        assert got.shape == want.shape and got.dtype == want.dtype
        if kind < 2:
            assert np.array_equal(got, want), trial
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        seen.add((s != (1, 1), p != (0, 0), d != (1, 1), g > 1, depthwise))
    assert len(seen) > 12  # many combinations of the five features
    # Lava's model passes groups as an int8 scalar: with 128 or more input channels Lava's
    # own function fails on numpy 2 (`128 % int8`); compat's works (VGG-sized layers)
    x = rng.random((3, 3, 130)) < 0.3
    w = rng.integers(-256, 256, (4, 3, 3, 130)).astype(np.int32)
    geometry = (np.array([3, 3], np.int8), np.ones(2, np.int8), np.ones(2, np.int8),
                np.ones(2, np.int8))
    with pytest.raises(OverflowError):
        conv_scipy(x, w, *geometry, np.int8(1))
    assert np.array_equal(fast_conv(x, w, *geometry, np.int8(1)),
                          conv_scipy(x, w, *geometry, 1).astype(np.int32))


def test_fast_delay_sparse_stack_equals_lavas() -> None:
    """compat's DelaySparse weight stack against Lava's own: the same matrix where all
    synapses share one delay on the weights' pattern, Lava's answer for mixed delays."""
    import warnings

    import scipy.sparse as sp

    from snnc.backends.lava import require_lava

    require_lava()
    from lava.proc.sparse.models import AbstractPyDelaySparseModel

    from snnc.backends.lava.compat import _ORIGINAL, fast_delay_wgts_mat

    assert AbstractPyDelaySparseModel.get_delay_wgts_mat is fast_delay_wgts_mat
    lava = _ORIGINAL["delay_wgts_mat"]
    rng = np.random.default_rng(0)
    for trial in range(24):
        n_out, n_in = (int(n) for n in rng.integers(1, 20, 2))
        w = sp.random(n_out, n_in, density=0.3, random_state=trial, format="csr")
        if w.nnz == 0:
            continue
        if trial % 2:
            w = sp.csr_matrix((rng.integers(-256, 256, w.nnz).astype(np.int32), w.indices,
                               w.indptr), shape=w.shape)
        one = trial % 3 != 0
        d = np.full(w.nnz, int(rng.integers(1, 4))) if one else rng.integers(0, 4, w.nnz)
        delays = sp.csr_matrix((d.astype(int), w.indices, w.indptr), shape=w.shape)
        top = max(int(d.max()), 1) + int(rng.integers(0, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lava's own fancy assignment warns
            want = lava(w, delays, top)
        got = fast_delay_wgts_mat(w, delays, top)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got.toarray(), want.toarray()), trial


def test_dense_to_if_in_lava_matches_a_hand_raster() -> None:
    """input-fed IF (current 0.3 theta) -> Dense -> IF -> readout, 10 steps, fixed point."""
    from snnc.backends.lava.network import run_lava
    from snnc.backends.lava.plan import build_plan
    from snnc.backends.numpy.loihi import simulate_loihi
    from snnc.compiler.loihi.populations import input_currents

    q = _tiny("subtract")
    x = np.array([[0.3]], np.float32)
    res = run_lava(build_plan(q, "fixed"), input_currents(q, x, True), 10, raster=True)
    # if1 in integers: vth 2048, v0 1024, +614 (= round(0.3 * 2048)) per step: v = 1638,
    # 2252 -> spike (204), 818, 1432, 2046 (just short: 0.3 was rounded down), 2660 -> spike,
    # 1226, 1840, 2454 -> spike: steps 2, 6, 9
    assert np.flatnonzero(res.rasters["if1"][0, :, 0]).tolist() == [1, 5, 8]
    ref = simulate_loihi(q, x, [10])
    assert np.array_equal(res.rasters["if2"], ref.rasters["if2"])
    assert np.array_equal(res.acc, ref.acc)


@pytest.fixture(scope="module")
def digits_nets(digits_model: Path, digits_calib: Path) -> dict[str, snnc.CompiledNetwork]:
    return {t: snnc.compile(digits_model, calib=digits_calib, target=t, timesteps=16,
                            preset="rate-p99.99")
            for t in ("lava", "loihi")}


def test_fixed_point_lava_equals_numpy_loihi_mode_spike_for_spike(
        digits_nets: dict, digits_test_arrays: tuple) -> None:
    x, _ = digits_test_arrays
    cmp = compare_with_numpy(digits_nets["loihi"], x[:N], 16)
    assert cmp.agree, cmp.mismatches
    assert sum(cmp.lava.spikes.values()).sum() > 1000  # the layers do fire


def test_float_lava_equals_float_numpy(digits_nets: dict, digits_test_arrays: tuple) -> None:
    x, _ = digits_test_arrays
    net = digits_nets["lava"]
    lava = net.run(x[:N], 16, backend="lava")
    ref = net.run(x[:N], 16)
    assert np.array_equal(lava.predictions, ref.predictions)
    np.testing.assert_allclose(lava.outputs, ref.outputs, rtol=1e-5,
                               atol=1e-5 * float(np.abs(ref.outputs).max()))
    for name, counts in ref.spikes.items():
        assert np.array_equal(lava.spikes[name], counts)


def test_cli_run_compare_exits_zero_when_they_agree(
        tmp_path: Path, digits_model: Path, digits_calib: Path,
        digits_test_arrays: tuple, capsys: pytest.CaptureFixture) -> None:
    x, y = digits_test_arrays
    data = tmp_path / "few.npz"
    np.savez(data, x=x[:N], y=y[:N])
    out = tmp_path / "net.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--target",
                 "loihi", "--timesteps", "8", "-o", str(out)]) == 0
    assert main(["run", str(out), "--data", str(data), "--backend", "lava", "--compare",
                 "numpy"]) == 0
    assert "AGREE" in capsys.readouterr().out
    assert main(["run", str(out), "--data", str(data), "--backend", "lava"]) == 0
    assert "accuracy" in capsys.readouterr().out
    plain = tmp_path / "plain.snn"  # compiled for numpy: Lava cannot run it, exit 2 says why
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "-o",
                 str(plain)]) == 0
    assert main(["run", str(plain), "--data", str(data), "--backend", "lava"]) == 2
    assert "--target lava" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["digits_vgg_maxpool.onnx", "digits_resnet.onnx"])
def test_maxpool_and_residual_nets_match_spike_for_spike(
        name: str, digits_calib: Path, digits_test_arrays: tuple) -> None:
    """VGG-like (spiking max pooling) and ResNet-like (skip connections: DelayDense)."""
    x, _ = digits_test_arrays
    model = Path(__file__).parent / "data" / name
    fixed = compare_with_numpy(snnc.compile(model, calib=digits_calib, target="loihi",
                                            preset="rate-p99.99"),
                               x[:N], 12)
    assert fixed.agree, fixed.mismatches
    flt = compare_with_numpy(snnc.compile(model, calib=digits_calib, target="lava",
                                          preset="rate-p99.99"), x[:N], 12)
    assert flt.agree and flt.max_output_diff <= 1e-5, flt.mismatches


def _tiny(reset: str) -> object:
    from snnc.compiler.ir.builder import GraphBuilder
    from snnc.compiler.passes import lower_synapses, quantize_weights

    b = GraphBuilder((1,))
    b.add("fc1", "linear", ["x"], weight=[[1.0]], bias=[0.0])
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=[[0.6]], bias=[0.0])
    b.neuron("if2", "fc2", theta=1.0, v0=0.5)
    b.add("fc3", "linear", ["if2"], weight=[[1.0]], bias=[0.0])
    g = b.graph(stage="snn")
    g = g.replace([n.with_attrs(reset=reset) if n.op == "if" else n for n in g.nodes])
    return quantize_weights(lower_synapses(g))


def test_stock_lif_in_lava_matches_the_hand_raster() -> None:
    """Lava's own LIF (reset to zero): input 0.3 theta fires at steps 2, 6, 10 (subtraction:
    2, 6, 9, see the test above); two samples, progress reported once per sample."""
    from snnc.backends.lava.network import run_lava
    from snnc.backends.lava.plan import build_plan
    from snnc.backends.numpy.loihi import simulate_loihi
    from snnc.compiler.loihi.populations import input_currents

    q = _tiny("zero")
    x = np.array([[0.3], [0.3]], np.float32)
    plan = build_plan(q, "fixed")
    assert [p.kind for p in plan.neurons] == ["lif", "lif"]
    seen: list[int] = []
    res = run_lava(plan, input_currents(q, x, True), 10, raster=True, progress=seen.append)
    assert seen == [1, 1]
    assert np.flatnonzero(res.rasters["if1"][1, :, 0]).tolist() == [1, 5, 9]
    ref = simulate_loihi(q, x, [10])
    for name in ("if1", "if2"):
        assert np.array_equal(res.rasters[name], ref.rasters[name])
    assert np.array_equal(res.acc, ref.acc)


@pytest.fixture(scope="module")
def digits_lif(digits_model: Path, digits_calib: Path) -> dict[str, snnc.CompiledNetwork]:
    """The digits CNN with every neuron reset to zero (as --neuron lif compiles it)."""
    from snnc.compiler.passes import lower_synapses, quantize_weights
    from snnc.runtime import CompiledNetwork

    g = snnc.compile(digits_model, calib=digits_calib, timesteps=16, preset="rate-p99.99").graph
    g = lower_synapses(g.replace([n.with_attrs(reset="zero") if n.op == "if" else n
                                  for n in g.nodes]))
    return {"lava": CompiledNetwork(g, "lava"),
            "loihi": CompiledNetwork(quantize_weights(g), "loihi")}


@pytest.mark.parametrize("conv", ["lava", "sparse"])
def test_stock_lif_digits_lava_equals_numpy_bit_exact(
        conv: str, digits_lif: dict, digits_test_arrays: tuple) -> None:
    x, _ = digits_test_arrays
    cmp = compare_with_numpy(digits_lif["loihi"], x[:2], 16, conv=conv)
    assert cmp.agree, cmp.mismatches
    assert sum(cmp.lava.spikes.values()).sum() > 200


def test_stock_lif_float_lava_equals_float_numpy(digits_lif: dict,
                                                 digits_test_arrays: tuple) -> None:
    x, _ = digits_test_arrays
    cmp = compare_with_numpy(digits_lif["lava"], x[:2], 16)
    assert cmp.agree and cmp.max_output_diff <= 1e-5, cmp.mismatches


def _pool_plan() -> tuple[object, object]:
    from snnc.backends.lava.plan import build_plan
    from snnc.compiler.ir.builder import GraphBuilder
    from snnc.compiler.passes import lower_synapses, quantize_weights

    conv = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1}
    b = GraphBuilder((1, 4, 4))
    b.add("c1", "conv", ["x"], conv, weight=np.ones((2, 1, 1, 1)), bias=[0, 0])
    b.neuron("if1", "c1", theta=1.0)
    b.add("mp", "maxpool", ["if1"], {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4,
                                     "dilations": [1, 1], "ceil_mode": 0})
    b.add("fl", "flatten", ["mp"])
    b.add("fc", "linear", ["fl"], weight=np.ones((2, 8)), bias=[0, 0])
    q = quantize_weights(lower_synapses(b.graph(stage="snn")))
    return q, build_plan(q, "fixed")


@pytest.mark.parametrize("broken", ["run", "build"])
def test_a_failing_lava_worker_is_reported_not_hung(broken: str) -> None:
    """A process parameter that fails inside Lava's worker (an out-of-range pooling index
    while running, a bias of the wrong size while building): BackendError naming the
    process, every worker ended."""
    import dataclasses
    import multiprocessing

    from snnc.backends.lava.network import BackendError, run_lava
    from snnc.compiler.loihi.populations import input_currents

    q, plan = _pool_plan()
    name, key = ("mp", "index") if broken == "run" else ("if1", "bias_mant")
    spec = plan.proc(name)
    bad = spec.params[key] + 1000 if broken == "run" else np.zeros(3, np.int64)
    procs = tuple(dataclasses.replace(p, params={**p.params, key: bad}) if p is spec else p
                  for p in plan.procs)
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 4, 4)).astype(np.float32)
    why = "IndexError" if broken == "run" else "ValueError"
    with pytest.raises(BackendError, match=f"process {name} .*{why}"):
        run_lava(dataclasses.replace(plan, procs=procs), input_currents(q, x, True), 5)
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def _geometry_net() -> object:
    """Every window geometry a conv synapse can have, between small IF layers:
    strided, dilated, grouped (+ an identity skip connection of delay 2), depthwise, padded
    at the beginning only (Lava's symmetric padding gives the same output) and TF-'SAME'
    padded at the end (it does not: Sparse); a two-branch linear readout."""
    from snnc.compiler.ir.builder import GraphBuilder

    rng = np.random.default_rng(0)
    b = GraphBuilder((2, 12, 12))

    def layer(name: str, inp: str, c_in: int, c_out: int, pads: list[int], stride: int = 1,
              dil: int = 1, groups: int = 1, skip: str | None = None) -> None:
        attrs = {"strides": [stride] * 2, "pads": pads, "dilations": [dil] * 2,
                 "groups": groups}
        w = rng.normal(0.25, 0.4, (c_out, c_in // groups, 3, 3)) / np.sqrt(9 * c_in / groups)
        b.add(f"c_{name}", "conv", [inp], attrs, weight=w, bias=rng.normal(0.05, 0.05, c_out))
        feed = b.add(f"sum_{name}", "add", [f"c_{name}", skip]) if skip else f"c_{name}"
        b.neuron(name, feed, theta=rng.uniform(0.6, 1.2, (c_out, 1, 1)), v0=0.5)

    layer("if0", "x", 2, 4, [1] * 4)
    layer("strided", "if0", 4, 4, [1] * 4, stride=2)  # 6x6 from here
    layer("dilated", "strided", 4, 4, [2] * 4, dil=2)
    layer("grouped", "dilated", 4, 4, [1] * 4, groups=2, skip="strided")
    layer("depthwise", "grouped", 4, 4, [1] * 4, groups=4)
    layer("begin_pad", "depthwise", 4, 6, [1, 1, 0, 0], stride=2)  # 3x3
    layer("same_pad", "depthwise", 4, 6, [0, 0, 1, 1], stride=2)  # 3x3
    for k, name in enumerate(("begin_pad", "same_pad")):
        b.add(f"fl{k}", "flatten", [name])
        b.add(f"fc{k}", "linear", [f"fl{k}"], weight=rng.normal(0, 0.3, (3, 54)),
              bias=np.full(3, 0.1 * k))
    b.add("out", "add", ["fc0", "fc1"])
    return b.graph(stage="snn")


def test_conv_geometries_in_lava_equal_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lava's Conv for strided, dilated, grouped, depthwise and begin-padded windows, Sparse
    for the end-padded one and DelaySparse for the skip connection: fixed point bit-exact
    with the NumPy loihi mode, float equal to the float simulator. Lava's scipy conv is
    made to fail, so the Conv processes (in Lava's worker processes) must run compat's."""
    from lava.proc.conv import utils

    from snnc.backends.lava.plan import build_plan
    from snnc.compiler.passes import lower_synapses, quantize_weights
    from snnc.runtime import CompiledNetwork

    def no_scipy(*args: object) -> None:
        raise AssertionError("Lava's scipy conv ran")

    monkeypatch.setattr(utils, "conv_scipy", no_scipy)
    g = lower_synapses(_geometry_net())
    q = quantize_weights(g)
    procs = {p.name: p for p in build_plan(q, "fixed").procs if p.kind in ("conv", "sparse")}
    kinds = {name: (p.kind, p.params.get("delay", 1), p.params.get("groups"))
             for name, p in procs.items()}
    assert kinds == {"strided_syn0": ("conv", 1, 1), "dilated_syn0": ("conv", 1, 1),
                     "grouped_syn0": ("sparse", 2, None),  # the skip: DelaySparse
                     "grouped_syn1": ("conv", 1, 2), "depthwise_syn0": ("conv", 1, 4),
                     "begin_pad_syn0": ("conv", 1, 1), "same_pad_syn0": ("sparse", 1, None)}
    assert procs["depthwise_syn0"].params["weight"].shape == (4, 3, 3, 1)
    assert procs["dilated_syn0"].params["dilation"] == (2, 2)
    x = np.random.default_rng(1).uniform(0, 1, (2, 2, 12, 12)).astype(np.float32)
    fixed = compare_with_numpy(CompiledNetwork(q, "loihi"), x, 10)
    assert fixed.agree, fixed.mismatches
    assert min(int(s.sum()) for s in fixed.lava.spikes.values()) > 50  # every layer fires
    flt = compare_with_numpy(CompiledNetwork(g, "lava"), x, 10)
    assert flt.agree and flt.max_output_diff <= 1e-5, flt.mismatches
