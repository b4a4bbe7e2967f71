"""Graded (multi-threshold, burst) IF neurons, `--spike-bits B`: hand-computed rasters, the two
simulator engines bit for bit, the conversion (theta = lambda / (2^B - 1)), B = 1 artifacts
byte-identical to not passing the flag, accuracy at low T on the digits CNN, message / payload /
SOP counts, the energy model, the spike-bits search, and the targets that refuse B > 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import snnc
from snnc.backends.numpy import kernels, simulate
from snnc.cli import main
from snnc.compiler.errors import DataError, InputFileError, ModelError, UsageError
from snnc.compiler.executor import run
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.ir.graph import Graph
from snnc.compiler.ir.printer import to_text
from snnc.compiler.ir.verify import verify
from snnc.compiler.passes import NormSpec, normalize_thresholds
from snnc.frontends.onnx import load_onnx
from snnc.runtime import artifact, load
from snnc.runtime.metrics import E_AC_PJ, E_MAC_PJ, op_counts

F32 = np.float32
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    return np.load(DIGITS / "calib.npz")["x"]


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DIGITS / "test.npz") as f:
        return f["x"], f["y"]


def graded_neuron(bits: int, theta: float = 1.0, v0: float = 0.0, signed: bool = False,
                  n: int = 1) -> Graph:
    """input -> identity linear -> graded IF -> identity linear readout (n neurons)."""
    b = GraphBuilder((n,))
    b.add("lin", "linear", ["x"], weight=np.eye(n), bias=np.zeros(n))
    attrs: dict[str, Any] = {"reset": "subtract", "spike_bits": bits}
    if signed:
        attrs["signed"] = True
    b.add("if1", "if", ["lin"], attrs, theta=theta, v0=v0)
    b.add("out", "linear", ["if1"], weight=np.eye(n), bias=np.zeros(n))
    return b.graph(stage="snn")


def emitted(result: Any, steps: int, theta: float = 1.0) -> np.ndarray:
    """The count n the neuron emitted at each step 1..steps, from the readout's running
    averages at every checkpoint (sum_t = t * average_t)."""
    sums = result.outputs[:, 0, 0].astype(np.float64) * np.arange(1, steps + 1)
    return np.round(np.diff(sums, prepend=0.0) / theta).astype(int)


ENGINES = ["reference", "fast"] if kernels.AVAILABLE else ["reference"]

# (bits, theta, v0, signed, input, counts per step), worked out by hand:
RASTERS = [
    # B=2 (K=3), theta=1, z=1.3: V = 1.3|.3 1.6|.6 1.9|.9 2.2|.2 1.5|.5 1.8|.8 2.1|.1 1.4
    (2, 1.0, 0.0, False, 1.3, [1, 1, 1, 2, 1, 1, 2, 1]),
    # saturation: z=5 > K*theta gives K every step
    (2, 1.0, 0.0, False, 5.0, [3, 3, 3, 3]),
    # B=3 (K=7), theta=.5, V(0)=theta/2, z=1.7: V = 1.95 -> 3 (.45), 2.15 -> 4 (.15),
    # 1.85 -> 3 (.35), 2.05 -> 4 (.05): rate 3.5 * .5 = 1.75 ~ z, rounded per quantum
    (3, 0.5, 0.25, False, 1.7, [3, 4, 3, 4]),
    (3, 0.5, 0.0, False, 5.0, [7, 7, 7]),
    # unsigned: a negative potential emits nothing
    (2, 1.0, 2.5, False, -1.0, [1, 0, 0, 0]),
    # signed B=2: V(0)=5.5, z=-2.2: V=3.3 -> +3 (.3, net 3); -1.9 -> -2 (.1, net 1);
    # -2.1 -> -1 only (net is 1: never below zero; V=-1.1); -3.3 -> 0 (net 0)
    (2, 1.0, 5.5, True, -2.2, [3, -2, -1, 0]),
    # signed B=2: V(0)=3.5, z=-.6: 2.9 -> +2 (.9); .3; -.3 -> -1 (.7); .1; -.5 -> -1 (.5, net 0);
    # -.1, -.7, ... -> nothing
    (2, 1.0, 3.5, True, -0.6, [2, 0, -1, 0, -1, 0, 0, 0]),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("bits", "theta", "v0", "signed", "z", "counts"), RASTERS)
def test_hand_computed_graded_rasters(engine: str, bits: int, theta: float, v0: float,
                                      signed: bool, z: float, counts: list[int]) -> None:
    steps = len(counts)
    ts = list(range(1, steps + 1))
    result = simulate(graded_neuron(bits, theta, v0, signed), np.array([[z]], F32), ts,
                      engine=engine)
    np.testing.assert_array_equal(emitted(result, steps, theta), counts)
    # a message per neuron-step with n != 0; the payload adds |n|
    np.testing.assert_array_equal(result.spikes["if1"][:, 0], np.cumsum(np.array(counts) != 0))
    np.testing.assert_array_equal(result.payload["if1"][:, 0], np.cumsum(np.abs(counts)))
    assert result.payload_per_sample()[-1] == np.abs(counts).sum()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bits", [2, 3])
def test_t_steps_round_to_the_quantum(engine: str, bits: int) -> None:
    """With V(0) = theta/2 and constant input, T steps deliver clip(floor(T z / theta + 1/2),
    0, T K) counts: the ANN's clip(z, 0, K theta) rounded to theta / T."""
    k, theta, t = 2 ** bits - 1, 0.37, 3
    z = np.linspace(-0.5, 1.3 * k, 701, dtype=F32) * F32(theta)
    g = graded_neuron(bits, theta, theta / 2, n=len(z))
    result = simulate(g, z[None, :], [t], engine=engine)
    count = result.outputs[0, 0] * t / theta
    u = t * z.astype(np.float64) / theta + 0.5
    clear = np.abs(u - np.round(u)) > 1e-3
    expected = np.clip(np.floor(u), 0, t * k)
    np.testing.assert_allclose(count[clear], expected[clear], atol=1e-3)


