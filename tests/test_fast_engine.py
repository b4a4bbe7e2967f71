"""The simulator's fast engine (backends/numpy/fast.py) against the reference: bit-equal where
only the IF update changes (no convolution), equal to float tolerance on conv nets with every
neuron variant, max pooling and residual adds; and reachable from the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from netgen import random_cnn
from zoo import ARCHS, zoo_model

import snnc
from snnc.backends.numpy import kernels, simulate
from snnc.cli import main
from snnc.compiler.errors import UsageError
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.ir.graph import Graph
from snnc.frontends.onnx import import_model, prepare

F32 = np.float32


def _dense_snn(signed: bool, reset: str, shift: bool) -> Graph:
    """input(12) -> linear -> IF(6) -> linear -> IF(5) -> linear readout, random weights."""
    rng = np.random.default_rng(3)
    b = GraphBuilder((12,))
    extra = {"i_shift": rng.uniform(0, 0.1, 6).astype(F32)} if shift else {}
    b.add("l1", "linear", ["x"], weight=rng.normal(0, 0.6, (6, 12)), bias=rng.normal(0, .1, 6))
    b.add("if1", "if", ["l1"], {"reset": reset, "signed": signed},
          theta=rng.uniform(0.5, 1.5, 6), v0=rng.uniform(0, 0.5, 6), **extra)
    b.add("l2", "linear", ["if1"], weight=rng.normal(0, 0.6, (5, 6)), bias=np.zeros(5))
    b.add("if2", "if", ["l2"], {"reset": reset, "signed": signed}, theta=0.8, v0=0.4)
    b.add("out", "linear", ["if2"], weight=rng.normal(0, 1, (3, 5)), bias=np.zeros(3))
    return b.graph(stage="snn")


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize(("signed", "reset", "shift"), [
    (False, "subtract", False), (False, "zero", False), (True, "subtract", False),
    (False, "subtract", True)])
def test_compiled_if_update_is_bit_equal(signed: bool, reset: str, shift: bool) -> None:
    graph = _dense_snn(signed, reset, shift)
    x = np.random.default_rng(0).normal(0, 1, (64, 12)).astype(F32)
    ts = [1, 3, 8, 20]
    ref = simulate(graph, x, ts)
    fast = simulate(graph, x, ts, engine="fast")
    np.testing.assert_array_equal(fast.outputs, ref.outputs)
    for name in ref.spikes:
        np.testing.assert_array_equal(fast.spikes[name], ref.spikes[name])
        assert ref.spikes[name][-1].sum() > 0  # the layer did fire: the test compares events


@pytest.mark.parametrize("neuron", ["if", "signed", "lif"])
def test_fast_engine_agrees_on_conv_nets(neuron: str) -> None:
    """Convolutions in onnxruntime sum in another order: outputs agree to float tolerance,
    predictions on (almost) every sample, spike counts to a tiny share."""
    model = random_cnn(seed=5, blocks=["conv", "maxpool", "residual", "conv_s2", "avgpool",
                                       "concat"], channels=2, size=12)
    graph = import_model(prepare(model))
    rng = np.random.default_rng(1)
    calib = rng.uniform(0, 1, (64, 2, 12, 12)).astype(F32)
    x = rng.uniform(0, 1, (200, 2, 12, 12)).astype(F32)
    net = snnc.compile(graph, calib=calib, timesteps=16, neuron=neuron,
                       preset="rate-p99.99")
    ts = [1, 4, 16, 64]
    ref = net.simulate(x, ts)
    fast = net.simulate(x, ts, engine="fast")
    for k in range(len(ts)):
        a, b = ref.outputs[k].reshape(len(x), -1), fast.outputs[k].reshape(len(x), -1)
        assert np.linalg.norm(a - b) <= 1e-3 * max(np.linalg.norm(a), 1e-6)
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99
        total = sum(s[k].sum() for s in ref.spikes.values())
        assert total > 0
        diff = sum(np.abs(ref.spikes[n][k] - fast.spikes[n][k]).sum() for n in ref.spikes)
        assert diff <= 1e-3 * total


@pytest.mark.parametrize("arch", list(ARCHS))
def test_fast_engine_agrees_on_zoo_graphs(arch: str) -> None:
    """Grouped and pointwise convs, ceil-mode pooling (left to the reference's kernels),
    concatenations and channel shuffles."""
    x = np.random.default_rng(2).uniform(0, 1, (16, 3, 16, 16)).astype(F32)
    net = snnc.compile(import_model(prepare(zoo_model(arch, "new"))), calib=x, norm="max")
    ref = net.simulate(x, [4, 32], engine="reference")
    fast = net.simulate(x, [4, 32], engine="fast")
    scale = max(float(np.abs(ref.outputs).max()), 1e-6)
    assert float(np.abs(ref.outputs - fast.outputs).max()) <= 1e-3 * scale


def test_fast_engine_without_numba_keeps_the_numpy_if_update(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    graph = _dense_snn(True, "subtract", True)
    x = np.random.default_rng(0).normal(0, 1, (32, 12)).astype(F32)
    np.testing.assert_array_equal(simulate(graph, x, [5], engine="fast").outputs,
                                  simulate(graph, x, [5]).outputs)


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="engine 'gpu'"):
        simulate(_dense_snn(False, "subtract", False), np.zeros((1, 12), F32), [1],
                 engine="gpu")


def test_cli_runs_and_evaluates_with_the_fast_engine(digits_model: Path, digits_calib: Path,
                                                     digits_test: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    import json

    out = tmp_path / "d.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--timesteps",
                 "8", "--preset", "rate-p99.99", "-o", str(out)]) == 0
    assert main(["run", str(out), "--data", str(digits_test), "--json",
                 str(tmp_path / "fast.json"), "--engine", "fast"]) == 0
    assert main(["run", str(out), "--data", str(digits_test), "--json",
                 str(tmp_path / "ref.json")]) == 0
    fast = json.loads((tmp_path / "fast.json").read_text())
    ref = json.loads((tmp_path / "ref.json").read_text())
    assert abs(fast["accuracy"] - ref["accuracy"]) <= 1 / 540 + 1e-9
    capsys.readouterr()
    assert main(["eval", str(digits_model), "--data", str(digits_test), "--calib",
                 str(digits_calib), "--timesteps", "4", "--preset", "rate-p99.99",
                 "--engine", "fast"]) == 0
    assert "SNN acc" in capsys.readouterr().out
