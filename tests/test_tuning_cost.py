"""What makes the default preset affordable on deep networks (issue "low latency on deep
networks", eval cost) without changing what it chooses: histograms shared by every candidate,
candidates raced on blocks of samples and stopped when they cannot win, layer-wise calibration
replaying recorded spike trains instead of re-simulating every prefix, and `eval` sharing
tuning work and test runs between its Ts."""

from __future__ import annotations

import copy
import functools
import importlib
from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.backends.numpy import simulate
from snnc.compiler import tuning
from snnc.compiler.passes import NormSpec, run_pipeline
from snnc.compiler.passes.calibrate import calibrate, can_replay, frontier
from snnc.compiler.passes.manager import FOLD_BATCHNORM, RECOGNISE_ACTIVATIONS
from snnc.compiler.tuning import TuningCache, graph_digest, norm_candidates
from snnc.evaluate import evaluate
from snnc.frontends.onnx import load_onnx
from snnc.runtime import load_data

DATA = Path(__file__).resolve().parent / "data"
# the module (the package exports its pass function under the same name)
nt = importlib.import_module("snnc.compiler.passes.normalize_thresholds")


def _thetas(graph):
    return {n.name: np.asarray(n.params["theta"]) for n in graph.nodes if "theta" in n.params}


@pytest.mark.parametrize("model, calib, samples", [
    ("digits", None, 256),
    # trained (QCFS) thresholds: the candidates that override them need their histograms too
    ("heldout/vgg_qcfs_L4.onnx", "heldout/digits32_calib.npz", 48),
])
def test_shared_histograms_give_the_thresholds_of_a_pass_per_candidate(
        model: str, calib: str | None, samples: int, digits_model: Path, digits_calib: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = digits_model if model == "digits" else DATA / model
    x = load_data(digits_calib if calib is None else DATA / calib)[0][:samples]

    def pipeline():
        return run_pipeline(load_onnx(path), (RECOGNISE_ACTIVATIONS, FOLD_BATCHNORM))

    # new nodes, as each candidate's own pipeline made them (the executor unrolls a small
    # conv on its second call, which rounds differently); copies of one run, because
    # recognising the QCFS staircases costs ~0.3 s a run and the pipeline is deterministic
    made = pipeline()
    assert graph_digest(pipeline()) == graph_digest(made)

    def fresh():
        return copy.deepcopy(made)

    trained = any(n.op == "qclip" for n in fresh().nodes)
    for per_channel in (True, False):  # tuning's layout: per channel (netx: per layer)
        specs = norm_candidates(True, trained, per_channel) + [
            NormSpec("max", 100.0, per_channel), NormSpec("mmse", 100.0, per_channel)]
        passes: list[int] = []
        collect = nt.collect_histograms

        def counting(*args, collect=collect, passes=passes, **kwargs):
            passes.append(1)
            return collect(*args, **kwargs)

        graph, stats = fresh(), nt.ActivationStats()
        monkeypatch.setattr(nt, "collect_histograms", counting)
        shared = [nt.normalize_thresholds(graph, x, spec, timesteps=4, stats=stats)
                  for spec in specs]
        assert len(passes) == 1  # one streaming pass served every candidate
        monkeypatch.setattr(nt, "collect_histograms", collect)
        for spec, got in zip(specs, shared, strict=True):
            alone = _thetas(nt.normalize_thresholds(fresh(), x, spec, timesteps=4))
            thetas = _thetas(got)
            assert thetas.keys() == alone.keys()
            for name, theta in alone.items():
                np.testing.assert_array_equal(thetas[name], theta, err_msg=f"{spec} {name}")


def test_tuned_thresholds_equal_a_compile_with_the_chosen_norm(digits_model: Path,
                                                               digits_calib: Path) -> None:
    tuned = snnc.compile(digits_model, calib=digits_calib, timesteps=4, calibrate="none")
    assert len(tuned.options["tuned"]) == 5
    spec = tuned.options["norm"]
    assert spec.endswith(" per-channel")
    direct = snnc.compile(digits_model, calib=digits_calib, timesteps=4, calibrate="none",
                          norm=spec.removesuffix(" per-channel"), per_channel=True)
    assert graph_digest(tuned.graph) == graph_digest(direct.graph)


def test_racing_chooses_what_scoring_every_sample_chooses(
        digits_model: Path, digits_calib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "FIRST_BLOCK", 16)
    monkeypatch.setattr(tuning, "RACE_MIN_MACS", 0)
    raced = snnc.compile(digits_model, calib=digits_calib, timesteps=32)
    monkeypatch.setattr(tuning, "RACE_MIN_MACS", float("inf"))  # one block: no racing
    full = snnc.compile(digits_model, calib=digits_calib, timesteps=32)
    assert graph_digest(raced.graph) == graph_digest(full.graph)
    assert raced.options["norm"] == full.options["norm"]
    assert raced.options["calibrate"] == full.options["calibrate"]
    rows = {r["candidate"]: r for r in full.options["tuned"]}
    stopped = [r for r in raced.options["tuned"] if r.get("stopped")]
    assert stopped and all(r["samples"] < 256 for r in stopped)
    assert all(r["samples"] == 256 and not r.get("stopped") for r in rows.values())
    for row in raced.options["tuned"]:
        if not row.get("stopped"):  # scored on every sample: the same score (float32
            # products over 16 samples or 256 may round differently)
            assert row["agreement"] == rows[row["candidate"]]["agreement"]
            assert row["error"] == pytest.approx(rows[row["candidate"]]["error"], rel=1e-5)


def _no_replay(graph, x, timesteps, batch_size=256, progress=None, record=(), observe=None):
    return simulate(graph, x, timesteps, batch_size, progress, record, observe)


@pytest.mark.parametrize("model, bits, keep", [("digits_resnet.onnx", 1, 0),
                                               ("digits_resnet.onnx", 1, None),
                                               ("digits_vgg_maxpool.onnx", 1, 0),
                                               ("digits_resnet.onnx", 2, 0)])
def test_calibration_replaying_trains_equals_re_simulating_every_prefix(
        model: str, bits: int, keep: int | None, digits_calib: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Residual Adds (two IF layers feed one), max pooling between layers, graded spikes;
    with every layer's input current kept (keep 0) and with none kept."""
    from snnc.compiler.passes import calibrate as calibrate_pass

    monkeypatch.setattr(calibrate_pass, "KEEP_CURRENT_MACS", 10**12 if keep is None else keep)
    kept: list[str] = []
    original = calibrate_pass._snn_mean

    def spy(graph, x, node, *args):
        if len(args) > 4 and args[4] is not None:
            kept.append(node.name)
        return original(graph, x, node, *args)

    monkeypatch.setattr(calibrate_pass, "_snn_mean", spy)
    x = load_data(digits_calib)[0][:96]
    net = snnc.compile(DATA / model, calib=x, timesteps=4, norm="percentile:99.9",
                       per_channel=True, calibrate="none", spike_bits=bits)
    assert can_replay(simulate) and not can_replay(_no_replay)
    fronts = [frontier(net.graph, n.name) for n in net.graph.nodes if n.op == "if"]
    if model.startswith("digits_resnet"):
        assert max(len(f) for f in fronts) == 2
    replayed = calibrate(net.graph, x, 4, simulate)
    assert bool(kept) == (keep is not None)
    again = calibrate(net.graph, x, 4, _no_replay)
    for a, b in zip(replayed.nodes, again.nodes, strict=True):
        assert a.params.keys() == b.params.keys()
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key], err_msg=a.name)


