"""The simulator's torch engine (backends/torch/, CPU torch) against the reference engine:
bit-equal neuron updates where the synapses sum exactly (identity weights), every neuron kind
(IF, signed, reset to zero, graded, signed graded, ternary), max pooling, replay and capture, the
observe hook, the zoo graphs; predictions identical on >= 99.5% of samples and outputs within
float rounding; and the errors (no torch, no CUDA, unknown device or neuron)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from zoo import ARCHS, zoo_model

pytest.importorskip("torch")

import snnc  # noqa: E402
from snnc.backends.numpy import simulate  # noqa: E402
from snnc.compiler.errors import UsageError  # noqa: E402
from snnc.compiler.ir.builder import GraphBuilder  # noqa: E402
from snnc.compiler.ir.graph import Graph  # noqa: E402
from snnc.frontends.onnx import import_model, prepare  # noqa: E402

F32 = np.float32
NEURONS: list[dict[str, Any]] = [
    {"reset": "subtract"}, {"reset": "zero"}, {"reset": "subtract", "signed": True},
    {"reset": "subtract", "spike_bits": 3}, {"reset": "subtract", "spike_bits": 2,
                                             "signed": True},
    {"reset": "subtract", "ternary": True}]


def _dense(attrs: dict[str, Any], shift: bool = True, seed: int = 3) -> Graph:
    """input(12) -> linear -> IF(6) -> linear -> IF(5) -> linear readout, random weights."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder((12,))
    extra = {"i_shift": rng.uniform(0, 0.1, 6)} if shift else {}
    scale = 0.25 if attrs.get("spike_bits") else 1.0  # graded: several counts per step
    b.add("l1", "linear", ["x"], weight=rng.normal(0, 0.6, (6, 12)), bias=rng.normal(0, .1, 6))
    b.add("if1", "if", ["l1"], attrs, theta=scale * rng.uniform(0.5, 1.5, 6),
          v0=rng.uniform(0, 0.5, 6) * scale, **extra)
    b.add("l2", "linear", ["if1"], weight=rng.normal(0, 0.6, (5, 6)), bias=np.zeros(5))
    b.add("if2", "if", ["l2"], attrs, theta=0.8 * scale, v0=0.4 * scale)
    b.add("out", "linear", ["if2"], weight=rng.normal(0, 1, (3, 5)), bias=np.zeros(3))
    return b.graph(stage="snn")


def _identity(attrs: dict[str, Any], n: int = 64) -> Graph:
    """input -> identity linear -> IF -> identity readout: synapses that sum exactly."""
    rng = np.random.default_rng(0)
    b = GraphBuilder((n,))
    b.add("lin", "linear", ["x"], weight=np.eye(n), bias=np.zeros(n))
    scale = 0.3 if attrs.get("spike_bits") else 1.0
    b.add("if1", "if", ["lin"], attrs, theta=scale * rng.uniform(0.5, 1.5, n),
          v0=scale * rng.uniform(-0.5, 1.0, n), i_shift=rng.uniform(-0.05, 0.05, n))
    b.add("out", "linear", ["if1"], weight=np.eye(n), bias=np.zeros(n))
    return b.graph(stage="snn")


def _agree(ref: Any, got: Any, share: float = 0.995) -> None:
    """Predictions identical on >= `share` of samples at every T, outputs within float
    rounding, spike counts equal on all but a tiny share."""
    assert got.timesteps == ref.timesteps
    steps, n = len(ref.timesteps), ref.outputs.shape[1]
    a, b = ref.outputs.reshape(steps, n, -1), got.outputs.reshape(steps, n, -1)
    for k in range(steps):
        assert np.linalg.norm(a[k] - b[k]) <= 1e-3 * max(float(np.linalg.norm(a[k])), 1e-6)
        assert (a[k].argmax(1) == b[k].argmax(1)).mean() >= share
    total = sum(int(s.sum()) for s in ref.spikes.values())
    assert total > 0
    assert set(got.spikes) == set(ref.spikes) and set(got.payload) == set(ref.payload)
    diff = sum(int(np.abs(ref.spikes[m] - got.spikes[m]).sum()) for m in ref.spikes)
    assert diff <= 1e-3 * total