def _dense(signed: bool, bits: int, shift: bool) -> Graph:
    rng = np.random.default_rng(3)
    b = GraphBuilder((12,))
    extra = {"i_shift": rng.uniform(0, 0.1, 6)} if shift else {}
    attrs = {"reset": "subtract", "spike_bits": bits, **({"signed": True} if signed else {})}
    b.add("l1", "linear", ["x"], weight=rng.normal(0, 0.6, (6, 12)), bias=rng.normal(0, .1, 6))
    b.add("if1", "if", ["l1"], attrs, theta=rng.uniform(0.1, 0.4, 6),
          v0=rng.uniform(0, 0.2, 6), **extra)
    b.add("l2", "linear", ["if1"], weight=rng.normal(0, 0.6, (5, 6)), bias=np.zeros(5))
    b.add("if2", "if", ["l2"], attrs, theta=0.2, v0=0.1)
    b.add("out", "linear", ["if2"], weight=rng.normal(0, 1, (3, 5)), bias=np.zeros(3))
    return b.graph(stage="snn")


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize(("signed", "bits", "shift"), [
    (False, 2, False), (False, 3, True), (True, 2, False), (True, 3, True), (False, 8, False)])
def test_fast_engine_is_bit_equal_on_graded_neurons(signed: bool, bits: int,
                                                     shift: bool) -> None:
    """The numba kernel does the reference's float32 operations; 300 steps cross the 255-step
    flush of the per-neuron counters (B = 8: 255 counts a step)."""
    graph = _dense(signed, bits, shift)
    x = np.random.default_rng(0).normal(0, 1, (64, 12)).astype(F32)
    ts = [1, 3, 8, 20, 300]
    ref = simulate(graph, x, ts)
    fast = simulate(graph, x, ts, engine="fast")
    np.testing.assert_array_equal(fast.outputs, ref.outputs)
    for name in ref.spikes:
        np.testing.assert_array_equal(fast.spikes[name], ref.spikes[name])
        np.testing.assert_array_equal(fast.payload[name], ref.payload[name])
        assert (ref.payload[name][-1] > ref.spikes[name][-1]).any()  # counts above 1 occur


