"""Tuning and layer-wise calibration stay within a compute budget on large models
(compiler/cost.py): fewer samples, or no simulation at all with a message saying why. The
budget is shrunk here so that the small digits CNN plays the large model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.cli import main
from snnc.compiler import cost
from snnc.compiler.tuning import untuned_percentile
from snnc.frontends.onnx import load_onnx


def test_costs_count_the_multiply_adds(digits_model: Path) -> None:
    graph = load_onnx(digits_model)
    weighted = [n for n in graph.nodes if n.op in ("conv", "linear")]
    assert cost.macs(graph) == sum(cost.synapses(n) for n in weighted) > 0
    first, last = weighted[0], weighted[-1]
    assert cost.upstream_macs(graph, first.name) == cost.synapses(first)
    assert cost.upstream_macs(graph, graph.output) == cost.macs(graph)
    assert cost.upstream_macs(graph, last.name) == cost.macs(graph)


def test_samples_follow_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost, "SIMULATION_BUDGET_MACS", 1000)
    assert cost.samples_within_budget(10, 4, 256) == 100
    assert cost.samples_within_budget(1, 4, 256) == 256
    assert cost.samples_within_budget(1e6, 4, 256) == 4


def test_small_models_keep_every_sample(digits_model: Path, digits_calib: Path) -> None:
    net = snnc.compile(digits_model, calib=digits_calib, timesteps=4)
    assert "tuning_note" not in net.options
    assert len(net.options["tuned"]) == 6  # five percentiles and the calibrated winner


def test_tuning_scores_on_fewer_samples_when_the_budget_is_short(
        digits_model: Path, digits_calib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    per_sample = cost.macs(load_onnx(digits_model)) * 4 * 5  # T=4, five candidates
    monkeypatch.setattr(cost, "SIMULATION_BUDGET_MACS", 40 * per_sample)
    net = snnc.compile(digits_model, calib=digits_calib, timesteps=4)
    assert net.options["tuning_note"].startswith("scored on 40 calibration samples")
    assert net.options["tuned"]


@pytest.mark.parametrize("timesteps", [1, 8, 32])
def test_too_large_to_tune_takes_the_percentile_for_t_and_says_so(
        timesteps: int, digits_model: Path, digits_calib: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cost, "HARD_LIMIT_MACS", 1.0)
    out = tmp_path / "d.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--timesteps",
                 str(timesteps), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not tuned" in printed and "TMAC" in printed
    options = snnc.load(out).options
    assert "tuned" not in options
    assert options["norm"] == f"percentile:{untuned_percentile(timesteps):g} per-channel"
    assert options["calibrate"] == "none"
    x = np.load(digits_calib)["x"][:64]
    assert snnc.load(out).run(x).outputs.shape == (64, 10)  # a working network all the same


def test_calibration_uses_fewer_samples_on_a_short_budget(
        digits_model: Path, digits_calib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit --calibrate is honoured, on the samples the budget pays for."""
    from snnc.compiler.passes import calibrate as calibrate_pass

    seen: list[int] = []
    original = calibrate_pass._snn_mean

    def spy(graph: object, x: np.ndarray, *args: object) -> np.ndarray:
        seen.append(len(x))
        return original(graph, x, *args)

    monkeypatch.setattr(calibrate_pass, "_snn_mean", spy)
    snnc.compile(digits_model, calib=digits_calib, timesteps=4, norm="percentile:99.9",
                 per_channel=True, calibrate="bias")
    assert set(seen) == {256}
    seen.clear()
    monkeypatch.setattr(cost, "SIMULATION_BUDGET_MACS", 1.0)
    snnc.compile(digits_model, calib=digits_calib, timesteps=4, norm="percentile:99.9",
                 per_channel=True, calibrate="bias")
    assert set(seen) == {calibrate_pass.MIN_SAMPLES}


def test_calibration_candidate_is_skipped_alone_when_only_it_is_too_costly(
        digits_model: Path, digits_calib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One norm (given), calibration `auto`: scoring the norm fits the limit, calibrating
    every layer on the minimum samples does not (that minimum raised here, so that the small
    CNN's calibration costs more than its scoring)."""
    from snnc.compiler import tuning

    monkeypatch.setattr(tuning, "CALIBRATION_MIN_SAMPLES", 128)
    kwargs = {"calib": digits_calib, "timesteps": 4, "norm": "percentile:99.9",
              "per_channel": True}
    plain = snnc.compile(digits_model, calibrate="none", **kwargs)
    scoring = cost.macs(load_onnx(digits_model)) * 4 * tuning.MIN_SCORING_SAMPLES
    calibrating = cost.calibration_macs(plain.graph, 4) * 128
    assert calibrating > scoring
    monkeypatch.setattr(cost, "HARD_LIMIT_MACS", (scoring + calibrating) / 2)
    net = snnc.compile(digits_model, calibrate="auto", **kwargs)
    assert "calibration not tried" in net.options["tuning_note"]
    assert net.options["calibrate"] == "none"
    assert [row["candidate"] for row in net.options["tuned"]] == [
        "norm percentile:99.9 per-channel"]