@pytest.mark.parametrize("attrs", NEURONS, ids=lambda a: "-".join(map(str, a.values())))
def test_neuron_updates_are_bit_equal_where_synapses_sum_exactly(attrs: dict[str, Any]
                                                                 ) -> None:
    graph = _identity(attrs)
    x = np.random.default_rng(1).normal(0.3, 1, (40, 64)).astype(F32)
    ts = [1, 3, 8, 300]  # 300: past the 255-step flush of the per-neuron bytes
    ref = simulate(graph, x, ts)
    got = simulate(graph, x, ts, engine="torch")
    np.testing.assert_array_equal(got.outputs, ref.outputs)
    for name in ref.spikes:
        np.testing.assert_array_equal(got.spikes[name], ref.spikes[name])
        np.testing.assert_array_equal(got.payload_of(name), ref.payload_of(name))
        assert ref.spikes[name][-1].sum() > 0


@pytest.mark.parametrize("attrs", NEURONS, ids=lambda a: "-".join(map(str, a.values())))
def test_dense_nets_agree_on_every_neuron_kind(attrs: dict[str, Any]) -> None:
    graph = _dense(attrs)
    x = np.random.default_rng(0).normal(0, 1, (400, 12)).astype(F32)
    ts = [1, 4, 16, 40]
    _agree(simulate(graph, x, ts), simulate(graph, x, ts, engine="torch"))


@pytest.mark.parametrize("neuron", ["if", "signed", "lif"])
def test_conv_nets_agree(neuron: str) -> None:
    """Max pooling (spiking), residual adds, strided convs, average pooling, concat."""
    from netgen import random_cnn

    model = random_cnn(seed=5, blocks=["conv", "maxpool", "residual", "conv_s2", "avgpool",
                                       "concat"], channels=2, size=12)
    rng = np.random.default_rng(1)
    calib = rng.uniform(0, 1, (64, 2, 12, 12)).astype(F32)
    x = rng.uniform(0, 1, (200, 2, 12, 12)).astype(F32)
    net = snnc.compile(import_model(prepare(model)), calib=calib, timesteps=16, neuron=neuron,
                       preset="rate-p99.99")
    ts = [1, 4, 16, 64]
    _agree(net.simulate(x, ts, engine="reference"), net.simulate(x, ts, engine="torch"))


def test_graded_digits_cnn_agrees(digits_test_arrays: tuple[np.ndarray, np.ndarray],
                                  digits_calib: Any) -> None:
    x = digits_test_arrays[0][:200]
    net = snnc.compile(digits_calib.parent / "model.onnx", calib=digits_calib, timesteps=4,
                       preset="rate-p99.99", neuron="signed", spike_bits=3)
    _agree(net.simulate(x, [1, 2, 4], engine="reference"),
           net.simulate(x, [1, 2, 4], engine="torch"))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_zoo_graphs_agree(arch: str) -> None:
    """Grouped and pointwise convs, ceil-mode and padded pooling, concatenations, channel
    shuffles (transpose), global pooling."""
    x = np.random.default_rng(2).uniform(0, 1, (16, 3, 16, 16)).astype(F32)
    net = snnc.compile(import_model(prepare(zoo_model(arch, "new"))), calib=x, norm="max")
    ref = net.simulate(x, [4, 32], engine="reference")
    got = net.simulate(x, [4, 32], engine="torch")
    scale = max(float(np.abs(ref.outputs).max()), 1e-6)
    assert float(np.abs(ref.outputs[0] - got.outputs[0]).max()) <= 1e-3 * scale  # T=4
    # by T=32 a potential that float rounding puts right at a threshold may flip a spike on
    # one side (measured: 14 of the VGG's spikes) and move an output by ~1% of the scale
    assert float(np.abs(ref.outputs - got.outputs).max()) <= 0.05 * scale
    for name, counts in ref.spikes.items():
        assert np.abs(counts - got.spikes[name]).sum() <= 1e-3 * max(counts.sum(), 1), name
    assert (ref.outputs.reshape(2, 16, -1).argmax(-1)
            == got.outputs.reshape(2, 16, -1).argmax(-1)).mean() >= 0.9  # 16 samples


