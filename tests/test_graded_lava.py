"""Graded spikes (`--spike-bits B`) and signed neurons on --target lava / loihi: IFSub sends
the payload n, the synapses read it with num_message_bits, max pooling and the readout take it;
Lava's fixed point equals the NumPy bit-exact mode spike for spike, payload for payload, on the
digits CNN and on two 32x32 torch nets (VGG-like with max pooling, ResNet-like with skip Adds);
the bit-exact mode agrees with the float simulator; binary plans are unchanged."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.backends.lava import lava_available
from snnc.backends.lava.plan import build_plan
from snnc.backends.numpy import simulate
from snnc.backends.numpy.loihi import simulate_loihi
from snnc.cli import main
from snnc.compiler.errors import ModelError, UsageError
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.loihi.populations import message_bits, payload
from snnc.compiler.passes import lower_synapses, quantize_weights
from snnc.runtime.lava_run import compare_with_numpy

needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
N = 2  # samples per Lava comparison: each Lava step of a 32x32 net costs milliseconds
T = 8
# (spike bits, neuron) of the graded and signed settings under test
SETTINGS = [(3, "if"), (1, "signed"), (3, "signed")]


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with np.load(DIGITS / "calib.npz") as c, np.load(DIGITS / "test.npz") as t:
        return c["x"], c["y"], t["x"], t["y"]


# ------------------------------------------------------------------ small nets, no Lava


def _chain(bits: int, signed: bool = False) -> object:
    """input -> IF (graded: theta = 1, V(0) = 0.5) -> linear readout."""
    b = GraphBuilder((1,))
    b.add("fc1", "linear", ["x"], weight=[[1.0]], bias=[0.0])
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=[[1.0]], bias=[0.0])
    b.add("fc3", "linear", ["fc2"], weight=[[1.0]], bias=[0.0])
    g = b.graph(stage="snn")
    extra = {"spike_bits": bits} if bits > 1 else {}
    extra.update({"signed": True} if signed else {})
    return g.replace([n.with_attrs(**extra) if n.op == "if" else n for n in g.nodes])


def test_message_bits_and_binary_plans_unchanged() -> None:
    """B bits for counts 0..2^B - 1, B + 1 for signed ones, 0 (Lava's binary s_in) for
    binary spikes; only graded / signed plans carry levels and num_message_bits."""
    cases = {(1, False): (1, False, 0), (3, False): (7, False, 3), (1, True): (1, True, 2),
             (3, True): (7, True, 4)}
    for (bits, signed), (k, sgn, mbits) in cases.items():
        q = quantize_weights(lower_synapses(_chain(bits, signed)))
        assert payload(q, "if1") == (k, sgn) and message_bits(q, "if1") == mbits
        for mode in ("fixed", "float"):
            plan = build_plan(q, mode)
            neuron, syn = plan.proc("if1"), next(p for p in plan.procs if p.kind == "dense")
            assert ("levels" in neuron.params) == (mbits > 0)
            assert syn.params.get("num_message_bits", 0) == mbits


def test_graded_bit_exact_chain_matches_the_hand_raster() -> None:
    """K = 3, an input of 1.3 theta: the input-fed population's threshold is 4096 / (K + 1) =
    1024 and its current round(1.3 * 1024) = 1331 per step, V(0) = 512: v = 1843 -> n = 1
    (819), 2150 -> 2 (102), 1433 -> 1 (409), 1740 -> 1 (716), 2047 -> 1 (1023), 2354 -> 2."""
    q = quantize_weights(lower_synapses(_chain(2)))
    assert int(q.node("if1").params["q_vth"][0]) == 1024
    res = simulate_loihi(q, np.array([[1.3]], np.float32), [6], rasters=True)
    assert res.rasters["if1"][0, :, 0].tolist() == [1, 2, 1, 1, 1, 2]
    assert int(res.spikes["if1"][0, 0]) == 6 and int(res.payload["if1"][0, 0]) == 8


def test_ternary_neurons_are_refused_for_lava_targets() -> None:
    g = _chain(1, signed=True)
    g = g.replace([n.with_attrs(ternary=True) if n.op == "if" else n for n in g.nodes])
    with pytest.raises(ModelError, match="if1.*ternary.*--target numpy"):
        lower_synapses(g)


@pytest.mark.parametrize("target", ["nir", "netx"])
def test_exporters_still_refuse_graded_spikes(target: str) -> None:
    calib = _digits()[0]
    with pytest.raises(UsageError, match=f"--target {target}.*binary"):
        snnc.compile(DIGITS / "model.onnx", calib=calib, target=target, neuron="if",
                     spike_bits=2)


@pytest.mark.parametrize(("bits", "neuron"), SETTINGS)
def test_bit_exact_mode_agrees_with_the_float_simulator(bits: int, neuron: str) -> None:
    """The digits CNN, 200 test samples at T = 8: fixed point predicts what float does on
    >= 97% of them, with message and payload totals within 3% per layer."""
    xc, _, x, _ = _digits()
    kw = {"calib": xc, "timesteps": T, "preset": "rate-p99.99", "spike_bits": bits,
          "neuron": neuron}
    fixed = snnc.compile(DIGITS / "model.onnx", target="loihi", **kw)
    flt = snnc.compile(DIGITS / "model.onnx", target="lava", **kw)
    lo, fl = simulate_loihi(fixed.graph, x[:200], [T]), simulate(flt.graph, x[:200], [T])
    agree = float(np.mean(lo.outputs[0].argmax(1) == fl.outputs[0].argmax(1)))
    assert agree >= 0.97, agree
    for name, s in fl.spikes.items():
        assert abs(lo.spikes[name].sum() / s.sum() - 1) < 0.03, name
        assert abs(lo.payload[name].sum() / fl.payload_of(name).sum() - 1) < 0.03, name


# ------------------------------------------------------------------- Lava: digits CNN


@pytest.fixture(scope="module")
def digits_nets() -> dict[tuple[int, str, str], snnc.CompiledNetwork]:
    xc = _digits()[0]
    return {(bits, neuron, target): snnc.compile(
        DIGITS / "model.onnx", calib=xc, target=target, timesteps=T, preset="rate-p99.99",
        spike_bits=bits, neuron=neuron)
        for bits, neuron in SETTINGS for target in ("loihi", "lava")}


def _check_payloads(cmp: object, bits: int) -> None:
    """Every IF layer reports payloads; graded messages carry several counts on average."""
    spikes, carried = cmp.lava.spikes, cmp.lava.payload
    assert set(carried) == set(spikes)
    if bits > 1:
        assert sum(carried.values()).sum() > 1.2 * sum(spikes.values()).sum()


@needs_lava
@pytest.mark.parametrize(("bits", "neuron"), SETTINGS)
def test_digits_lava_equals_numpy_payload_for_payload(
        bits: int, neuron: str, digits_nets: dict) -> None:
    x = _digits()[2][:N]
    fixed = compare_with_numpy(digits_nets[bits, neuron, "loihi"], x, T)
    assert fixed.agree, fixed.mismatches
    assert any(k.endswith(":payload") for k in fixed.mismatches)
    _check_payloads(fixed, bits)
    if neuron == "signed":  # some messages take counts back
        ref = simulate_loihi(digits_nets[bits, neuron, "loihi"].graph, x, [T], rasters=True)
        assert min(int(r.min()) for r in ref.rasters.values()) < 0
    flt = compare_with_numpy(digits_nets[bits, neuron, "lava"], x, T)
    assert flt.agree and flt.max_output_diff <= 1e-5, flt.mismatches


@needs_lava
def test_cli_compiles_and_compares_graded_signed_nets(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    _, _, x, y = _digits()
    data = tmp_path / "few.npz"
    np.savez(data, x=x[:N], y=y[:N])
    out = tmp_path / "net.snn"
    assert main(["compile", str(DIGITS / "model.onnx"), "--calib", str(DIGITS / "calib.npz"),
                 "--target", "loihi", "--preset", "rate-p99.99", "--timesteps", "4",
                 "--spike-bits", "3", "--neuron", "signed", "-o", str(out)]) == 0
    assert "spike bits: 3" in capsys.readouterr().out
    assert main(["run", str(out), "--data", str(data), "--backend", "lava", "--compare",
                 "numpy"]) == 0
    assert "AGREE" in capsys.readouterr().out


# ---------------------------------------------------------- Lava: 32x32 torch nets


def _up(x: np.ndarray) -> np.ndarray:
    """8x8 digits as 32x32 images (each pixel 4x4), standardised with the calibration set's
    mean and std (0.31, 0.38; rounded)."""
    big = np.kron(x, np.ones((1, 1, 4, 4), np.float32))
    return np.ascontiguousarray((big - 0.3) / 0.38, np.float32)


def _torch_net(name: str) -> object:
    """vgg_maxpool: three conv + ReLU layers, two max pools, an average pool and a linear
    head; resnet_skip: a strided stem, two residual blocks (skip Add, then ReLU) and a head."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.b(torch.relu(self.a(x))) + x)

    if name == "vgg_maxpool":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # 16x16
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),         # 8x8
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(8), nn.Flatten(),
            nn.Linear(16, 10))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),                   # 16x16
        Block(8), nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),        # 8x8
        Block(12), nn.AvgPool2d(8), nn.Flatten(), nn.Linear(12, 10))