@pytest.mark.parametrize("neuron, bits", [("signed", 1), ("if", 1), ("signed", 3)])
def test_replayed_layers_deliver_what_they_emitted(neuron: str, bits: int,
                                                   digits_calib: Path) -> None:
    x = load_data(digits_calib)[0][:40]
    net = snnc.compile(DATA / "digits_resnet.onnx", calib=x, timesteps=6, calibrate="none",
                       neuron=neuron, spike_bits=bits)
    assert {n.attrs.get("spike_bits", 1) for n in net.graph.nodes if n.op == "if"} == {bits}
    names = [n.name for n in net.graph.nodes if n.op == "if"]
    full = simulate(net.graph, x, [3, 6], capture=names)
    for name in names[1:]:
        front = frontier(net.graph, name)
        upto = net.graph.replace(output=name)
        part = simulate(upto, x, [6], replay={j: full.trains[j] for j in front},
                        capture=[name])
        np.testing.assert_array_equal(part.trains[name], full.trains[name])
        assert set(part.spikes) == {name}  # nothing behind the replayed layers ran
    last = net.graph.output
    tail = simulate(net.graph, x, [3, 6],
                    replay={j: full.trains[j] for j in frontier(net.graph, last)})
    np.testing.assert_array_equal(tail.outputs, full.outputs)