def test_engines_agree_on_the_graded_digits_cnn(calib: np.ndarray,
                                                test_set: tuple[np.ndarray, np.ndarray]
                                                ) -> None:
    x = test_set[0][:200]
    net = snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=4, preset="rate-p99.99",
                       neuron="signed", spike_bits=3)
    ref = net.simulate(x, [1, 2, 4], engine="reference")
    fast = net.simulate(x, [1, 2, 4], engine="fast")
    np.testing.assert_allclose(fast.outputs, ref.outputs, atol=2e-3 * np.abs(ref.outputs).max())
    agree = (fast.outputs.reshape(3, len(x), -1).argmax(-1)
             == ref.outputs.reshape(3, len(x), -1).argmax(-1)).mean()
    assert agree >= 0.99
    for name in ref.spikes:
        assert abs(int(fast.payload_of(name).sum()) - int(ref.payload_of(name).sum())) \
            <= 1e-3 * ref.payload_of(name).sum()


# ------------------------------------------------------------------------- the conversion


def test_theta_is_the_clip_level_over_the_counts(calib: np.ndarray) -> None:
    """Same thresholds from data, so lambda is shared: B=3 gives theta = lambda / 7, stores
    spike_bits only for B > 1, and its IR evaluates the same ANN clip(z, 0, lambda)."""
    binary = snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=2,
                          preset="rate-p99.99").graph
    graded = snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=2,
                          preset="rate-p99.99", spike_bits=3).graph
    for b, g in zip([n for n in binary.nodes if n.op == "if"],
                    [n for n in graded.nodes if n.op == "if"], strict=True):
        assert "spike_bits" not in b.attrs and g.attrs["spike_bits"] == 3
        np.testing.assert_allclose(g.params["theta"] * 7, b.params["theta"], rtol=1e-6)
        np.testing.assert_allclose(g.params["v0"], g.params["theta"] / 2, rtol=1e-6)
    assert "spike_bits" not in binary.meta and graded.meta["spike_bits"] == 3
    np.testing.assert_allclose(run(graded, calib[:64]), run(binary, calib[:64]), rtol=1e-4,
                               atol=1e-4)
    assert "spike_bits=3" in to_text(graded) and "spike_bits" not in to_text(binary)


def test_mmse_thresholds_quantize_to_t_times_the_counts(calib: np.ndarray) -> None:
    """mmse for a graded neuron at T is the mmse of T * (2^B - 1) binary steps."""
    graph = load_onnx(DIGITS / "model.onnx")
    spec = NormSpec("mmse", 100.0, True)
    graded = normalize_thresholds(graph, calib, spec, timesteps=2, spike_bits=2)
    binary = normalize_thresholds(graph, calib, spec, timesteps=6)
    for a, b in zip(graded.nodes, binary.nodes, strict=True):
        if "theta" in a.params:
            # (the streaming histograms of two passes may differ in the last float bit)
            np.testing.assert_allclose(a.params["theta"], b.params["theta"], rtol=1e-5)


def test_verify_refuses_bad_spike_bits() -> None:
    g = graded_neuron(2)
    for bad in ({"spike_bits": 1}, {"spike_bits": 9}, {"spike_bits": "2"},
                {"spike_bits": 2, "reset": "zero"}):
        nodes = [n.replace(attrs={**n.attrs, **bad}) if n.op == "if" else n for n in g.nodes]
        with pytest.raises(ModelError, match="spike_bits|graded"):
            verify(g.replace(nodes))