def test_replay_capture_and_observe_match_the_reference() -> None:
    """What layer-wise calibration uses: trains captured by one engine replay in the other
    with the same result, and observe sees the same net counts."""
    graph = _dense({"reset": "subtract", "signed": True})
    x = np.random.default_rng(4).normal(0, 1, (50, 12)).astype(F32)
    seen: dict[str, dict[int, np.ndarray]] = {"reference": {}, "torch": {}}
    runs = {}
    for engine in seen:
        def observe(k: int, t: int, chunk: slice, net: dict[str, np.ndarray],
                    engine: str = engine) -> None:
            total = seen[engine].setdefault(t, np.zeros(6))
            total += net["if1"].sum(axis=0)
        runs[engine] = simulate(graph, x, [3, 9], record=["if1"], observe=observe,
                                capture=["if1", "l2"], engine=engine)
    ref, got = runs["reference"], runs["torch"]
    for name in ("if1", "l2"):
        assert got.trains[name].dtype == ref.trains[name].dtype
        np.testing.assert_allclose(got.trains[name], ref.trains[name], atol=1e-5)
    for t in (3, 9):
        np.testing.assert_array_equal(seen["torch"][t], seen["reference"][t])
    replay = {"if1": ref.trains["if1"]}
    np.testing.assert_allclose(simulate(graph, x, [9], replay=replay, engine="torch").outputs,
                               simulate(graph, x, [9], replay=replay).outputs, atol=1e-5)


def test_layer_wise_calibration_runs_on_the_torch_engine(digits_calib: Any) -> None:
    import functools

    from snnc.compiler.passes.calibrate import can_replay

    assert can_replay(functools.partial(simulate, engine="torch"))
    kwargs = {"calib": digits_calib, "timesteps": 4, "preset": "if", "norm": "percentile:99",
              "calibrate": "bias+potential"}
    ref = snnc.compile(digits_calib.parent / "model.onnx", engine="reference", **kwargs)
    got = snnc.compile(digits_calib.parent / "model.onnx", engine="torch", **kwargs)
    for a, b in zip(ref.graph.nodes, got.graph.nodes, strict=True):
        if a.op == "if":
            np.testing.assert_allclose(b.params["v0"], a.params["v0"], atol=1e-3)
    assert got.options["engine"] == "torch"