def test_eval_shares_tuning_across_t_and_matches_separate_compiles(
        digits_model: Path, digits_calib: Path, digits_test: Path,
        digits_test_arrays: tuple[np.ndarray, np.ndarray],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ts = [1, 2, 4, 8]
    calls: list[int] = []
    original = snnc.api.simulate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(snnc.api, "simulate", counting)
    report = evaluate(digits_model, digits_test, ts, calib=digits_calib)
    shared = len(calls)
    timing = report["timing"]
    for key in ("ann_s", "compile_s", "simulate_s", "histograms_s", "scoring_s", "total_s"):
        assert timing[key] >= 0, key
    assert timing["runs"] <= len(ts)
    x, y = digits_test_arrays
    calls.clear()
    for row in report["snn"]:
        net = snnc.compile(digits_model, calib=digits_calib, timesteps=row["timesteps"])
        assert row["accuracy"] == net.run(x).accuracy(y), row["timesteps"]
    assert shared < len(calls)  # the separate compiles simulated more


def test_a_shared_cache_gives_the_networks_of_separate_compiles(
        digits_model: Path, digits_calib: Path) -> None:
    calib = load_data(digits_calib)[0]
    cache = TuningCache([1, 4, 16])
    for t in (16, 4, 1):
        shared = snnc.compile(digits_model, calib=calib, timesteps=t, cache=cache)
        alone = snnc.compile(digits_model, calib=calib, timesteps=t)
        assert graph_digest(shared.graph) == graph_digest(alone.graph), t
        assert shared.options["tuned"] == alone.options["tuned"]
    assert cache.stats.seconds > 0


def test_eval_runs_ts_with_the_same_network_once(digits_model: Path, digits_calib: Path,
                                                 digits_test: Path) -> None:
    ts = [8, 16, 32]
    report = evaluate(digits_model, digits_test, ts, calib=digits_calib, calibrate="none")
    norms = {snnc.compile(digits_model, calib=digits_calib, timesteps=t,
                          calibrate="none").options["norm"] for t in ts}
    assert report["timing"]["runs"] == len(norms)
    assert [r["timesteps"] for r in report["snn"]] == ts


def test_graph_digest_sees_parameters() -> None:
    from snnc.compiler.ir.builder import GraphBuilder

    def graph(theta: float):
        b = GraphBuilder((2,))
        b.neuron("n", "x", theta=theta)
        return b.graph(stage="snn")

    assert graph_digest(graph(1.0)) == graph_digest(graph(1.0))
    assert graph_digest(graph(1.0)) != graph_digest(graph(1.5))


def test_fixed_simulator_is_a_partial(digits_model: Path, digits_calib: Path) -> None:
    """The simulator handed to the passes (a functools.partial) can replay."""
    assert can_replay(functools.partial(simulate, engine="fast"))


def test_calibration_hands_over_the_outputs_it_replayed(digits_calib: Path) -> None:
    x = load_data(digits_calib)[0][:64]
    net = snnc.compile(DATA / "digits_resnet.onnx", calib=x, timesteps=4, calibrate="none")
    told = []
    graph = calibrate(net.graph, x, 4, simulate,
                      on_outputs=lambda g, c, n, t, out: told.append((g, c, n, t, out)))
    (g, c, n, t, out), = told
    assert g is graph and c is x and n == 64 and t == 4
    np.testing.assert_allclose(out, simulate(graph, x, [4]).outputs[0], rtol=1e-5, atol=1e-6)