def test_spike_bits_one_artifacts_are_byte_identical(tmp_path: Path) -> None:
    """--spike-bits 1 changes nothing: the same bytes as without the flag, for a fixed preset
    and for the tuned default (small T to keep it quick)."""
    model, calib_path = DIGITS / "model.onnx", DIGITS / "calib.npz"
    for preset, t in (("rate-p99.99", "8"), ("calibrated", "2")):
        plain, flagged = tmp_path / f"{preset}.snn", tmp_path / f"{preset}-b1.snn"
        base = ["compile", str(model), "--calib", str(calib_path), "--preset", preset,
                "--timesteps", t]
        assert main([*base, "-o", str(plain)]) == 0
        assert main([*base, "--spike-bits", "1", "--max-spike-bits", "1",
                     "-o", str(flagged)]) == 0
        assert plain.read_bytes() == flagged.read_bytes()
        assert b"spike_bits" not in plain.read_bytes()


def test_graded_artifact_round_trip(tmp_path: Path, calib: np.ndarray,
                                    test_set: tuple[np.ndarray, np.ndarray]) -> None:
    net = snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=2, preset="rate-p99.99",
                       spike_bits=2)
    path = tmp_path / "graded.snn"
    net.save(path)
    back = load(path)
    assert back.options["spike_bits"] == 2 and "max_spike_bits" not in back.options
    assert to_text(back.graph) == to_text(net.graph)
    x = test_set[0][:64]
    a, b = net.run(x), back.run(x)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert a.payload_per_sample == b.payload_per_sample > a.spikes_per_sample
    # a tampered width is refused on load, as a bad artifact
    raw = artifact.encode(net.graph, net.target, net.options).replace(
        b'"spike_bits":2', b'"spike_bits":9')
    (tmp_path / "bad.snn").write_bytes(raw)
    with pytest.raises(InputFileError, match="spike_bits"):
        load(tmp_path / "bad.snn")


# ------------------------------------------------------------------------------- accuracy


def test_graded_neurons_are_more_accurate_at_low_t(calib: np.ndarray,
                                                   test_set: tuple[np.ndarray, np.ndarray]
                                                   ) -> None:
    """Rueckauer's p99.99 thresholds at T = 2: binary neurons lose several points (about 92%
    here), graded ones with 2 bits recover the ANN's 99.4% to within one point."""
    x, y = test_set
    acc = {}
    for bits in (1, 2):
        net = snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=2,
                           preset="rate-p99.99", spike_bits=bits)
        acc[bits] = net.run(x).accuracy(y)
    assert acc[2] >= 0.98 and acc[2] > acc[1] + 0.03, acc


def test_graded_default_preset_at_one_step(calib: np.ndarray,
                                           test_set: tuple[np.ndarray, np.ndarray]) -> None:
    """The default (tuned, signed) preset at T = 1: graded at least as accurate as binary."""
    x, y = test_set
    acc = [snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=1, spike_bits=bits)
           .run(x).accuracy(y) for bits in (1, 2)]
    assert acc[1] >= acc[0] and acc[1] >= 0.99, acc


def test_tuning_chooses_the_spike_bits(calib: np.ndarray) -> None:
    net = snnc.compile(DIGITS / "model.onnx", calib=calib, timesteps=1, max_spike_bits=3)
    labels = [row["candidate"] for row in net.options["tuned"]]
    for bits in (1, 2, 3):
        assert any(label.startswith(f"spike bits {bits},") for label in labels)
    assert len(labels) <= 3 + 5 + 1  # one per width, the percentiles at the winner, calibration
    chosen = net.options["spike_bits"]
    assert net.options["max_spike_bits"] == 3 and 1 <= chosen <= 3
    widths = {n.attrs.get("spike_bits", 1) for n in net.graph.nodes if n.op == "if"}
    assert widths == {chosen}
    # the fewest bits that agree best: no smaller width reached the winner's agreement
    by_width = {int(r["candidate"].split(",")[0].split()[-1]): r["agreement"]
                for r in net.options["tuned"][:3]}
    assert all(by_width[b] < by_width[chosen] for b in by_width if b < chosen)


