"""`--neuron lif` on Loihi with stock Lava processes only (issue 16): an input RingBuffer, Lava's
Sparse / Conv / Dense, LIFReset and an output RingBuffer (backends/lava/lif_plan.py,
lif_network.py); max pooling as ReLU layers (lower-maxpool, tree-thresholds). Lava fixed point
equals the NumPy bit-exact mode spike for spike on 2 samples of a 32x32 VGG-like net with max
pooling and a ResNet-like net with skip Adds; float Lava agrees with the float simulator."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import export_small_32x32

import snnc
from snnc.backends.lava import lava_available
from snnc.backends.lava.lif_plan import SINK, SOURCE, is_stock, source_data
from snnc.backends.lava.placement import rows, summary
from snnc.backends.lava.sd_plan import build_any_plan as build_plan
from snnc.cli import main
from snnc.compiler.loihi.populations import input_currents

needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
NETS = ("vgg_maxpool", "resnet_skip")
T = 8  # compiled for; Lava runs RUN_T steps (each Lava process is an OS process: keep it short)
RUN_T = 4


def _data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module", params=NETS)
def compiled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[str, Path, snnc.CompiledNetwork]:
    folder = tmp_path_factory.mktemp(request.param)
    model = export_small_32x32(request.param, folder / "model.onnx")
    np.savez(folder / "calib.npz", x=_data(16, 1))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compile", str(model), "--target", "loihi", "--neuron", "lif",
                     "--calib", str(folder / "calib.npz"),
                     "--timesteps", str(T), "-o", str(folder / "net.snn")]) == 0
    (folder / "compile.txt").write_text(out.getvalue())
    return request.param, folder, snnc.load(folder / "net.snn")


def test_placement_lists_only_the_boundary_on_the_host(
        compiled: tuple, capsys: pytest.CaptureFixture) -> None:
    _, folder, net = compiled
    capsys.readouterr()
    assert main(["inspect", str(folder / "net.snn"), "--placement", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    host = [(r["process"], r["class"]) for r in table if r["where"] == "host"]
    assert host == [(SOURCE, "RingBuffer"), (SINK, "RingBuffer")]
    chip = {r["class"] for r in table if r["where"] == "chip"}
    assert "LIFReset" in chip and chip <= {"LIFReset", "Conv", "Dense", "Sparse",
                                           "DelayDense", "DelaySparse"}
    assert not any(n.op == "maxpool" for n in net.graph.nodes)  # ReLU trees by default
    lifs = [n for n in net.graph.nodes if n.op == "if"]
    assert all(n.attrs["reset"] == "zero" for n in lifs)
    assert sum(r["class"] == "LIFReset" for r in table) == len(lifs)
    assert summary(table).endswith("2 host (input source, output sink)")


def test_source_sends_the_input_current_and_v0_pulses(compiled: tuple) -> None:
    _, _, net = compiled
    plan = build_plan(net.graph, "fixed")
    assert is_stock(plan)
    x = _data(2, 3)
    cur = input_currents(net.graph, x, True)
    steps = T + plan.lag
    data = source_data(plan, cur, steps)
    src = plan.proc(SOURCE)
    (name, first), = src.params["inputs"].items()
    n = plan.proc(name).size
    assert np.array_equal(data[first:first + n, steps + 3], cur[name][1])  # every step
    pulses = data[n:]
    assert np.count_nonzero(pulses) == 2 * len(src.params["pulse_value"])  # once a sample
    # every source synapse carries graded payloads into one population
    fed = [p for p in plan.procs if p.name.endswith("_src")]
    assert fed and all(p.params["num_message_bits"] == 24 for p in fed)


def test_explicit_spiking_max_pool_reports_its_host_processes(tmp_path: Path) -> None:
    """ReLU trees by default for lif on loihi; --maxpool spiking keeps snnc's spiking max pool
    on its own processes, and placement says so."""
    model = export_small_32x32("vgg_maxpool", tmp_path / "vgg.onnx")
    for pool, host_pool in ((None, False), ("spiking", True)):
        net = snnc.compile(model, target="loihi", calib=_data(4, 1), neuron="lif",
                           timesteps=T, calibrate="none", maxpool=pool)
        assert any(n.op == "maxpool" for n in net.graph.nodes) == host_pool
        plan = build_plan(net.graph, "fixed")
        assert is_stock(plan) != host_pool
        host = {r["class"] for r in rows(plan) if r["where"] == "host"}
        assert ({"MaxPoolSpike", "LifIO", "Readout"} <= host) == host_pool


def test_compile_prints_the_placement(compiled: tuple) -> None:
    _, folder, _ = compiled
    assert "chip, 2 host (input source, output sink)" in (folder / "compile.txt").read_text()


@needs_lava
def test_lava_fixed_point_equals_numpy_spike_for_spike(compiled: tuple) -> None:
    from snnc.backends.numpy.loihi import simulate_loihi
    from snnc.runtime.lava_run import compare_with_numpy

    _, _, net = compiled
    x = _data(2, 4)
    cmp = compare_with_numpy(net, x, RUN_T)
    assert cmp.agree, cmp.mismatches
    assert cmp.max_output_diff == 0
    lifs = [n.name for n in net.graph.nodes if n.op == "if"]
    assert set(lifs) <= set(cmp.mismatches)  # every layer compared
    assert sum(int(cmp.lava.spikes[k].sum()) > 0 for k in lifs) >= len(lifs) // 2
    ref = simulate_loihi(net.graph, x, [RUN_T])
    assert np.allclose(cmp.lava.outputs, ref.outputs[0], rtol=1e-6, atol=1e-6)


@needs_lava
def test_float_lava_agrees_with_the_float_simulator(tmp_path: Path) -> None:
    from snnc.runtime.lava_run import compare_with_numpy

    model = export_small_32x32("vgg_maxpool", tmp_path / "vgg.onnx")
    net = snnc.compile(model, target="lava", calib=_data(16, 1), neuron="lif", timesteps=T,
                       calibrate="none")
    assert is_stock(build_plan(net.graph, "float"))
    cmp = compare_with_numpy(net, _data(2, 6), RUN_T)
    assert cmp.mismatches["output"] == 0, cmp.mismatches
