"""NIR in (`snnc import`, `snnc.load_nir`): graphs written by snnc and Sinabs read
into snnc's IR, simulated, and compiled for Loihi; what snnc cannot read is listed at once."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.compiler.errors import ModelError

nir = pytest.importorskip("nir")
from snnc.frontends.nir import from_nir  # noqa: E402

T = 16


def _snnc(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnc", *map(str, args)],
                          capture_output=True, text=True, check=False)


def test_cli_round_trip(tmp_path: Path, digits_model: Path, digits_calib: Path,
                        digits_test: Path, capsys: pytest.CaptureFixture) -> None:
    """snnc -> NIR -> snnc: the same accuracy, also compiled for loihi (the export as a
    subprocess, as a user runs it; the imports in this process)."""
    from snnc.cli import main

    out = tmp_path / "digits.nir"
    done = _snnc("compile", digits_model, "--target", "nir", "--preset", "rate-p99.99",
                 "--calib", digits_calib, "-o", out)
    assert done.returncode == 0, done.stderr
    assert "reset by subtraction" in done.stderr and "calibration samples" in done.stderr
    direct = snnc.compile(digits_model, calib=digits_calib, preset="rate-p99.99",
                          target="nir")
    x = np.load(digits_test)["x"]
    for target in ("numpy", "loihi"):
        snn = tmp_path / f"{target}.snn"
        assert main(["import", str(out), "--target", target, "-o", str(snn)]) == 0, \
            capsys.readouterr().err
        back = snnc.load(snn)
        assert back.target == target
        agree = (back.run(x[:100], 32).predictions == direct.run(x[:100], 32).predictions)
        assert agree.mean() >= (1.0 if target == "numpy" else 0.95)


def test_unsupported_nodes_are_listed_at_once() -> None:
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}),
               "li": nir.LI(tau=np.ones(4), r=np.ones(4), v_leak=np.zeros(4)),
               "thr": nir.Threshold(threshold=np.ones(4)),
               "output": nir.Output(output_type={"output": np.array([4])})},
        edges=[("input", "li"), ("li", "thr"), ("thr", "output")])
    with pytest.raises(ModelError, match=r"(?s)2 NIR node\(s\).*'li': LI.*'thr': Threshold"):
        from_nir(graph)


def test_a_leaky_neuron_is_refused_naming_it() -> None:
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)),
        nir.LIF(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3),
                v_threshold=np.ones(3)))
    with pytest.raises(ModelError, match="leak"):
        from_nir(graph)


def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nir"
    bad.write_text("not hdf5")
    done = _snnc("import", bad)
    assert done.returncode == 3 and "NIR" in done.stderr


def _quiet() -> None:
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")


def test_a_sinabs_network_agrees_with_sinabs(digits_test_arrays) -> None:
    """Built and exported by Sinabs (IAF: reset by subtraction, read with --reset subtract),
    simulated by Sinabs and by snnc, and compiled for loihi. (nir.write cannot save Sinabs'
    graph, which holds torch tensors and an undefined conv input type: load_nir takes the
    graph object.)"""
    torch = pytest.importorskip("torch")
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    _quiet()
    torch.manual_seed(0)
    x = digits_test_arrays[0][:100] * 2
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        sl.IAFSqueeze(batch_size=len(x), spike_fn=SingleSpike),
        sl.SumPool2d(2), torch.nn.Conv2d(8, 16, 3, padding=1),
        sl.IAFSqueeze(batch_size=len(x), spike_fn=SingleSpike),
        torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
    frames = torch.tensor(np.repeat(x[:, None], T, axis=1)).reshape(-1, *x.shape[1:])
    graph = sinabs.to_nir(model, frames[:len(x)])
    sinabs.reset_states(model)
    with torch.no_grad():
        ref = model(frames).reshape(len(x), T, -1).mean(1).numpy()
    ours = snnc.load_nir(graph, reset="subtract").run(x, T).outputs
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.99
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    loihi = snnc.load_nir(graph, reset="subtract", target="loihi")
    assert (loihi.run(x, T).predictions == ref.argmax(1)).mean() >= 0.9