def test_device_errors() -> None:
    import torch

    graph = _dense({"reset": "subtract"})
    x = np.zeros((2, 12), F32)
    with pytest.raises(UsageError, match="cpu, cuda, cuda:N"):
        simulate(graph, x, [1], engine="torch", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            simulate(graph, x, [1], engine="torch", device="cuda")
    with pytest.raises(UsageError, match="runs on the CPU"):
        simulate(graph, x, [1], engine="fast", device="cuda")
    assert simulate(graph, x, [1], engine="torch", device="cpu").outputs.shape == (1, 2, 3)


def test_unknown_neuron_settings_are_refused() -> None:
    graph = _dense({"reset": "subtract", "leak": 0.9})
    with pytest.raises(UsageError, match="leak"):
        simulate(graph, np.zeros((2, 12), F32), [1], engine="torch")


def test_without_torch_the_engine_says_what_to_install(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(UsageError, match=r"snnc\[torch\]"):
        simulate(_dense({"reset": "subtract"}), np.zeros((2, 12), F32), [1], engine="torch")


def test_the_numpy_engines_import_neither_torch_nor_dask() -> None:
    import subprocess

    code = ("import sys, numpy as np, snnc; from snnc.backends.numpy import simulate; "
            "net = snnc.compile('examples/digits/model.onnx', calib='examples/digits/calib.npz',"
            " timesteps=2, preset='rate-p99.99'); net.run(np.load('examples/digits/test.npz')"
            "['x'][:8]); print('torch' in sys.modules or 'distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.stdout.strip() == "False"


def test_cli_runs_with_the_torch_engine(digits_model: Any, digits_calib: Any, digits_test: Any,
                                        tmp_path: Any) -> None:
    import json

    from snnc.cli import main

    out = tmp_path / "d.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--timesteps",
                 "4", "--preset", "rate-p99.99", "-o", str(out)]) == 0
    for engine in ("torch", "reference"):
        assert main(["run", str(out), "--data", str(digits_test), "--json",
                     str(tmp_path / f"{engine}.json"), "--engine", engine,
                     *(["--device", "cpu"] if engine == "torch" else [])]) == 0
    got, ref = (json.loads((tmp_path / f"{e}.json").read_text()) for e in ("torch", "reference"))
    same = np.mean(np.array(got["predictions"]) == np.array(ref["predictions"]))
    assert same >= 0.995
    assert main(["run", str(out), "--data", str(digits_test), "--engine", "torch",
                 "--device", "cuda:7"]) == 2


# ------------------------------------------------------ the compute budget (compiler/cost.py)


def test_budget_scales_by_powers_of_two_never_below_the_baseline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from snnc.compiler import cost

    monkeypatch.delenv("SNNC_MACS_PER_SECOND", raising=False)
    base = cost.BASELINE_MACS_PER_S
    assert cost.budget().macs == cost.SIMULATION_BUDGET_MACS
    assert cost.budget(5.3 * base).scale == 4 == cost.budget(7.9 * base).scale
    assert cost.budget(0.2 * base).scale == 1  # a slow or busy probe changes nothing
    big = cost.budget(1000 * base)
    assert big.macs == 512 * cost.SIMULATION_BUDGET_MACS
    assert big.hard_limit == 512 * cost.HARD_LIMIT_MACS
    monkeypatch.setenv("SNNC_MACS_PER_SECOND", str(base / 2))  # pinned: any rate
    assert cost.budget(1000 * base).scale == 0.5
    measured: list[int] = []

    def simulator() -> None: ...

    simulator.macs_per_second = lambda: measured.append(1) or 3 * base  # type: ignore
    monkeypatch.delenv("SNNC_MACS_PER_SECOND")
    assert cost.simulator_budget(simulator).scale == 2 and measured == [1]
    assert cost.simulator_budget(lambda: None).scale == 1


def test_probe_measures_the_torch_engine() -> None:
    from snnc.backends import torch as torch_engine

    rate = torch_engine.throughput("cpu")
    assert rate > 1e8
    assert torch_engine.throughput("cpu") == rate  # once per process: the same choices


def test_tuning_samples_follow_the_engine_budget(digits_model: Any, digits_calib: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget that pays for 40 samples at the baseline pays for all 256 on an engine 8x
    as fast; on CPU torch (not faster than the baseline here) it stays at 40."""
    from snnc.backends import torch as torch_engine
    from snnc.compiler import cost
    from snnc.frontends.onnx import load_onnx

    monkeypatch.delenv("SNNC_MACS_PER_SECOND", raising=False)
    per_sample = cost.macs(load_onnx(digits_model)) * 4 * 5  # T=4, five candidates
    monkeypatch.setattr(cost, "SIMULATION_BUDGET_MACS", 40 * per_sample)
    kwargs = {"calib": digits_calib, "timesteps": 4, "calibrate": "none"}
    monkeypatch.setattr(torch_engine, "throughput", lambda device: 0.5 * cost.BASELINE_MACS_PER_S)
    slow = snnc.compile(digits_model, engine="torch", **kwargs)
    assert slow.options["tuning_note"].startswith("scored on 40 calibration samples")
    monkeypatch.setattr(torch_engine, "throughput", lambda device: 8 * cost.BASELINE_MACS_PER_S)
    fast = snnc.compile(digits_model, engine="torch", **kwargs)
    assert "tuning_note" not in fast.options
    assert max(row["samples"] for row in fast.options["tuned"]) > 40


POOLS = [  # kernel, strides, pads (begin..., end...), dilations, ceil mode, count_include_pad
    ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 0, 1), ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0, 1),
    ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0, 0), ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 1, 1),
    ([3, 3], [2, 2], [0, 0, 0, 0], [1, 1], 1, 0), ([2, 3], [1, 2], [0, 1, 1, 0], [1, 1], 0, 1),
    ([2, 2], [1, 1], [0, 0, 0, 0], [2, 2], 0, 1), ([5, 5], [3, 3], [2, 2, 2, 2], [1, 1], 1, 0)]


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize("pool", POOLS)
def test_pooling_kernels_match_the_ir_ops(op: str, pool: tuple) -> None:
    """Every pooling geometry: torch's windows where they are snnc's, numpy's otherwise."""
    import torch

    from snnc.backends.torch import kernels
    from snnc.compiler.ops import opdef

    kernel, strides, pads, dilations, ceil, include = pool
    b = GraphBuilder((3, 11, 10))
    attrs = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations,
             "ceil_mode": ceil, "count_include_pad": include}
    b.add("p", op, ["x"], attrs)
    node = b.graph().node("p")
    x = np.random.default_rng(0).normal(0, 1, (4, 3, 11, 10)).astype(F32)
    ref = opdef(op).evaluate(node, [x])
    got = kernels.build(node, torch.device("cpu"))([torch.from_numpy(x)]).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
