"""Sigma-delta networks on Loihi 2 with stock Lava processes (issue 16): fixed-point form
(compiler/loihi/quantize_sigma_delta.py), the NumPy bit-exact mode
(backends/numpy/loihi_sigma_delta.py), Lava runs (backends/lava/sd_plan.py, sd_network.py)
and placement (backends/lava/placement.py). Lava tests run 2 samples of each 32x32 net."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import export_small_32x32

import snnc
from snnc.backends.lava import lava_available
from snnc.backends.lava.placement import rows, summary
from snnc.backends.lava.sd_plan import build_any_plan as build_plan
from snnc.backends.numpy import simulate
from snnc.backends.numpy.loihi import simulate_loihi
from snnc.cli import main
from snnc.compiler.errors import ModelError
from snnc.compiler.loihi.populations import populations
from snnc.compiler.loihi.quantize_sigma_delta import BIAS_MAX, STATE_EXP_MAX
from snnc.compiler.passes.manager import LOWER_MAXPOOL, SIGMA_DELTA_PIPELINE

needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
NETS = ("vgg_maxpool", "resnet_skip")
T = 3  # a static sample settles at the reference clock's first step


def _pipeline() -> tuple[str, ...]:
    """The sigma-delta pipeline with the max-pool lowering (added here if it is not yet
    part of the default one)."""
    names = list(SIGMA_DELTA_PIPELINE)
    if LOWER_MAXPOOL not in names:
        names.insert(names.index("fold-batchnorm") + 1, LOWER_MAXPOOL)
    return tuple(names)


def _data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """export_small_32x32(name), once per net and module (the tests only read the file)."""
    folder = tmp_path_factory.mktemp("exported")
    paths: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in paths:
            paths[name] = export_small_32x32(name, folder / f"{name}.onnx")
        return paths[name]

    return get


@pytest.fixture(scope="module", params=NETS)
def compiled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             exported: Callable[[str], Path]) -> tuple[str, Path, snnc.CompiledNetwork]:
    folder = tmp_path_factory.mktemp(request.param)
    model = exported(request.param)
    net = snnc.compile(model, target="loihi", calib=_data(16, 1), neuron="sigma-delta",
                       timesteps=T, pipeline=_pipeline())
    net.save(folder / "net.snn")
    return request.param, folder, net


def test_input_feeds_the_first_synapses_and_formats_fit_loihi(compiled: tuple) -> None:
    name, _, net = compiled
    graph = net.graph
    pops = populations(graph)
    first = [p for p in pops if any(s.source == graph.input.name for s in p.synapses)]
    assert first and all(p.depth == 1 for p in first)
    assert not any(n.op == "maxpool" for n in graph.nodes)
    assert sum(p.node.op == "sd" for p in pops) >= (7 if name == "vgg_maxpool" else 5)
    for pop in pops:
        for syn in pop.synapses:
            m = np.asarray(syn.node.params["q_weight"])
            e = int(syn.node.attrs["q_weight_exp"])
            assert np.abs(m).max() <= 256
            # no per-step floor inside the network; the readout may shift its sums down
            assert (-8 <= e <= 0) if pop.readout else e >= 0
            assert np.abs(m).max() >= 8  # the mantissas are used, not rounded to nothing
        if pop.readout:
            continue
        node = pop.node
        s = int(node.attrs["q_state_exp"])
        assert 0 <= s <= STATE_EXP_MAX
        assert int(node.params["q_vth"]) >= 2**s  # every message is at least one unit
        assert np.abs(node.params["q_bias"]).max(initial=0) <= BIAS_MAX
        # 8-bit mantissas; a layer whose 16-bit bias caps its state exponent has fewer bits
        assert node.meta["quant"]["weight_rel_err"] < 0.1
    assert 0 < int(graph.input.attrs["q_max"]) < 2**23


def test_bit_exact_mode_follows_the_float_simulator(compiled: tuple) -> None:
    """Integer activations (1024 levels below the clip level) and 8-bit weights: the settled
    outputs stay close to the float sigma-delta network, and every layer sends."""
    _, _, net = compiled
    x = _data(16, 2)
    exact = simulate_loihi(net.graph, x, [1, T], rasters=True)
    ref = simulate(net.graph, x, [T])
    out, want = exact.outputs[-1], ref.outputs[0]
    scale = float(np.abs(want).max())
    assert float(np.abs(out - want).max()) < 0.15 * scale
    assert np.mean(out.argmax(1) == want.argmax(1)) >= 0.8
    assert all(int(v[-1].sum()) > 0 for v in exact.spikes.values())
    for name, raster in exact.rasters.items():  # counts and payloads are the rasters'
        assert int(np.count_nonzero(raster)) == int(exact.spikes[name][-1].sum())
        assert int(np.abs(raster).sum()) == int(exact.payload[name][-1].sum())
    # the output at a checkpoint is the sink's sum so far, not a rate: settled, it repeats
    assert np.array_equal(exact.outputs[0], exact.outputs[-1])


def test_bit_exact_mode_refuses_to_overflow_the_24_bit_state(compiled: tuple) -> None:
    _, _, net = compiled
    graph = net.graph
    target = next(p.node for p in populations(graph) if p.node.op == "sd")
    big = np.full(np.shape(target.params["q_bias"]), 2**23, np.int32)
    broken = graph.replace([n.with_params(q_bias=big) if n.name == target.name else n
                            for n in graph.nodes])
    with pytest.raises(ModelError, match="24 bits"):
        simulate_loihi(broken, _data(2, 3), [T])


def test_max_pooling_that_reaches_lower_synapses_is_refused(exported: Callable) -> None:
    model = exported("vgg_maxpool")
    without = tuple(n for n in _pipeline() if n != LOWER_MAXPOOL)
    with pytest.raises(ModelError, match="lower-maxpool"):
        snnc.compile(model, target="lava", calib=_data(8, 1), neuron="sigma-delta",
                     pipeline=without, maxpool="spiking")


def test_placement_lists_only_the_boundary_on_the_host(compiled: tuple,
                                                       capsys: pytest.CaptureFixture) -> None:
    _, folder, net = compiled
    assert main(["inspect", str(folder / "net.snn"), "--placement", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert all(set(r) == {"process", "class", "where", "reason"} for r in table)
    host = [r for r in table if r["where"] == "host"]
    assert [(r["process"], r["class"]) for r in host] == [("input_source", "RingBuffer"),
                                                           ("output_sink", "RingBuffer")]
    chip = {r["class"] for r in table if r["where"] == "chip"}
    assert "SigmaDelta" in chip and "Conv" in chip and chip <= {
        "SigmaDelta", "Conv", "Dense", "Sparse", "DelayDense", "DelaySparse"}
    sd = sum(n.op == "sd" for n in net.graph.nodes)
    synapses = sum("synapse" in n.meta for n in net.graph.nodes)
    assert len(table) == sd + synapses + 2
    assert summary(table) == f"placement: {sd + synapses} chip, 2 host (input source, " \
                             "output sink)"


def test_if_networks_list_snnc_processes_on_the_host(exported: Callable) -> None:
    model = exported("resnet_skip")
    net = snnc.compile(model, target="lava", calib=_data(8, 1), neuron="if", timesteps=8)
    table = rows(build_plan(net.graph, "float"))
    ifs = [r for r in table if r["class"] == "IFSub"]
    assert ifs and all(r["where"] == "host" and "no NeuroCore model" in r["reason"]
                       for r in ifs)
    assert [r["class"] for r in table if r["where"] == "host"].count("Readout") == 1


def test_compile_prints_the_placement(tmp_path: Path, capsys: pytest.CaptureFixture,
                                      exported: Callable) -> None:
    model = exported("resnet_skip")
    np.savez(tmp_path / "calib.npz", x=_data(8, 1))
    assert main(["compile", str(model), "--target", "loihi", "--neuron", "sigma-delta",
                 "--calib", str(tmp_path / "calib.npz"), "-o", str(tmp_path / "r.snn")]) == 0
    out = capsys.readouterr().out
    assert "chip, 2 host (input source, output sink)" in out


@needs_lava
def test_lava_fixed_point_equals_numpy_message_for_message(compiled: tuple) -> None:
    """Lava's stock SigmaDelta / Conv / Sparse / Dense (fixed_pt) against the NumPy bit-exact
    mode: every message of every layer at every Lava step, with its payload, and the sink."""
    from snnc.runtime.lava_run import compare_with_numpy

    _, _, net = compiled
    x = _data(2, 4)
    cmp = compare_with_numpy(net, x, T)
    assert cmp.agree, cmp.mismatches
    assert cmp.max_output_diff == 0
    sd = [n.name for n in net.graph.nodes if n.op == "sd"]
    assert set(sd) <= set(cmp.mismatches)  # every layer compared
    assert all(int(cmp.lava.spikes[k].sum()) > 0 for k in sd)  # and every layer sent
    ref = simulate_loihi(net.graph, x, [T])
    assert np.allclose(cmp.lava.outputs, ref.outputs[0], rtol=1e-6, atol=1e-6)
    assert math.isclose(cmp.lava.spikes_per_sample,
                        sum(float(v[0].mean()) for v in ref.spikes.values()))


@needs_lava
def test_cli_run_compares_lava_with_numpy(compiled: tuple, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    name, folder, _ = compiled
    if name != "resnet_skip":
        pytest.skip("one CLI run is enough")
    np.savez(tmp_path / "x.npz", x=_data(1, 5))
    assert main(["run", str(folder / "net.snn"), "--data", str(tmp_path / "x.npz"),
                 "--backend", "lava", "--compare", "numpy", "--timesteps", str(T)]) == 0
    assert "AGREE" in capsys.readouterr().out
