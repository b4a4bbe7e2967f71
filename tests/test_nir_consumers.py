"""Independent NIR readers run snnc's files and predict what snnc predicts (issue 17), 100
samples of the digits test set at T = 32:

* Sinabs 3.1.3 (IAF: reset by subtraction, so the default compile's files): the CNN with its
  own from_nir; the ResNet through nirtorch's topological executor with Sinabs' own layer
  mapping, because sinabs.from_nir goes through nirtorch 2.6's deprecated `load`, which orders
  nodes depth-first and returns the last node visited (a skip branch) as the output.
* Norse 1.1.0 (IAF reset to v_reset, as NIR says): the `--preset nir` files, exactly.
"""

from __future__ import annotations

import logging
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import snnc

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")
from snnc.backends.nir import to_nir  # noqa: E402

T = 32


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.disable(logging.WARNING)  # Norse warns per node, nirtorch about its old API
    warnings.filterwarnings("ignore")
    yield
    logging.disable(logging.NOTSET)


def _sinabs(model: object, x: np.ndarray) -> np.ndarray:
    frames = torch.tensor(np.repeat(x[:, None], T, axis=1)).reshape(-1, *x.shape[1:])
    with torch.no_grad():
        out = model(frames)
    out = out[0] if isinstance(out, tuple) else out
    return out.reshape(len(x), T, -1).mean(1).numpy()


def _norse(graph: object, x: np.ndarray) -> np.ndarray:
    norse = pytest.importorskip("norse.torch")
    model = norse.from_nir(graph)
    state, total = None, 0
    with torch.no_grad():
        for _ in range(T):
            out, state = model(torch.tensor(x), state)
            total = total + out
    return (total / T).reshape(len(x), -1).numpy()


def _agreement(theirs: np.ndarray, ours: np.ndarray) -> float:
    return float((theirs.argmax(1) == ours.argmax(1)).mean())


def test_sinabs_runs_the_cnn(digits_model: Path, digits_calib: Path,
                             digits_test_arrays) -> None:
    sinabs = pytest.importorskip("sinabs")
    x = digits_test_arrays[0][:100]
    net = snnc.compile(digits_model, calib=digits_calib, preset="rate-p99.99", shift="none",
                       target="nir")  # NIR has no V(0): Sinabs starts at 0
    theirs = _sinabs(sinabs.from_nir(to_nir(net.graph), batch_size=len(x)), x)
    assert _agreement(theirs, net.run(x, T).outputs) >= 0.99


def test_sinabs_layers_run_the_resnet(digits_calib: Path, test_data: Path,
                                      digits_test_arrays) -> None:
    sinabs_nir = pytest.importorskip("sinabs.nir")
    import nirtorch

    x = digits_test_arrays[0][:100]
    net = snnc.compile(test_data / "digits_resnet.onnx", calib=digits_calib,
                       preset="rate-p99.99", shift="none", target="nir")
    layer = partial(sinabs_nir._import_sinabs_module, batch_size=len(x), num_timesteps=T)
    model = nirtorch.nir_to_torch(to_nir(net.graph), {k: layer for k in (
        nir.Conv2d, nir.IF, nir.SumPool2d, nir.Affine)})
    assert _agreement(_sinabs(model, x), net.run(x, T).outputs) >= 0.99


@pytest.mark.parametrize("model", ["cnn", "grouped"])
def test_norse_runs_nir_preset_files_exactly(model: str, digits_model: Path,
                                             digits_calib: Path, digits_test_arrays) -> None:
    if model == "cnn":
        x, source, calib = digits_test_arrays[0][:100], digits_model, digits_calib
    else:
        from test_nir_export import grouped_net

        calib = np.random.default_rng(3).uniform(0, 1, (128, 3, 8, 8)).astype(np.float32)
        x, source = calib[:100], grouped_net()
    net = snnc.compile(source, calib=calib, preset="nir", target="nir", timesteps=T)
    theirs = _norse(to_nir(net.graph), x)
    ours = net.run(x, T).outputs
    assert _agreement(theirs, ours) >= 0.99
    np.testing.assert_allclose(theirs, ours, atol=1e-3)
