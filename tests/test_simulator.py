"""The NumPy spiking simulator against hand-computed IF dynamics, the rate-coding identities it
promises (decoded output, spiking max pooling, half-step rounding) and the ANN it converts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import snnc
from snnc.backends.numpy import simulate
from snnc.compiler.errors import DataError, UsageError
from snnc.compiler.executor import run
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.ir.graph import Graph
from snnc.compiler.passes import NormSpec, PassOptions, run_pipeline, shift_bias
from snnc.frontends.onnx import load_onnx

F32 = np.float32
DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def identity_linear(n: int) -> dict[str, np.ndarray]:
    return {"weight": np.eye(n, dtype=F32), "bias": np.zeros(n, F32)}


def single_neuron(n: int = 1, theta: Any = 1.0, v0: Any = 0.0, **extra: Any) -> Graph:
    """input -> identity linear -> IF -> identity linear readout, over n independent neurons."""
    b = GraphBuilder((n,))
    b.add("lin", "linear", ["x"], **identity_linear(n))
    b.neuron("if1", "lin", theta, v0, **extra)
    b.add("out", "linear", ["if1"], **identity_linear(n))
    return b.graph(stage="snn")


def per_step(outputs: np.ndarray, timesteps: Sequence[int]) -> np.ndarray:
    """The output node's value at each step, recovered from the running averages at every
    checkpoint 1..T (sum_t = t * average_t)."""
    assert list(timesteps) == list(range(1, len(timesteps) + 1))
    t = np.arange(1, len(timesteps) + 1).reshape((-1,) + (1,) * (outputs.ndim - 1))
    sums = outputs.astype(np.float64) * t
    return np.diff(sums, axis=0, prepend=0.0)


# -------------------------------------------------------------------------- the IF neuron


def test_hand_computed_spike_raster() -> None:
    """theta=1, v0=0, input 0.3: V = .3 .6 .9 1.2|.2 .5 .8 1.1|.1 .4 .7 1.0|0 -> spikes at
    t = 4, 7, 10."""
    g = single_neuron()
    ts = list(range(1, 13))
    result = simulate(g, np.array([[0.3]], F32), ts)
    expected = np.array([sum(s <= t for s in (4, 7, 10)) for t in ts])
    np.testing.assert_array_equal(result.spikes["if1"][:, 0], expected)
    assert list(result.spikes) == ["if1"]
    # the readout sees spikes of amplitude theta: its average is count * theta / t
    np.testing.assert_allclose(result.outputs[:, 0, 0], expected / np.array(ts), atol=1e-6)
    raster = per_step(result.outputs[:, 0, 0], ts)
    np.testing.assert_allclose(raster, [float(t in (4, 7, 10)) for t in ts], atol=1e-5)


def test_spike_counts_at_sparse_checkpoints() -> None:
    result = simulate(single_neuron(), np.array([[0.3]], F32), [3, 4, 6, 7, 9, 10, 11])
    np.testing.assert_array_equal(result.spikes["if1"][:, 0], [0, 1, 1, 2, 2, 3, 3])


def _away_from_rounding_edges(z: np.ndarray, t: int, theta: float, offset: float) -> np.ndarray:
    """Where T*z/theta + offset is not within float noise of an integer."""
    u = t * z / theta + offset
    return np.abs(u - np.round(u)) > 1e-3


@pytest.mark.parametrize("theta", [1.0, 0.37])
def test_half_theta_start_rounds_the_rate(theta: float) -> None:
    """With V(0) = theta/2 the count after T steps is round(T z / theta), clipped to [0, T]."""
    z = np.linspace(-0.6, 1.6, 801, dtype=F32) * F32(theta)
    ts = [1, 2, 5, 16, 33, 64]
    result = simulate(single_neuron(1, theta, theta / 2), z.reshape(-1, 1), ts)
    for k, t in enumerate(ts):
        expected = np.clip(np.floor(t * z.astype(np.float64) / theta + 0.5), 0, t)
        ok = _away_from_rounding_edges(z, t, theta, 0.5)
        assert ok.mean() > 0.9
        np.testing.assert_array_equal(result.spikes["if1"][k][ok], expected[ok], err_msg=f"T={t}")


def test_zero_start_floors_the_rate() -> None:
    theta = 0.8
    z = np.linspace(-0.5, 1.5, 401, dtype=F32) * F32(theta)
    ts = [3, 10, 50]
    result = simulate(single_neuron(1, theta, 0.0), z.reshape(-1, 1), ts)
    for k, t in enumerate(ts):
        expected = np.clip(np.floor(t * z.astype(np.float64) / theta), 0, t)
        ok = _away_from_rounding_edges(z, t, theta, 0.0)
        np.testing.assert_array_equal(result.spikes["if1"][k][ok], expected[ok], err_msg=f"T={t}")


@pytest.mark.parametrize("t", [4, 25])
def test_input_shift_rounds_at_its_own_t(t: int) -> None:
    """shift-bias 'input' (theta/(2T) every step) gives the same count at T as V(0)=theta/2."""
    theta = 0.5
    g = shift_bias(single_neuron(1, theta, 0.0), "input", timesteps=t)
    z = np.linspace(-0.3, 1.3, 321, dtype=F32) * F32(theta)
    result = simulate(g, z.reshape(-1, 1), t)
    expected = np.clip(np.floor(t * z.astype(np.float64) / theta + 0.5), 0, t)
    ok = _away_from_rounding_edges(z, t, theta, 0.5)
    np.testing.assert_array_equal(result.spikes["if1"][0][ok], expected[ok])


@pytest.mark.parametrize("factor", [1.0, 1.5, 2.5, 40.0])
def test_input_above_theta_saturates_at_one_spike_per_step(factor: float) -> None:
    theta = 0.6
    ts = [1, 2, 3, 10, 100]
    x = np.array([[theta * factor]], F32)
    result = simulate(single_neuron(1, theta), x, ts)
    np.testing.assert_array_equal(result.spikes["if1"][:, 0], ts)
    np.testing.assert_allclose(result.outputs[:, 0, 0], theta, rtol=1e-6)


def test_reset_subtracts_theta_and_keeps_the_residue() -> None:
    """z = 0.75, theta = 1: V = .75, 1.5|.5, 1.25|.25, 1.0|0, .75 ... three spikes in four
    steps (reset to zero would lose the residue and give two)."""
    ts = list(range(1, 9))
    result = simulate(single_neuron(), np.array([[0.75]], F32), ts)
    np.testing.assert_array_equal(result.spikes["if1"][:, 0], [0, 1, 2, 3, 3, 4, 5, 6])


def test_per_channel_theta_and_v0() -> None:
    theta = np.array([1.0, 0.5, 2.0], F32)
    g = single_neuron(3, theta, theta / 2)
    x = np.array([[0.3, 0.3, 0.3]], F32)
    t = 40
    result = simulate(g, x, t)
    rates = result.outputs[0, 0]  # identity readout: count_i * theta_i / T
    counts = rates * t / theta
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    np.testing.assert_array_equal(np.round(counts), np.floor(t * 0.3 / theta + 0.5))
    assert result.spikes["if1"][0, 0] == int(np.round(counts).sum())


# ----------------------------------------------------------------------- decoding and pools


def two_layer(readout: dict[str, np.ndarray]) -> tuple[Graph, np.ndarray]:
    rng = np.random.default_rng(0)
    theta = np.array([0.9, 1.3, 0.7, 2.0], F32)
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], weight=rng.normal(0, 1, (4, 3)), bias=rng.normal(0, .3, 4))
    b.neuron("if1", "fc1", theta, theta / 2)
    b.add("fc2", "linear", ["if1"], **readout)
    return b.graph(stage="snn"), theta


def test_decoded_output_is_the_readout_of_the_spike_rates() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 2, (25, 3)).astype(F32)
    ts = [3, 10, 64]
    probe, theta = two_layer(identity_linear(4))
    rates = simulate(probe, x, ts)
    w2, b2 = rng.normal(0, 1, (2, 4)).astype(F32), rng.normal(0, 1, 2).astype(F32)
    g, _ = two_layer({"weight": w2, "bias": b2})
    result = simulate(g, x, ts)
    for k, t in enumerate(ts):
        counts = rates.outputs[k] * t / theta  # the identity readout shows count * theta / T
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
        assert counts.min() > -1e-3 and counts.max() < t + 1e-3
        np.testing.assert_array_equal(np.round(counts).sum(axis=1), result.spikes["if1"][k])
        expected = (np.round(counts) * theta / t) @ w2.T + b2
        np.testing.assert_allclose(result.outputs[k], expected, rtol=1e-5, atol=1e-5)


def maxpool_net(output_pool: bool, theta: np.ndarray) -> Graph:
    b = GraphBuilder((2, 4, 4))
    b.add("conv1", "conv", ["x"], {"strides": [1, 1], "pads": [0, 0, 0, 0],
                                   "dilations": [1, 1], "groups": 1},
          weight=np.eye(2, dtype=F32).reshape(2, 2, 1, 1), bias=np.zeros(2, F32))
    b.neuron("if1", "conv1", theta.reshape(2, 1, 1))
    if output_pool:
        b.add("pool", "maxpool", ["if1"], {"kernel": [2, 2], "strides": [2, 2],
                                           "pads": [0, 0, 0, 0], "dilations": [1, 1],
                                           "ceil_mode": 0})
    return b.graph(stage="snn")


def test_spiking_maxpool_averages_to_the_max_of_input_rates() -> None:
    rng = np.random.default_rng(2)
    theta = np.array([1.0, 0.5], F32)
    x = (rng.uniform(0.05, 0.95, (6, 2, 4, 4)) * theta.reshape(1, 2, 1, 1)).astype(F32)
    ts = list(range(1, 41))
    rates = simulate(maxpool_net(False, theta), x, ts).outputs  # (T, N, 2, 4, 4)
    pooled = simulate(maxpool_net(True, theta), x, ts).outputs  # (T, N, 2, 2, 2)
    windows = rates.reshape(len(ts), 6, 2, 2, 2, 2, 2).max(axis=(4, 6))
    np.testing.assert_allclose(pooled, windows, atol=1e-5)
    # not trivially so: the max of per-step spikes would average higher than the max rate
    assert not np.allclose(pooled[-1], theta.reshape(1, 2, 1, 1))


def test_spiking_maxpool_emits_spikes_of_amplitude_theta() -> None:
    rng = np.random.default_rng(3)
    theta = np.array([1.0, 0.5], F32)
    x = (rng.uniform(0.1, 0.9, (4, 2, 4, 4)) * theta.reshape(1, 2, 1, 1)).astype(F32)
    ts = list(range(1, 31))
    steps = per_step(simulate(maxpool_net(True, theta), x, ts).outputs, ts)
    th = theta.reshape(1, 1, 2, 1, 1)
    is_zero = np.isclose(steps, 0, atol=1e-4)
    is_theta = np.isclose(steps, th, atol=1e-4)
    assert np.all(is_zero | is_theta)
    assert is_theta.any() and is_zero.any()


def test_graph_without_neurons_runs_the_ann_once_per_step() -> None:
    rng = np.random.default_rng(4)
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], weight=rng.normal(size=(2, 3)), bias=rng.normal(size=2))
    g = b.graph(stage="snn")
    x = rng.normal(size=(5, 3)).astype(F32)
    result = simulate(g, x, [1, 7])
    np.testing.assert_allclose(result.outputs, np.stack([run(g, x)] * 2), rtol=1e-6)
    assert result.spikes == {}
    np.testing.assert_array_equal(result.spikes_per_sample(), [0, 0])


# ------------------------------------------------------------------- checkpoints and batching


@pytest.fixture(scope="module")
def small_snn() -> tuple[Graph, np.ndarray]:
    """A random conv net with avg and max pooling, compiled by the real pipeline."""
    rng = np.random.default_rng(5)
    conv = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    pool = {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1],
            "ceil_mode": 0}
    b = GraphBuilder((1, 8, 8))
    b.add("conv1", "conv", ["x"], conv, weight=rng.normal(0, .6, (4, 1, 3, 3)),
          bias=rng.normal(0, .1, 4))
    b.add("relu1", "relu", ["conv1"])
    b.add("pool1", "maxpool", ["relu1"], pool)
    b.add("conv2", "conv", ["pool1"], conv, weight=rng.normal(0, .4, (5, 4, 3, 3)),
          bias=rng.normal(0, .1, 5))
    b.add("relu2", "relu", ["conv2"])
    b.add("pool2", "avgpool", ["relu2"], {**pool, "count_include_pad": 0})
    b.add("flat", "flatten", ["pool2"])
    b.add("fc", "linear", ["flat"], weight=rng.normal(0, .5, (3, 20)), bias=np.zeros(3))
    x = rng.uniform(0, 1, (40, 1, 8, 8)).astype(F32)
    snn = run_pipeline(b.graph(stage="ann"), options=PassOptions(
        calib=x, norm=NormSpec.parse("percentile:99.9")))
    return snn, x


def test_checkpoints_equal_separate_runs(small_snn: tuple[Graph, np.ndarray]) -> None:
    snn, x = small_snn
    both = simulate(snn, x, [16, 4])
    assert both.timesteps == [4, 16]
    for t in (4, 16):
        alone = simulate(snn, x, t)
        np.testing.assert_array_equal(both.at(t), alone.outputs[0])
        for name in ("relu1", "relu2"):
            np.testing.assert_array_equal(both.spikes[name][both.timesteps.index(t)],
                                          alone.spikes[name][0])
    assert both.spikes["relu1"].shape == (2, len(x))
    assert np.all(both.spikes["relu1"][1] >= both.spikes["relu1"][0])
    assert both.spikes["relu1"][1].sum() > 0


def test_batch_size_does_not_change_results(small_snn: tuple[Graph, np.ndarray]) -> None:
    snn, x = small_snn
    whole = simulate(snn, x, [5, 12])
    seen: list[int] = []
    chunked = simulate(snn, x, [5, 12], batch_size=7, progress=seen.append)
    assert seen == [7] * 5 + [5]
    np.testing.assert_allclose(chunked.outputs, whole.outputs, rtol=1e-6, atol=1e-6)
    for name, counts in whole.spikes.items():
        np.testing.assert_array_equal(chunked.spikes[name], counts)
    one = simulate(snn, x[3:4], [5, 12])
    np.testing.assert_allclose(one.outputs[:, 0], whole.outputs[:, 3], rtol=1e-6, atol=1e-6)


def test_a_single_unbatched_sample_is_accepted(small_snn: tuple[Graph, np.ndarray]) -> None:
    snn, x = small_snn
    single = simulate(snn, x[0], 6)  # (1, 8, 8) without the batch axis
    np.testing.assert_allclose(single.outputs, simulate(snn, x[:1], 6).outputs, rtol=1e-6)


def test_digits_snn_converges_to_the_ann() -> None:
    calib = np.load(DIGITS / "calib.npz")["x"]
    x = np.load(DIGITS / "test.npz")["x"][:32]
    net = snnc.compile(DIGITS / "model.onnx", calib=calib, preset="rate-p99.99")
    ann = run(load_onnx(DIGITS / "model.onnx"), x)
    result = net.simulate(x, [8, 256])
    err8 = np.abs(result.at(8) - ann).mean()
    err256 = np.abs(result.at(256) - ann).mean()
    assert err256 < 0.2 * err8
    assert (result.at(256).argmax(1) == ann.argmax(1)).mean() >= 0.9
    per_sample = result.spikes_per_sample()
    assert per_sample.shape == (2,) and per_sample[1] > per_sample[0] > 0


# ----------------------------------------------------------------------------------- errors


def test_unconverted_graph_is_refused() -> None:
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], **identity_linear(3))
    b.add("relu1", "relu", ["fc1"])
    with pytest.raises(UsageError, match="compile"):
        simulate(b.graph(stage="ann"), np.zeros((2, 3), F32), 4)


@pytest.mark.parametrize("shape", [(2, 4), (2, 3, 1), ()])
def test_wrong_input_shape_is_a_data_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="shape"):
        simulate(single_neuron(3), np.zeros(shape, F32), 4)


def test_bad_input_values_and_timesteps_are_refused() -> None:
    g = single_neuron(2)
    with pytest.raises(DataError):
        simulate(g, np.array([[0.1, np.nan]], F32), 4)
    with pytest.raises(DataError):
        simulate(g, np.array([["a", "b"]]), 4)
    for bad in (0, -3, [], [4, 0]):
        with pytest.raises(UsageError):
            simulate(g, np.zeros((1, 2), F32), bad)