# --------------------------------------------------------------------- counts and energy


def test_graded_messages_are_charged_as_macs() -> None:
    graph = _dense(False, 2, False)
    counts = op_counts(graph, {"if1": 3.0, "if2": 2.0})
    assert counts.sops == pytest.approx(3.0 / 6 * 30 + 2.0 / 5 * 15)
    assert counts.graded_sops == pytest.approx(counts.sops)
    assert counts.snn_energy_uj == pytest.approx((counts.snn_macs + counts.sops) * E_MAC_PJ
                                                 * 1e-6)
    binary = Graph(tuple(n.replace(attrs={"reset": "subtract"}) if n.op == "if" else n
                         for n in graph.nodes), graph.output, graph.meta)
    plain = op_counts(binary, {"if1": 3.0, "if2": 2.0})
    assert plain.graded_sops == 0 and plain.sops == pytest.approx(counts.sops)
    assert plain.snn_energy_uj == pytest.approx((plain.snn_macs * E_MAC_PJ
                                                 + plain.sops * E_AC_PJ) * 1e-6)


def test_eval_prints_messages_payload_and_sops(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "eval.json"
    assert main(["eval", str(DIGITS / "model.onnx"), "--data", str(DIGITS / "test.npz"),
                 "--calib", str(DIGITS / "calib.npz"), "--preset", "rate-p99.99",
                 "--timesteps", "1,2", "--spike-bits", "2", "--json", str(report)]) == 0
    table = capsys.readouterr().out
    for needle in ("messages/sample", "payload/sample", "SOPs/sample", "graded"):
        assert needle in table
    rows = json.loads(report.read_text())["snn"]
    for row in rows:
        assert row["spike_bits"] == 2
        assert row["payload_per_sample"] > row["messages_per_sample"] > 0
        assert row["graded_sops_per_sample"] == pytest.approx(row["sops_per_sample"])
    assert rows[1]["messages_per_sample"] > rows[0]["messages_per_sample"]


def test_run_reports_messages_and_payload(tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out, report = tmp_path / "g.snn", tmp_path / "run.json"
    assert main(["compile", str(DIGITS / "model.onnx"), "--calib", str(DIGITS / "calib.npz"),
                 "--preset", "rate-p99.99", "--timesteps", "2", "--spike-bits", "3",
                 "-o", str(out)]) == 0
    assert "spike bits: 3" in capsys.readouterr().out
    assert main(["run", str(out), "--data", str(DIGITS / "test.npz"),
                 "--json", str(report)]) == 0
    assert "payload/sample" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["payload_per_sample"] > data["messages_per_sample"] > 0


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("target", ["nir", "netx"])  # lava/loihi: tests/test_graded_lava.py
def test_other_targets_refuse_graded_spikes(target: str, calib: np.ndarray) -> None:
    for kwargs in ({"spike_bits": 2}, {"max_spike_bits": 2}):
        with pytest.raises(UsageError, match=f"--target {target}.*--target numpy"):
            snnc.compile(DIGITS / "model.onnx", calib=calib, target=target, neuron="if",
                         **kwargs)


def test_bad_spike_bit_options_are_usage_errors(calib: np.ndarray) -> None:
    model = DIGITS / "model.onnx"
    with pytest.raises(UsageError, match="lif"):
        snnc.compile(model, calib=calib, neuron="lif", spike_bits=2)
    for bad in (0, 9, 2.5):
        with pytest.raises(UsageError, match="--spike-bits"):
            snnc.compile(model, calib=calib, spike_bits=bad)
    with pytest.raises(UsageError, match="below"):
        snnc.compile(model, calib=calib, spike_bits=3, max_spike_bits=2)
    with pytest.raises(DataError, match="calibration"):
        snnc.compile(model, preset="rate-p99.99", max_spike_bits=2)
    assert main(["compile", str(model), "--calib", str(DIGITS / "calib.npz"), "--target",
                 "netx", "--spike-bits", "2"]) == 2