NETS = ("resnet_skip", "vgg_maxpool")


def trained_32x32(name: str, path: Path) -> Path:
    """Net `name` trained briefly (full batch) on the upsampled digits calibration set, as
    ONNX at `path`."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    xc, yc, _, _ = _digits()
    x, y = torch.tensor(_up(xc)), torch.tensor(yc)
    net = _torch_net(name)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(120):  # seconds; about 75% (VGG) / 90% (ResNet) test accuracy
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False,
                          input_names=["input"], dynamic_axes={"input": {0: "n"}})
    return path


@pytest.fixture(scope="module", params=NETS)
def net32(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    return request.param, trained_32x32(request.param, path)


@needs_lava
@pytest.mark.parametrize(("bits", "neuron"), [(3, "if"), (3, "signed")])
def test_32x32_nets_lava_equals_numpy_payload_for_payload(
        net32: tuple[str, Path], bits: int, neuron: str) -> None:
    """--spike-bits 3 (and signed graded neurons): the VGG-like net's spiking max pools and the
    ResNet-like net's skip connections (delayed synapses) carry payloads bit-exactly."""
    name, model = net32
    xc, _, x, _ = _digits()
    kw = {"calib": _up(xc), "timesteps": T, "preset": "rate-p99.99", "spike_bits": bits,
          "neuron": neuron}
    net = snnc.compile(model, target="loihi", **kw)
    plan = build_plan(net.graph, "fixed")
    if name == "vgg_maxpool":
        assert sum(p.kind == "maxpool" for p in plan.procs) == 2
    else:
        assert any(p.params.get("delay", 1) > 1 for p in plan.procs)
    fixed = compare_with_numpy(net, _up(x[:N]), T)
    assert fixed.agree, fixed.mismatches
    _check_payloads(fixed, bits)
    if neuron == "if":
        flt = compare_with_numpy(snnc.compile(model, target="lava", **kw), _up(x[:N]), T)
        assert flt.agree and flt.max_output_diff <= 1e-5, flt.mismatches
